/**
 * @spoekit/spop-codec — HAProxy's SPOP 2.0 wire format: varints, typed data, every frame type in
 * both directions, a streaming frame reader and a pooling frame writer. No I/O.
 *
 * @packageDocumentation
 */
export { ActionList } from "./action-list.ts";
export {
  ActionType,
  BOOL_TRUE_FLAG,
  Capability,
  DataType,
  DEFAULT_MAX_FRAME_SIZE,
  DisconnectKey,
  DisconnectStatus,
  dataTypeNames,
  disconnectReason,
  disconnectReasons,
  FRAME_LENGTH_BYTES,
  FrameFlags,
  FrameType,
  frameTypeNames,
  HelloKey,
  MAX_VARINT_BYTES,
  MIN_FRAME_SIZE,
  Scope,
  SPOP_VERSION,
  scopeNames,
} from "./constants.ts";
export { SpopCodecError, SpopError, type SpopErrorOptions } from "./errors.ts";
export { type DecodeOptions, decodeFrame } from "./frame-decoder.ts";
export {
  type EncodeOptions,
  encodeFrame,
  FrameWriter,
  type FrameWriterOptions,
  fragmentFrame,
} from "./frame-encoder.ts";
export { ackFrame, notifyFrame, setVar, unsetVar } from "./frames.ts";
export {
  type AgentHello,
  type AgentHelloParams,
  type AgentLimits,
  agentDisconnectFrame,
  agentHelloFrame,
  type Disconnect,
  type HaproxyHello,
  type HaproxyHelloParams,
  haproxyDisconnectFrame,
  haproxyHelloFrame,
  negotiateHello,
  parseAgentHello,
  parseDisconnect,
  parseHaproxyHello,
  splitList,
} from "./handshake.ts";
export { formatIp, parseIp } from "./ip.ts";
export { FrameReader, type FrameReaderOptions } from "./stream-reader.ts";
export {
  type AckFrame,
  type Action,
  type AgentDisconnectFrame,
  type AgentFrame,
  type AgentHelloFrame,
  type BinaryValue,
  type BoolValue,
  boolValue,
  type FragmentedFrameType,
  type FragmentFrame,
  type Frame,
  type FrameHeader,
  getArg,
  type HaproxyDisconnectFrame,
  type HaproxyFrame,
  type HaproxyHelloFrame,
  type Int32Value,
  type Int64Value,
  type Ipv4Value,
  type Ipv6Value,
  type KVItem,
  type KVList,
  type Message,
  type NotifyFrame,
  type NullValue,
  nullValue,
  type SetVarAction,
  type StringValue,
  TypedValue,
  type Uint32Value,
  type Uint64Value,
  type UnsetVarAction,
} from "./types.ts";
export { type DecodeVarintOptions, decodeVarint, encodeVarint, varintLength } from "./varint.ts";
