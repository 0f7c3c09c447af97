/**
 * How a connection's socket ends: the agent's last write and the bounded wait for the socket to
 * close, socket errors told apart from resets (a normal close for HAProxy), and the cause
 * reported when the socket is gone.
 */
import type { Logger } from "pino";
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

  constructor(runtime: Runtime, connection: ConnectionInfo) {
    this.#runtime = runtime;
    this.#connection = connection;
    connection.socket.on("error", this.#onError);
    connection.socket.on("end", this.#onEnd);
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

  readonly #onError = (error: NodeJS.ErrnoException): void => {
    this.error = error;
    if (error.code !== undefined && RESET_CODES.has(error.code)) {
      this.#log.debug({ code: error.code }, "connection reset");
    } else {
      this.#log.warn({ err: error }, "socket error");
      this.#runtime.reportError("socket", error, this.#connection);
    }
  };

  readonly #onEnd = (): void => {
    this.#sawEnd = true;
    this.#log.debug("HAProxy closed the connection");
  };
}
