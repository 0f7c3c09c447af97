/**
 * Observability through `node:diagnostics_channel`: subscribe to these channels to count
 * connections, frames, handler latency, errors and disconnects (e.g. as Prometheus metrics)
 * without this package depending on a metrics library. Nothing is built or published while a
 * channel has no subscriber. Subscribers run synchronously on the agent's hot path: keep them
 * cheap, and do not keep the message objects.
 *
 * @example
 * ```ts
 * import { subscribe } from "node:diagnostics_channel";
 * import { channels, type NotifyMessage } from "@spoekit/spoe-agent";
 *
 * subscribe(channels.notify, (message) => {
 *   const { duration, outcome } = message as NotifyMessage;
 *   handlerSeconds.labels(outcome).observe(duration / 1000);
 * });
 * ```
 */
import { channel } from "node:diagnostics_channel";
import type { FrameType } from "@spoekit/spop-codec";
import type { SpoeAgent } from "./agent.ts";
import type { ConnectionInfo } from "./connection.ts";
import type { ListenAddress } from "./listen.ts";

/** The names of the channels this package publishes on. */
export const channels = {
  /** {@link ListenMessage}: a server started listening. */
  listen: "spoe-agent:listen",
  /** {@link ConnectionMessage}: a connection was accepted (TLS: once its handshake is done). */
  connectionOpen: "spoe-agent:connection:open",
  /** {@link HelloMessage}: a HELLO handshake succeeded. */
  hello: "spoe-agent:connection:hello",
  /** {@link ConnectionCloseMessage}: a connection closed, whatever the reason. */
  connectionClose: "spoe-agent:connection:close",
  /** {@link FrameMessage}: a frame was received (`count` is 1). */
  frameIn: "spoe-agent:frame:in",
  /** {@link FrameMessage}: frames of one type were written in one socket write. */
  frameOut: "spoe-agent:frame:out",
  /** {@link NotifyMessage}: a NOTIFY was answered, or dropped because its connection closed. */
  notify: "spoe-agent:notify",
  /** {@link ErrorMessage}: something failed (a handler, a peer, an ACK, a socket, a hook). */
  error: "spoe-agent:error",
  /** {@link DisconnectMessage}: a DISCONNECT frame was sent or received. */
  disconnect: "spoe-agent:disconnect",
} as const;

/** Published on {@link channels.listen}. */
export interface ListenMessage {
  readonly agent: SpoeAgent;
  readonly address: ListenAddress;
}

/** Published on {@link channels.connectionOpen}. */
export interface ConnectionMessage {
  readonly agent: SpoeAgent;
  readonly connection: ConnectionInfo;
}

/** Published on {@link channels.hello}; the connection now holds the negotiated parameters. */
export interface HelloMessage extends ConnectionMessage {
  /** A health-check HELLO: the agent answers and closes the connection. */
  readonly healthcheck: boolean;
}

/** Why a connection closed. */
export type CloseCause =
  /** HAProxy sent HAPROXY-DISCONNECT; the agent answered (after its in-flight ACKs) and closed. */
  | "haproxy-disconnect"
  /** The agent sent AGENT-DISCONNECT: a protocol error, a timeout or `close()` — see the disconnect channel. */
  | "agent-disconnect"
  /** A health-check HELLO was answered. */
  | "healthcheck"
  /** HAProxy closed the connection (EOF) without a DISCONNECT frame. */
  | "peer-closed"
  /** The connection was reset or broke (ECONNRESET, EPIPE, …): a normal close for HAProxy 3.x. */
  | "reset"
  /** The agent destroyed the connection (close deadline passed, TLS error, …). */
  | "destroyed";

/** Published on {@link channels.connectionClose}. */
export interface ConnectionCloseMessage extends ConnectionMessage {
  readonly cause: CloseCause;
  /** The socket error, for `reset` and `destroyed`. */
  readonly error: Error | undefined;
}

/** Published on {@link channels.frameIn} and {@link channels.frameOut}. */
export interface FrameMessage extends ConnectionMessage {
  /** The frame type code (`FrameType.NOTIFY`, `FrameType.ACK`, …). */
  readonly type: FrameType;
  /** How many frames of this type. */
  readonly count: number;
}

/** How a NOTIFY ended. */
export type NotifyOutcome =
  /** The handlers finished; their ACK was queued. */
  | "ok"
  /** A handler threw or rejected; the ACK followed `failureAck`. */
  | "error"
  /** The handlers missed `handlerTimeout` (or the close deadline); the ACK followed `failureAck`. */
  | "timeout"
  /** The connection closed before the handlers finished; no ACK was sent. */
  | "cancelled";

/** Published on {@link channels.notify}. */
export interface NotifyMessage extends ConnectionMessage {
  readonly streamId: number;
  readonly frameId: number;
  /** The number of SPOE messages in the NOTIFY. */
  readonly messages: number;
  /** Milliseconds from receiving the NOTIFY to its outcome (handler latency). */
  readonly duration: number;
  readonly outcome: NotifyOutcome;
}

/** What failed. */
export type ErrorKind =
  /** A handler threw or rejected (`error` is what it threw, wrapped when not an Error). */
  | "handler"
  /** A NOTIFY missed its deadline (`error` is a HandlerTimeoutError). */
  | "timeout"
  /** HAProxy broke the protocol (`error` is a ProtocolError, `status` its DISCONNECT status). */
  | "protocol"
  /** A handler's actions could not be encoded (`error` is an AckEncodingError). */
  | "encoding"
  /** A socket failed with something other than a reset (a reset is a normal close). */
  | "socket"
  /** A lifecycle hook threw. */
  | "hook";

/** Published on {@link channels.error}. */
export interface ErrorMessage {
  readonly agent: SpoeAgent;
  /** The connection concerned, if any. */
  readonly connection: ConnectionInfo | undefined;
  readonly kind: ErrorKind;
  readonly error: Error;
  /** The SPOP status code of a protocol error (the AGENT-DISCONNECT status sent). */
  readonly status: number | undefined;
}

/** Published on {@link channels.disconnect}. */
export interface DisconnectMessage extends ConnectionMessage {
  /** `sent`: AGENT-DISCONNECT; `received`: HAPROXY-DISCONNECT. */
  readonly direction: "sent" | "received";
  /** The `status-code` (0 normal, 2 timeout, 3 frame too big, 4 invalid frame, …). */
  readonly status: number;
  readonly message: string;
}

/** The channel objects, created once. Internal. */
export const dc = {
  listen: channel(channels.listen),
  connectionOpen: channel(channels.connectionOpen),
  hello: channel(channels.hello),
  connectionClose: channel(channels.connectionClose),
  frameIn: channel(channels.frameIn),
  frameOut: channel(channels.frameOut),
  notify: channel(channels.notify),
  error: channel(channels.error),
  disconnect: channel(channels.disconnect),
};
