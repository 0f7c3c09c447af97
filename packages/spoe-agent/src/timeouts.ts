/**
 * A connection's two timeouts, on the agent's clock: `helloTimeout` from accept to the
 * HAPROXY-HELLO, then `idleTimeout` — nothing received or written and nothing in flight.
 */
import type { TimerHandle } from "./clock.ts";
import type { ResolvedOptions } from "./options.ts";

/** @internal One per connection; at most one timer armed at a time. */
export class Timeouts {
  readonly #options: ResolvedOptions;
  readonly #onHelloTimeout: () => void;
  readonly #onIdle: () => void;
  readonly #busy: () => boolean;
  #timer: TimerHandle | undefined = undefined;
  /** When a byte last went in either direction (clock ms). */
  #lastActive = 0;

  /** `busy` tells whether NOTIFYs are in flight (then the connection is not idle). */
  constructor(options: ResolvedOptions, onHelloTimeout: () => void, onIdle: () => void, busy: () => boolean) {
    this.#options = options;
    this.#onHelloTimeout = onHelloTimeout;
    this.#onIdle = onIdle;
    this.#busy = busy;
    this.#timer = options.clock.setTimer(this.#helloExpired, options.helloTimeout);
  }

  /** Bytes went in or out. */
  touch(): void {
    this.#lastActive = this.#options.clock.now();
  }

  /** The HELLO is done: the idle timeout from now on (if any). */
  helloDone(): void {
    this.clear();
    this.touch();
    const { idleTimeout, clock } = this.#options;
    if (idleTimeout > 0) this.#timer = clock.setTimer(this.#checkIdle, idleTimeout);
  }

  clear(): void {
    this.#options.clock.clearTimer(this.#timer);
    this.#timer = undefined;
  }

  readonly #helloExpired = (): void => {
    this.#timer = undefined;
    this.#onHelloTimeout();
  };

  /** Re-armed until nothing went either way for `idleTimeout` ms with nothing in flight. */
  readonly #checkIdle = (): void => {
    this.#timer = undefined;
    const { clock, idleTimeout } = this.#options;
    const busy = this.#busy();
    const quiet = clock.now() - this.#lastActive;
    if (!busy && quiet >= idleTimeout) {
      this.#onIdle();
      return;
    }
    this.#timer = clock.setTimer(this.#checkIdle, busy ? idleTimeout : Math.max(1, idleTimeout - quiet));
  };
}
