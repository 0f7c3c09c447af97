/**
 * The types the agent's modules share, in a module of their own so that every import points one
 * way: implementation files import from here, never from each other for a type.
 */
import type { Socket } from "node:net";
import type { Action, HaproxyHello, NotifyFrame } from "@spoekit/spop-codec";
import type { Logger } from "pino";
import type { ListenAddress } from "./listen.ts";

/** What handlers, hooks and diagnostics see of a connection. */
export interface ConnectionInfo {
  /** Unique per agent, from 1. */
  readonly id: number;
  /** The socket (a `TLSSocket` with TLS). Writing to it breaks the protocol: read only. */
  readonly socket: Socket;
  readonly tls: boolean;
  /** HAProxy's address (`undefined` on a unix socket). */
  readonly remoteAddress: string | undefined;
  readonly remotePort: number | undefined;
  /** The connection's logger: a child of the agent's with `connection` and `remote`. */
  readonly log: Logger;
  /** What HAProxy's HELLO said, once received. */
  readonly hello: HaproxyHello | undefined;
  /** The `engine-id` of HAProxy's HELLO (one per SPOE engine and HAProxy process). */
  readonly engineId: string | undefined;
  /** A health-check connection (`healthcheck` in the HELLO). */
  readonly healthcheck: boolean;
  /** The negotiated max-frame-size (the agent's own until the HELLO). */
  readonly maxFrameSize: number;
  /** The negotiated capabilities (empty until the HELLO). */
  readonly capabilities: readonly string[];
  /** NOTIFYs received and not yet answered on this connection. */
  readonly inFlight: number;
}

/** @internal What the agent and its runtime do with a connection besides looking at it. */
export interface ManagedConnection extends ConnectionInfo {
  /** Writes the ready ACKs (called by the runtime once per tick). */
  flush(): void;
  /** Graceful close: answer what was received, then AGENT-DISCONNECT. */
  drain(): void;
  /** The close deadline passed: answer what runs per `failureAck`, disconnect, close. */
  forceClose(): void;
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
  | "hook"
  /**
   * A bound was hit (`error` is a ResourceLimitError): a connection refused at accept
   * (`maxConnections`) or disconnected with status 13 (`maxBufferedBytes`, `maxTotalBufferedBytes`).
   */
  | "limit";

/** What a `failureAck` function is told about a failed NOTIFY. */
export interface HandlerFailure {
  /** `error`: a handler threw or rejected; `timeout`: the deadline passed. */
  readonly kind: "error" | "timeout";
  readonly error: Error;
  readonly notify: NotifyFrame;
  /** The actions the handlers set before the failure. */
  readonly actions: readonly Action[];
  readonly connection: ConnectionInfo;
}

/**
 * Named lifecycle hooks, run in the order they were added. The synchronous ones
 * (`onConnection`, `onConnectionClose`) run on the connection's path: keep them cheap. A hook
 * that throws is logged and reported on the `error` channel; it does not stop the agent.
 */
export interface AgentHooks {
  /** A server started listening (awaited by `listen()`). */
  onListen: (address: ListenAddress) => void | Promise<void>;
  /** A connection was accepted, before its HELLO (e.g. to record it, or wrap its socket in tests). */
  onConnection: (connection: ConnectionInfo) => void;
  /** A connection closed. */
  onConnectionClose: (connection: ConnectionInfo, cause: CloseCause) => void;
  /** `close()` began; awaited before the servers stop accepting. */
  preClose: () => void | Promise<void>;
  /** `close()` is done: every server and connection is closed. */
  onClose: () => void | Promise<void>;
}
