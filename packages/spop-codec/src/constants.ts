/**
 * Wire codes of SPOP 2.0, one `const` table per field, with the protocol's value beside each
 * name. Each table doubles as a type: `FrameType` is also the union of its values.
 */

/** The SPOP version this codec speaks, as announced in HELLO frames. */
export const SPOP_VERSION = "2.0";

/** The smallest max-frame-size a peer may announce (SPOE.txt §3.2). */
export const MIN_FRAME_SIZE = 256;

/**
 * HAProxy's default max-frame-size: `tune.bufsize` (16384) minus the 4-byte length prefix.
 * Frame sizes in this package count the bytes after the length prefix, as HAProxy does.
 */
export const DEFAULT_MAX_FRAME_SIZE = 16380;

/** Bytes of the big-endian length prefix in front of every frame. */
export const FRAME_LENGTH_BYTES = 4;

/** The longest varint a 64-bit value needs. */
export const MAX_VARINT_BYTES = 10;

/** Frame types (the TYPE byte). */
export const FrameType = {
  /** Continuation of a fragmented payload (HAProxy 2.x with the `fragmentation` capability). */
  UNSET: 0,
  HAPROXY_HELLO: 1,
  HAPROXY_DISCONNECT: 2,
  NOTIFY: 3,
  AGENT_HELLO: 101,
  AGENT_DISCONNECT: 102,
  ACK: 103,
} as const;
/** A frame type code. */
export type FrameType = (typeof FrameType)[keyof typeof FrameType];

/** Frame flag bits (the FLAGS field, a big-endian u32). Bits 2–31 are reserved. */
export const FrameFlags = {
  /** Final fragment of a payload; set on every unfragmented frame. */
  FIN: 0x00000001,
  /** Cancels the processing of a fragmented frame; only valid together with FIN. */
  ABORT: 0x00000002,
} as const;

/** Typed-data types (the low 4 bits of a TYPED-DATA's first byte). Types 10–15 are invalid. */
export const DataType = {
  NULL: 0,
  BOOL: 1,
  INT32: 2,
  UINT32: 3,
  INT64: 4,
  UINT64: 5,
  IPV4: 6,
  IPV6: 7,
  STRING: 8,
  BINARY: 9,
} as const;
/** A typed-data type code. */
export type DataType = (typeof DataType)[keyof typeof DataType];

/** The flag bit (high nibble) that makes a BOOL true: `0x11` is true, `0x01` false. */
export const BOOL_TRUE_FLAG = 0x10;

/** Action types in an ACK's LIST-OF-ACTIONS. */
export const ActionType = {
  SET_VAR: 1,
  UNSET_VAR: 2,
} as const;
/** An action type code. */
export type ActionType = (typeof ActionType)[keyof typeof ActionType];

/** Variable scopes of SET-VAR / UNSET-VAR (`proc`, `sess`, `txn`, `req`, `res` in HAProxy). */
export const Scope = {
  PROC: 0,
  SESS: 1,
  TXN: 2,
  REQ: 3,
  RES: 4,
} as const;
/** A variable scope code. */
export type Scope = (typeof Scope)[keyof typeof Scope];

/** Scope codes by the name HAProxy gives them in variable names (`sess.rl.ip_score`). */
export const scopeNames: Readonly<Record<Scope, string>> = {
  0: "proc",
  1: "sess",
  2: "txn",
  3: "req",
  4: "res",
};

/** DISCONNECT status codes (SPOE.txt §3.5). Agents may define their own above 99. */
export const DisconnectStatus = {
  NORMAL: 0,
  IO_ERROR: 1,
  TIMEOUT: 2,
  FRAME_TOO_BIG: 3,
  INVALID_FRAME: 4,
  VERSION_NOT_FOUND: 5,
  MAX_FRAME_SIZE_NOT_FOUND: 6,
  CAPABILITIES_NOT_FOUND: 7,
  UNSUPPORTED_VERSION: 8,
  BAD_FRAME_SIZE: 9,
  FRAGMENTATION_NOT_SUPPORTED: 10,
  INVALID_INTERLACED_FRAMES: 11,
  FRAME_ID_NOT_FOUND: 12,
  RESOURCE_ALLOCATION_ERROR: 13,
  UNKNOWN_ERROR: 99,
} as const;
/** A DISCONNECT status code defined by the protocol. */
export type DisconnectStatus = (typeof DisconnectStatus)[keyof typeof DisconnectStatus];

/** The reason string HAProxy uses for each status code (sent as the DISCONNECT `message`). */
export const disconnectReasons: Readonly<Record<DisconnectStatus, string>> = {
  0: "normal",
  1: "I/O error",
  2: "a timeout occurred",
  3: "frame is too big",
  4: "invalid frame received",
  5: "version value not found",
  6: "max-frame-size value not found",
  7: "capabilities value not found",
  8: "unsupported version",
  9: "max-frame-size too big or too small",
  10: "fragmentation not supported",
  11: "invalid interlaced frames",
  12: "frame-id not found",
  13: "resource allocation error",
  99: "an unknown error occurred",
};

/** The reason string for a status code; codes the protocol does not define get a generic one. */
export function disconnectReason(status: number): string {
  return (disconnectReasons as Readonly<Record<number, string>>)[status] ?? `status ${status}`;
}

/** Well-known HELLO keys. */
export const HelloKey = {
  SUPPORTED_VERSIONS: "supported-versions",
  VERSION: "version",
  MAX_FRAME_SIZE: "max-frame-size",
  CAPABILITIES: "capabilities",
  HEALTHCHECK: "healthcheck",
  ENGINE_ID: "engine-id",
} as const;

/** Well-known DISCONNECT keys. */
export const DisconnectKey = {
  STATUS_CODE: "status-code",
  MESSAGE: "message",
} as const;

/** Capabilities defined by SPOP 2.0 (comma-separated in HELLO frames). */
export const Capability = {
  PIPELINING: "pipelining",
  ASYNC: "async",
  FRAGMENTATION: "fragmentation",
} as const;

/** Printable names of frame types, for logs and examples. */
export const frameTypeNames: Readonly<Record<FrameType, string>> = {
  0: "UNSET",
  1: "HAPROXY-HELLO",
  2: "HAPROXY-DISCONNECT",
  3: "NOTIFY",
  101: "AGENT-HELLO",
  102: "AGENT-DISCONNECT",
  103: "ACK",
};

/** Printable names of typed-data types. */
export const dataTypeNames: Readonly<Record<DataType, string>> = {
  0: "NULL",
  1: "BOOL",
  2: "INT32",
  3: "UINT32",
  4: "INT64",
  5: "UINT64",
  6: "IPV4",
  7: "IPV6",
  8: "STRING",
  9: "BINARY",
};
