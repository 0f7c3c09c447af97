/**
 * @spoekit/spoe-agent — write HAProxy SPOE agents (SPOAs): the SPOP handshake, handlers per
 * SPOE message, pipelined NOTIFYs answered in completion order with batched writes,
 * backpressure, deadlines, graceful drain, and observability through pino and
 * `node:diagnostics_channel`. A HAProxy-playing test client and a load generator live in
 * `@spoekit/spoe-agent/testing`.
 *
 * @packageDocumentation
 */
export {
  Capability,
  DataType,
  DisconnectStatus,
  formatIp,
  type Message,
  type NotifyFrame,
  parseIp,
  Scope,
  TypedValue,
} from "@spoekit/spop-codec";
export { type AgentHooks, createAgent, SpoeAgent } from "./agent.ts";
export type { ConnectionInfo } from "./connection.ts";
export {
  type CloseCause,
  type ConnectionCloseMessage,
  type ConnectionMessage,
  channels,
  type DisconnectMessage,
  type ErrorKind,
  type ErrorMessage,
  type FrameMessage,
  type HelloMessage,
  type ListenMessage,
  type NotifyMessage,
  type NotifyOutcome,
} from "./diagnostics.ts";
export {
  AckEncodingError,
  AgentClosedError,
  ConnectionClosedError,
  HandlerFailedError,
  HandlerTimeoutError,
  InvalidOptionError,
  ProtocolError,
  SpoeAgentError,
  type SpoeAgentErrorOptions,
} from "./errors.ts";
export { type HandlerFailure, MessageContext, type MessageHandler } from "./exchange.ts";
export {
  type ListenAddress,
  type ListenOptions,
  parseListenAddress,
  type TcpListenOptions,
  type UnixListenOptions,
} from "./listen.ts";
export {
  type AgentOptions,
  defaultOptions,
  type FailureAck,
  type NoEmptyAckVariable,
} from "./options.ts";
