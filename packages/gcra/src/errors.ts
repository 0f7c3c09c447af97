/**
 * The errors this package creates. One base class, {@link GcraError}, with a stable `code` (match
 * on it, never on the message text) and a subclass per family; the original error travels as
 * `cause`. Store failures are classified from error types, Node's error codes and Valkey's reply
 * codes (the first word of an error reply: `WRONGPASS`, `READONLY`, …) — never from message text.
 */

/**
 * Why a store call failed, for counters and the failure policy:
 * - `timeout`: no answer within the per-call deadline
 * - `connection`: not connected, connection refused/reset/closed, no sentinel reachable
 * - `tls`: a TLS handshake failed (a certificate its CA does not vouch for, a missing client certificate)
 * - `cluster`: cluster down, too many redirections, slots not served
 * - `readonly`: the node written to is a replica (typically right after a failover)
 * - `auth`: authentication or ACL permission refused
 * - `script`: the Lua script failed (e.g. a key of another type)
 * - `reply`: an answer that is not the script's
 * - `other`: anything else
 */
export type FailureKind =
  | "timeout"
  | "connection"
  | "tls"
  | "cluster"
  | "readonly"
  | "auth"
  | "script"
  | "reply"
  | "other";

/** Every failure kind, e.g. to initialise counters or a metric's label values. */
export const FAILURE_KINDS: readonly FailureKind[] = Object.freeze([
  "timeout",
  "connection",
  "tls",
  "cluster",
  "readonly",
  "auth",
  "script",
  "reply",
  "other",
]);

/** The stable codes of this package's errors (see the README's table). */
export const GCRA_ERROR_CODES = Object.freeze({
  invalidOption: "GCRA_INVALID_OPTION",
  invalidInput: "GCRA_INVALID_INPUT",
  timeout: "GCRA_STORE_TIMEOUT",
  connection: "GCRA_STORE_CONNECTION",
  tls: "GCRA_STORE_TLS",
  cluster: "GCRA_STORE_CLUSTER",
  readonly: "GCRA_STORE_READONLY",
  auth: "GCRA_STORE_AUTH",
  script: "GCRA_STORE_SCRIPT",
  reply: "GCRA_STORE_REPLY",
  other: "GCRA_STORE_OTHER",
} as const);

/** Options of {@link GcraError}. */
export interface GcraErrorOptions {
  readonly cause?: unknown;
}

/** Base class of every error this package creates; `code` is stable across releases. */
export class GcraError extends Error {
  override readonly name: string = "GcraError";
  /** A stable identifier of the failure, e.g. `GCRA_STORE_TIMEOUT`. */
  readonly code: string;

  constructor(code: string, message: string, options: GcraErrorOptions = {}) {
    super(message, options.cause === undefined ? {} : { cause: options.cause });
    this.code = code;
  }
}

/** An option or a limit's parameter is invalid (code `GCRA_INVALID_OPTION`): thrown at construction. */
export class GcraOptionError extends GcraError {
  override readonly name = "GcraOptionError";
  constructor(message: string, options: GcraErrorOptions = {}) {
    super(GCRA_ERROR_CODES.invalidOption, message, options);
  }
}

/**
 * A call's input is invalid (code `GCRA_INVALID_INPUT`): an empty key, or a cost that is not an
 * integer in `[0, limit.burst]`. Never counts as a store failure.
 */
export class GcraInputError extends GcraError {
  override readonly name = "GcraInputError";
  constructor(message: string) {
    super(GCRA_ERROR_CODES.invalidInput, message);
  }
}

/**
 * A failed store call (code `GCRA_STORE_<KIND>`): what kind of failure, Valkey's reply code when
 * the server refused (`WRONGPASS`, `NOSCRIPT`, `READONLY`, …), and the underlying error as `cause`.
 */
export class GcraStoreError extends GcraError {
  override readonly name = "GcraStoreError";
  /** What kind of failure this is. */
  readonly kind: FailureKind;
  /** The first word of Valkey's error reply, when the failure was one. */
  readonly reply: string | undefined;

  constructor(kind: FailureKind, message: string, options: GcraErrorOptions & { reply?: string } = {}) {
    super(GCRA_ERROR_CODES[kind], message, options);
    this.kind = kind;
    this.reply = options.reply;
  }
}

/** Valkey reply codes and the failure kind each means. */
const replyKinds: Readonly<Record<string, FailureKind>> = {
  NOAUTH: "auth",
  WRONGPASS: "auth",
  NOPERM: "auth",
  READONLY: "readonly",
  CLUSTERDOWN: "cluster",
  MOVED: "cluster",
  ASK: "cluster",
  TRYAGAIN: "cluster",
  MASTERDOWN: "cluster",
  LOADING: "connection",
  BUSY: "script",
  NOSCRIPT: "script",
  WRONGTYPE: "script",
  // The store sends only the script: a generic error reply is the script's (`ERR user_script:…`).
  ERR: "script",
};

/**
 * Node's codes of TLS failures: a certificate the CA does not vouch for, a wrong name, a refused
 * or missing client certificate (OpenSSL's alerts arrive as `ERR_SSL_…`).
 */
const tlsCodes = new Set([
  "SELF_SIGNED_CERT_IN_CHAIN",
  "DEPTH_ZERO_SELF_SIGNED_CERT",
  "UNABLE_TO_VERIFY_LEAF_SIGNATURE",
  "UNABLE_TO_GET_ISSUER_CERT",
  "UNABLE_TO_GET_ISSUER_CERT_LOCALLY",
  "CERT_HAS_EXPIRED",
  "CERT_NOT_YET_VALID",
  "CERT_UNTRUSTED",
  "CERT_REJECTED",
  "CERT_SIGNATURE_FAILURE",
  "HOSTNAME_MISMATCH",
  "ERR_TLS_CERT_ALTNAME_INVALID",
]);

/**
 * The reply code of a Valkey error reply (iovalkey's `ReplyError`): by the protocol, the first
 * word of the reply when it is in capitals. `undefined` for anything that is not a reply.
 */
export function replyCode(error: unknown): string | undefined {
  if (!(error instanceof Error) || error.name !== "ReplyError") return undefined;
  const end = error.message.indexOf(" ");
  const word = end < 0 ? error.message : error.message.slice(0, end);
  for (let i = 0; i < word.length; i++) {
    const c = word.charCodeAt(i);
    if (c < 65 || c > 90) return undefined;
  }
  return word.length > 0 ? word : undefined;
}

/** The kind of a failure, from the error's type, Node's error `code`, or Valkey's reply code. */
export function failureKind(error: unknown): FailureKind {
  if (error instanceof GcraStoreError) return error.kind;
  if (!(error instanceof Error)) return "other";
  if (error.name === "ReplyError") return replyKinds[replyCode(error) ?? ""] ?? "other";
  if (error.name === "ClusterAllFailedError") return "cluster";
  const code = (error as NodeJS.ErrnoException).code;
  if (typeof code === "string" && (tlsCodes.has(code) || code.startsWith("ERR_SSL_"))) return "tls";
  // A socket's error (with Node's code), and iovalkey's plain errors and aborted commands, are
  // about the connection: refused, reset, closed, not writable, no sentinel reachable.
  if (typeof code === "string" || error.constructor === Error || error.name === "MaxRetriesPerRequestError") {
    return "connection";
  }
  return "other";
}

/** Wraps any error from a store call into a {@link GcraStoreError} with its {@link FailureKind}. */
export function toStoreError(error: unknown): GcraStoreError {
  if (error instanceof GcraStoreError) return error;
  const message = error instanceof Error ? error.message : String(error);
  const reply = replyCode(error);
  return new GcraStoreError(failureKind(error), message, {
    cause: error,
    ...(reply !== undefined ? { reply } : {}),
  });
}
