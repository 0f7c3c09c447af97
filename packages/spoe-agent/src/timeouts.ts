/**
 * A connection's two timeouts, on the agent's clock: `helloTimeout` from accept to the
 * HAPROXY-HELLO, then `idleTimeout` — nothing received or written and nothing in flight.
 */
import type { TimerHandle } from "./clock.ts";
import type { ResolvedOptions } from "./options.ts";

/** How often the idle check runs: an eighth of `idleTimeout`, at least 1 ms. */
const idleStep = (idleTimeout: number): number => Math.max(1, Math.ceil(idleTimeout / 8));

/** @internal One per connection; at most one timer armed at a time. */
export class Timeouts {
  readonly #options: ResolvedOptions;
  readonly #onHelloTimeout: () => void;
  readonly #onIdle: () => void;
  readonly #busy: () => boolean;
  #timer: TimerHandle | undefined = undefined;
  /** When a byte last went in either direction (clock ms), or later (see `received`). */
  #lastActive = 0;
  /** Bytes came in since the last idle check. */
  #received = false;

  /** `busy` tells whether NOTIFYs are in flight (then the connection is not idle). */
  constructor(options: ResolvedOptions, onHelloTimeout: () => void, onIdle: () => void, busy: () => boolean) {
    this.#options = options;
    this.#onHelloTimeout = onHelloTimeout;
    this.#onIdle = onIdle;
    this.#busy = busy;
    this.#timer = options.clock.setTimer(this.#helloExpired, options.helloTimeout);
  }

  /** Bytes went out (or in, where the clock is read anyway): activity now. */
  touch(): void {
    this.#lastActive = this.#options.clock.now();
  }

  /**
   * Bytes came in: noted without reading the clock, which every socket read would pay. The idle
   * check, every eighth of `idleTimeout`, takes its own time as that of the reads it finds, so
   * that an idle connection is closed at most that much late.
   */
  received(): void {
    this.#received = true;
  }

  /** The HELLO is done: the idle timeout from now on (if any). */
  helloDone(): void {
    this.clear();
    this.touch();
    const { idleTimeout, clock } = this.#options;
    if (idleTimeout > 0) this.#timer = clock.setTimer(this.#checkIdle, idleStep(idleTimeout));
  }

  clear(): void {
    this.#options.clock.clearTimer(this.#timer);
    this.#timer = undefined;
  }

  readonly #helloExpired = (): void => {
    this.#timer = undefined;
    this.#onHelloTimeout();
  };

  /** Every eighth of `idleTimeout` until nothing went either way for it with nothing in flight. */
  readonly #checkIdle = (): void => {
    this.#timer = undefined;
    const { clock, idleTimeout } = this.#options;
    const now = clock.now();
    if (this.#received) {
      this.#received = false;
      this.#lastActive = now;
    }
    const busy = this.#busy();
    const quiet = now - this.#lastActive;
    if (!busy && quiet >= idleTimeout) {
      this.#onIdle();
      return;
    }
    const step = idleStep(idleTimeout);
    this.#timer = clock.setTimer(
      this.#checkIdle,
      busy ? step : Math.max(1, Math.min(step, idleTimeout - quiet)),
    );
  };
}
