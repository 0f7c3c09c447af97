/**
 * Why a store call failed, for counters and the failure policy:
 * - `timeout`: no answer within the per-call deadline
 * - `connection`: not connected, connection refused/reset/closed, no sentinel reachable, a TLS
 *   handshake refused (e.g. a certificate its CA does not vouch for)
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
  | "cluster"
  | "readonly"
  | "auth"
  | "script"
  | "reply"
  | "other";

/** Every failure kind, e.g. to initialise counters. */
export const FAILURE_KINDS: readonly FailureKind[] = Object.freeze([
  "timeout",
  "connection",
  "cluster",
  "readonly",
  "auth",
  "script",
  "reply",
  "other",
]);

/** A failed store call: what kind of failure, and the underlying error as `cause`. */
export class GcraStoreError extends Error {
  /** What kind of failure this is. */
  readonly kind: FailureKind;

  constructor(kind: FailureKind, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "GcraStoreError";
    this.kind = kind;
  }
}

const patterns: readonly (readonly [FailureKind, RegExp])[] = [
  [
    "auth",
    /NOAUTH|WRONGPASS|NOPERM|invalid username-password|without any password configured|can't run this command|no permissions/i,
  ],
  ["readonly", /^READONLY/],
  [
    "cluster",
    /CLUSTERDOWN|Too many Cluster redirections|Cluster isn't ready|Cluster is ended|^MOVED|^ASK|TRYAGAIN/,
  ],
  ["script", /NOSCRIPT|ERR Error running script|user_script|WRONGTYPE|Lua/],
  [
    "connection",
    /ECONNREFUSED|ECONNRESET|EPIPE|ETIMEDOUT|EHOSTUNREACH|Connection is closed|Stream isn't writeable|All sentinels are unreachable|connect|socket|closed|not connected|certificate|altnames|\bSSL\b|\bTLS\b/i,
  ],
];

/** Wraps any error from a store call into a {@link GcraStoreError} with its {@link FailureKind}. */
export function toStoreError(error: unknown): GcraStoreError {
  if (error instanceof GcraStoreError) return error;
  const message = error instanceof Error ? error.message : String(error);
  for (const [kind, pattern] of patterns) {
    if (pattern.test(message)) return new GcraStoreError(kind, message, { cause: error });
  }
  return new GcraStoreError("other", message, { cause: error });
}
