/**
 * How a connection's socket ends: the agent's last write and the bounded wait for the socket to
 * close, socket errors told apart from resets (a normal close for HAProxy), and the cause
 * reported when the socket is gone.
 */
import type { Socket } from "node:net";
import {
  agentDisconnectFrame,
  DisconnectStatus,
  encodeFrame,
  type FrameWriter,
  type SpopError,
} from "@spoekit/spop-codec";
import type { Logger } from "pino";
import { ProtocolError, ResourceLimitError, type SpoeAgentError } from "./errors.ts";
import type { Runtime } from "./runtime.ts";
import type { CloseCause, ConnectionInfo } from "./types.ts";

/** Errors that mean "HAProxy went away": a normal close, logged at debug. */
const RESET_CODES = new Set(["ECONNRESET", "EPIPE", "ECONNABORTED", "ERR_STREAM_PREMATURE_CLOSE"]);
/** How long a socket may take to close after the agent ended it before it is destroyed. */
const END_GRACE_MS = 1000;

/** @internal What a connection knows about its socket's end. */
export class Teardown {
  readonly #runtime: Runtime;
  readonly #connection: ConnectionInfo;
  #endTimer: NodeJS.Timeout | undefined = undefined;
  #sawEnd = false;
  /** Set by the connection when it closes on purpose (a DISCONNECT, a health check). */
  cause: CloseCause | undefined = undefined;
  /** The socket's error, if it failed. */
  error: Error | undefined = undefined;

  /** The connection calls {@link Teardown.failed} and {@link Teardown.ended} on its socket's events. */
  constructor(runtime: Runtime, connection: ConnectionInfo) {
    this.#runtime = runtime;
    this.#connection = connection;
  }

  /**
   * The agent disconnects with `status`: a peer's fault (not status 0) is logged in one line
   * without a stack, rate-limited per peer (the stack at debug), and reported; `cause`: the
   * codec's error, `limit`: the bound passed.
   */
  disconnecting(status: number, message: string, cause?: SpopError, limit?: SpoeAgentError): void {
    const runtime = this.#runtime;
    const connection = this.#connection;
    if (status !== DisconnectStatus.NORMAL) {
      const error = limit ?? new ProtocolError(status, message, { cause });
      runtime.peerWarn(this.#log, peerOf(connection.socket), { status }, error, `disconnecting: ${message}`);
      runtime.reportError(limit === undefined ? "protocol" : "limit", error, connection, status);
    } else if (runtime.log.isLevelEnabled("debug")) {
      this.#log.debug({ reason: message }, "disconnecting");
    }
    this.cause ??= "agent-disconnect";
  }

  /** Writes `bytes` as the last write, then destroys the socket if it does not close in time. */
  end(bytes: Buffer): void {
    const { socket } = this.#connection;
    socket.end(bytes);
    this.#endTimer = setTimeout(() => socket.destroy(), END_GRACE_MS);
    this.#endTimer.unref();
  }

  /** The socket closed: why. */
  closed(): CloseCause {
    clearTimeout(this.#endTimer);
    return this.cause ?? (this.error !== undefined ? "reset" : this.#sawEnd ? "peer-closed" : "destroyed");
  }

  get #log(): Logger {
    return this.#connection.log;
  }

  /** The socket's `error` event. */
  failed(error: NodeJS.ErrnoException): void {
    this.error = error;
    if (error.code !== undefined && RESET_CODES.has(error.code)) {
      if (this.#runtime.log.isLevelEnabled("debug"))
        this.#log.debug({ code: error.code }, "connection reset");
    } else {
      this.#log.warn({ err: error }, "socket error");
      this.#runtime.reportError("socket", error, this.#connection);
    }
  }

  /** The socket's `end` event. */
  ended(): void {
    this.#sawEnd = true;
    if (this.#runtime.log.isLevelEnabled("debug")) this.#log.debug("HAProxy closed the connection");
  }
}

/** Writes AGENT-DISCONNECT with `status` and `message` into `writer`. */
export function writeDisconnect(writer: FrameWriter, status: number, message: string): void {
  try {
    writer.write(agentDisconnectFrame(status, message));
  } catch {
    // A long message may not fit a small negotiated frame size; the reason alone does.
    writer.write(agentDisconnectFrame(status));
  }
}

/** The address a peer's lines are rate-limited by: its IP, or `unix`. */
export function peerOf(socket: Socket): string {
  return socket.remoteAddress ?? "unix";
}

/**
 * Refuses a socket at accept because the agent holds `maxConnections`: AGENT-DISCONNECT status
 * 13 and the end of the socket (destroyed if it does not close in time); a socket still in its
 * TLS handshake (`handshaking`) is closed at once. Logged (rate-limited per peer) and reported.
 */
export function refuse(runtime: Runtime, socket: Socket, handshaking: boolean): void {
  const { maxConnections } = runtime.options;
  const message = `the agent holds its maximum of ${maxConnections} connections`;
  const error = new ResourceLimitError(`connection refused: ${message}`);
  const remote = socket.remoteAddress === undefined ? "unix" : `${socket.remoteAddress}:${socket.remotePort}`;
  runtime.peerWarn(runtime.log, peerOf(socket), { remote, maxConnections }, error, "connection refused");
  runtime.reportError("limit", error, undefined, DisconnectStatus.RESOURCE_ALLOCATION_ERROR);
  socket.on("error", () => {}); // the peer may reset it first: nothing left to do
  if (handshaking) {
    socket.destroy();
    return;
  }
  socket.end(encodeFrame(agentDisconnectFrame(DisconnectStatus.RESOURCE_ALLOCATION_ERROR, message)));
  setTimeout(() => socket.destroy(), END_GRACE_MS).unref();
}
