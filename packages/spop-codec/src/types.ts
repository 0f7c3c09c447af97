/**
 * The decoded shapes of SPOP: typed values, KV-lists, messages, actions and frames. Frames are
 * a discriminated union on `type` (a {@link FrameType} code); typed values on their own `type`
 * (a {@link DataType} code).
 *
 * Everything here is read-only: decoded frames may share objects (the NULL and BOOL values are
 * single frozen instances, and so are the KV items that pair a recent name with one of them) and
 * may hold views into the bytes they were decoded from.
 */
import { type ActionType, DataType, type FrameType, type Scope } from "./constants.ts";
import { parseIp } from "./ip.ts";
import { canonicalInteger } from "./limits.ts";

/** NULL: a missing sample. */
export interface NullValue {
  readonly type: typeof DataType.NULL;
}
/** BOOL. */
export interface BoolValue {
  readonly type: typeof DataType.BOOL;
  readonly value: boolean;
}
/** INT32, sent as the varint of its 64-bit two's complement. */
export interface Int32Value {
  readonly type: typeof DataType.INT32;
  readonly value: number;
}
/** UINT32. */
export interface Uint32Value {
  readonly type: typeof DataType.UINT32;
  readonly value: number;
}
/**
 * INT64, sent as the varint of its two's complement. A `number` when it is a safe integer
 * (|value| ≤ 2^53 − 1), a `bigint` otherwise: decoding never loses a bit.
 */
export interface Int64Value {
  readonly type: typeof DataType.INT64;
  readonly value: number | bigint;
}
/** UINT64: a `number` up to 2^53 − 1, a `bigint` above. */
export interface Uint64Value {
  readonly type: typeof DataType.UINT64;
  readonly value: number | bigint;
}
/** IPV4: the 4 address bytes in network order (a copy, owned by the value). */
export interface Ipv4Value {
  readonly type: typeof DataType.IPV4;
  readonly value: Uint8Array;
}
/** IPV6: the 16 address bytes in network order (a copy, owned by the value). */
export interface Ipv6Value {
  readonly type: typeof DataType.IPV6;
  readonly value: Uint8Array;
}
/**
 * STRING. HAProxy strings are bytes (a header value may hold any octet), so a STRING that is not
 * valid UTF-8 still decodes: `value` then holds the text with U+FFFD replacements and `bytes` the
 * exact bytes (a view into the decoded chunk, see {@link BinaryValue}), which the encoder writes
 * instead of `value`. Only names (of messages, arguments, KV items and variables) must be UTF-8.
 */
export interface StringValue {
  readonly type: typeof DataType.STRING;
  readonly value: string;
  readonly bytes?: Uint8Array;
}
/**
 * BINARY. Decoded values are zero-copy views into the bytes handed to the decoder (or into a
 * buffer the {@link FrameReader} allocated for a frame that arrived in pieces): they stay valid
 * as long as the caller does not overwrite those bytes, and they keep the whole chunk alive.
 * Copy (`Uint8Array.prototype.slice`) to keep a small value for long.
 */
export interface BinaryValue {
  readonly type: typeof DataType.BINARY;
  readonly value: Uint8Array;
}

/** TYPED-DATA: one of the ten SPOP data types. */
export type TypedValue =
  | NullValue
  | BoolValue
  | Int32Value
  | Uint32Value
  | Int64Value
  | Uint64Value
  | Ipv4Value
  | Ipv6Value
  | StringValue
  | BinaryValue;

const NULL_VALUE: NullValue = Object.freeze({ type: DataType.NULL });
const TRUE_VALUE: BoolValue = Object.freeze({ type: DataType.BOOL, value: true });
const FALSE_VALUE: BoolValue = Object.freeze({ type: DataType.BOOL, value: false });

/** The shared NULL value. */
export const nullValue = NULL_VALUE;
/** The shared BOOL value for `flag`. */
export function boolValue(flag: boolean): BoolValue {
  return flag ? TRUE_VALUE : FALSE_VALUE;
}

function address(type: typeof DataType.IPV4 | typeof DataType.IPV6, value: string | Uint8Array): Uint8Array {
  return typeof value === "string" ? parseIp(value, type === DataType.IPV4 ? 4 : 6) : value;
}

/**
 * Constructors of typed values. Integers are range-checked when encoded; 64-bit ones given as a
 * `bigint` in the safe range are stored as a `number`, the form the decoder yields.
 *
 * @example
 * ```ts
 * setVar(Scope.SESS, "ip_score", TypedValue.int32(100));
 * setVar(Scope.TXN, "client", TypedValue.ipv6("2001:db8::1"));
 * ```
 */
export const TypedValue = {
  null: NULL_VALUE,
  bool: boolValue,
  int32: (value: number): Int32Value => ({ type: DataType.INT32, value }),
  uint32: (value: number): Uint32Value => ({ type: DataType.UINT32, value }),
  int64: (value: number | bigint): Int64Value => ({
    type: DataType.INT64,
    value: canonicalInteger(value),
  }),
  uint64: (value: number | bigint): Uint64Value => ({
    type: DataType.UINT64,
    value: canonicalInteger(value),
  }),
  /** From dotted-quad text or 4 bytes. Throws {@link SpopError} on text that is no IPv4 address. */
  ipv4: (value: string | Uint8Array): Ipv4Value => ({
    type: DataType.IPV4,
    value: address(DataType.IPV4, value),
  }),
  /** From IPv6 text (any RFC 4291 form) or 16 bytes. */
  ipv6: (value: string | Uint8Array): Ipv6Value => ({
    type: DataType.IPV6,
    value: address(DataType.IPV6, value),
  }),
  string: (value: string): StringValue => ({ type: DataType.STRING, value }),
  binary: (value: Uint8Array): BinaryValue => ({ type: DataType.BINARY, value }),
} as const;

/**
 * One KV-LIST item: a name and a typed value (a message argument or a HELLO/DISCONNECT item).
 * A decoded item whose value is NULL or BOOL may be a frozen instance shared between frames.
 */
export interface KVItem {
  readonly name: string;
  readonly value: TypedValue;
}

/** A KV-LIST, in wire order. Names may be empty and may repeat. */
export type KVList = readonly KVItem[];

/** One SPOE message of a NOTIFY frame: the `spoe-message` name and its `args`, in order. */
export interface Message {
  readonly name: string;
  readonly args: KVList;
}

/** SET-VAR: HAProxy sets `<scope>.<var-prefix>.<name>` to `value`. */
export interface SetVarAction {
  readonly type: typeof ActionType.SET_VAR;
  readonly scope: Scope;
  readonly name: string;
  readonly value: TypedValue;
}

/** UNSET-VAR: HAProxy unsets `<scope>.<var-prefix>.<name>`. */
export interface UnsetVarAction {
  readonly type: typeof ActionType.UNSET_VAR;
  readonly scope: Scope;
  readonly name: string;
}

/** An action of an ACK frame. */
export type Action = SetVarAction | UnsetVarAction;

/** Fields every frame carries after its type byte. */
export interface FrameHeader {
  /** The FLAGS field ({@link FrameFlags}); FIN on every unfragmented frame. */
  readonly flags: number;
  /** 0 on HELLO and DISCONNECT frames. Ids above 2^53 − 1 are refused when decoding. */
  readonly streamId: number;
  /** 0 on HELLO and DISCONNECT frames. */
  readonly frameId: number;
}

/** HAPROXY-HELLO: the handshake HAProxy opens each connection with. See {@link parseHaproxyHello}. */
export interface HaproxyHelloFrame extends FrameHeader {
  readonly type: typeof FrameType.HAPROXY_HELLO;
  readonly items: KVList;
}

/** HAPROXY-DISCONNECT: HAProxy closes the connection. See {@link parseDisconnect}. */
export interface HaproxyDisconnectFrame extends FrameHeader {
  readonly type: typeof FrameType.HAPROXY_DISCONNECT;
  readonly items: KVList;
}

/** NOTIFY: the messages of one event; answer each with an {@link AckFrame} with the same ids. */
export interface NotifyFrame extends FrameHeader {
  readonly type: typeof FrameType.NOTIFY;
  readonly messages: readonly Message[];
}

/** AGENT-HELLO: the agent's answer to HAPROXY-HELLO. Build it with {@link agentHelloFrame}. */
export interface AgentHelloFrame extends FrameHeader {
  readonly type: typeof FrameType.AGENT_HELLO;
  readonly items: KVList;
}

/** AGENT-DISCONNECT: the agent closes the connection. Build it with {@link agentDisconnectFrame}. */
export interface AgentDisconnectFrame extends FrameHeader {
  readonly type: typeof FrameType.AGENT_DISCONNECT;
  readonly items: KVList;
}

/** ACK: the agent's answer to a NOTIFY, echoing its stream-id and frame-id. */
export interface AckFrame extends FrameHeader {
  readonly type: typeof FrameType.ACK;
  readonly actions: readonly Action[];
}

/** The frame types whose payload may be split into fragments. */
export type FragmentedFrameType = typeof FrameType.NOTIFY | typeof FrameType.ACK;

/**
 * A piece of a fragmented payload (SPOP 2.0 fragmentation, spoken only by HAProxy 2.x to agents
 * that announce the `fragmentation` capability): the first piece is a NOTIFY or ACK without FIN,
 * the following ones are UNSET frames with the same ids, the last with FIN (and ABORT when the
 * sender gave up). Every piece decodes to this shape, under `type` UNSET, so that
 * `switch (frame.type)` keeps whole frames apart from pieces; `frameType` is the type byte
 * on the wire. Decoded only when fragmentation is enabled; {@link FrameReader} reassembles the
 * pieces itself.
 */
export interface FragmentFrame extends FrameHeader {
  readonly type: typeof FrameType.UNSET;
  readonly frameType: typeof FrameType.UNSET | FragmentedFrameType;
  /** The raw payload bytes of this piece (a view, lifetime as {@link BinaryValue}). */
  readonly payload: Uint8Array;
}

/** Any SPOP frame. */
export type Frame =
  | HaproxyHelloFrame
  | HaproxyDisconnectFrame
  | NotifyFrame
  | AgentHelloFrame
  | AgentDisconnectFrame
  | AckFrame
  | FragmentFrame;

/** Frames HAProxy sends to agents. */
export type HaproxyFrame = HaproxyHelloFrame | HaproxyDisconnectFrame | NotifyFrame | FragmentFrame;

/** Frames agents send to HAProxy. */
export type AgentFrame = AgentHelloFrame | AgentDisconnectFrame | AckFrame | FragmentFrame;

/** The value of the first argument called `name`, or `undefined`. */
export function getArg(message: Message, name: string): TypedValue | undefined {
  const args = message.args;
  for (let i = 0; i < args.length; i++) {
    const arg = args[i];
    if (arg !== undefined && arg.name === name) return arg.value;
  }
  return undefined;
}
