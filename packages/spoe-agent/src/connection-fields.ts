/**
 * What a connection shows ({@link ConnectionInfo}) and the little every connection holds from
 * accept on: its logger is made on first use (most connections never log), and its timeout is
 * two numbers in the agent's {@link TimeoutQueue}, not a timer of its own.
 */
import type { Socket } from "node:net";
import type { HaproxyHello } from "@spoekit/spop-codec";
import type { Logger } from "pino";
import type { Runtime } from "./runtime.ts";
import type { Timed } from "./timeouts.ts";
import type { ConnectionInfo } from "./types.ts";

const NO_CAPABILITIES: readonly string[] = Object.freeze([]);

/** @internal The base of `Connection`. */
export abstract class ConnectionFields implements ConnectionInfo, Timed {
  readonly id: number;
  readonly socket: Socket;
  readonly tls: boolean;
  readonly remoteAddress: string | undefined;
  readonly remotePort: number | undefined;
  hello: HaproxyHello | undefined = undefined;
  engineId: string | undefined = undefined;
  healthcheck = false;
  maxFrameSize: number;
  capabilities: readonly string[] = NO_CAPABILITIES;
  inFlight = 0;
  /** @internal When the queued timeout is due. */
  deadline = 0;
  /** @internal Its place in the timeout queue, -1 when none is queued. */
  timeoutSlot = -1;
  protected readonly runtime: Runtime;
  /** When a byte last went out, or in (clock ms; see `received`), for the idle timeout. */
  protected lastActive = 0;
  /**
   * Bytes came in since the last idle check: noted without reading the clock, which every socket
   * read would pay. The check, every eighth of `idleTimeout`, counts them as of its own time, so
   * an idle connection is closed at most that much late.
   */
  protected received = false;
  #log: Logger | undefined = undefined;

  constructor(runtime: Runtime, socket: Socket, tls: boolean) {
    this.runtime = runtime;
    this.id = runtime.nextConnectionId();
    this.socket = socket;
    this.tls = tls;
    this.remoteAddress = socket.remoteAddress;
    this.remotePort = socket.remotePort;
    this.maxFrameSize = runtime.options.maxFrameSize;
  }

  /** The connection's logger (made on first use): a child of the agent's. */
  get log(): Logger {
    this.#log ??= this.runtime.log.child({
      connection: this.id,
      remote: this.remoteAddress === undefined ? "unix" : `${this.remoteAddress}:${this.remotePort}`,
    });
    return this.#log;
  }

  /** Logs at debug level; the logger is made only when that level is on. */
  protected debug(message: string, fields?: Record<string, unknown>): void {
    if (this.runtime.log.isLevelEnabled("debug")) this.log.debug(fields ?? {}, message);
  }

  /** Bytes went in or out. */
  protected touch(): void {
    this.lastActive = this.runtime.options.clock.now();
  }

  /** How long the connection has been quiet at `now` (the idle check's time). */
  protected quietAt(now: number): number {
    if (this.received) {
      this.received = false;
      this.lastActive = now;
    }
    return now - this.lastActive;
  }

  /** When the next idle check is due: an eighth of `idleTimeout` (≥ 1 ms), or at the timeout. */
  protected idleCheckIn(quiet = 0, busy = true): number {
    const { idleTimeout } = this.runtime.options;
    const step = Math.max(1, Math.ceil(idleTimeout / 8));
    return busy ? step : Math.max(1, Math.min(step, idleTimeout - quiet));
  }

  /** @internal Called by the timeout queue at the deadline. */
  abstract timedOut(): void;
}
