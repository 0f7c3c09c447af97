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
export { createAgent, SpoeAgent } from "./agent.ts";
export { channels } from "./channels.ts";
export type { AgentClock, TimerHandle } from "./clock.ts";
export type {
  ConnectionCloseMessage,
  ConnectionMessage,
  DisconnectMessage,
  ErrorMessage,
  FrameMessage,
  HelloMessage,
  ListenMessage,
  NotifyMessage,
} from "./diagnostics.ts";
export {
  AckEncodingError,
  AgentClosedError,
  ConnectionClosedError,
  HandlerFailedError,
  HandlerTimeoutError,
  HookFailedError,
  InvalidOptionError,
  ProtocolError,
  ResourceLimitError,
  SpoeAgentError,
  type SpoeAgentErrorOptions,
} from "./errors.ts";
export {
  type ListenAddress,
  type ListenOptions,
  parseListenAddress,
  type TcpListenOptions,
  type UnixListenOptions,
} from "./listen.ts";
export { MessageContext, type MessageHandler } from "./message-context.ts";
export {
  type AgentOptions,
  defaultOptions,
  type FailureAck,
  type NoEmptyAckVariable,
} from "./options.ts";
export type {
  AgentHooks,
  CloseCause,
  ConnectionInfo,
  ErrorKind,
  HandlerFailure,
  NotifyOutcome,
} from "./types.ts";
