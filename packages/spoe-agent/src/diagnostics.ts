/**
 * The messages published on the agent's diagnostics channels (see {@link channels}).
 */
import type { FrameType } from "@spoekit/spop-codec";
import type { SpoeAgent } from "./agent.ts";
import type { ListenAddress } from "./listen.ts";
import type { CloseCause, ConnectionInfo, ErrorKind, NotifyOutcome } from "./types.ts";

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
