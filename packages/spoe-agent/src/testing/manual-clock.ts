/**
 * A clock that moves only when told: pass it as the agent's `clock` option and call
 * `advance(ms)` to fire the deadlines and timeouts that fall due, without waiting.
 */
import type { AgentClock, TimerHandle } from "../clock.ts";

/** One turn of the event loop: what is queued now (I/O callbacks, promise reactions) runs. */
const turn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

interface Timer {
  readonly at: number;
  readonly seq: number;
  readonly callback: () => void;
}

/**
 * An {@link AgentClock} for tests: time starts at `start` and moves by {@link ManualClock.advance}.
 *
 * @example
 * ```ts
 * const clock = new ManualClock();
 * const agent = createAgent({ clock, handlerTimeout: 100 });
 * // … send a NOTIFY whose handler never finishes …
 * clock.advance(100); // the NOTIFY is answered at its deadline now
 * ```
 */
export class ManualClock implements AgentClock {
  #now: number;
  #seq = 0;
  /** Armed timers, unordered (tests arm few). */
  readonly #timers = new Set<Timer>();

  constructor(start = 1000) {
    this.#now = start;
  }

  now(): number {
    return this.#now;
  }

  setTimer(callback: () => void, ms: number): TimerHandle {
    const timer: Timer = { at: this.#now + Math.max(0, ms), seq: this.#seq++, callback };
    this.#timers.add(timer);
    return timer;
  }

  clearTimer(handle: TimerHandle | undefined): void {
    if (handle !== undefined) this.#timers.delete(handle as Timer);
  }

  /** How many timers are armed. */
  get pending(): number {
    return this.#timers.size;
  }

  /**
   * Moves time forward by `ms`, firing each timer that falls due in time order (with the clock
   * set to its due time), including timers armed by those callbacks.
   */
  advance(ms: number): void {
    const end = this.#now + ms;
    for (let next = this.#earliest(end); next !== undefined; next = this.#earliest(end)) {
      this.#timers.delete(next);
      this.#now = Math.max(this.#now, next.at);
      next.callback();
    }
    this.#now = end;
  }

  /**
   * As {@link ManualClock.advance}, but lets the event loop turn once first (so that timers
   * about to be armed are) and after each timer, so that what a timer starts (a handler
   * resuming, its ACK written) happens before the next one fires.
   */
  async advanceAsync(ms: number): Promise<void> {
    await turn();
    const end = this.#now + ms;
    for (let next = this.#earliest(end); next !== undefined; next = this.#earliest(end)) {
      this.#timers.delete(next);
      this.#now = Math.max(this.#now, next.at);
      next.callback();
      await turn();
    }
    this.#now = end;
  }

  /** Resolves once the clock has been advanced by `ms` (to model slow work in a handler). */
  sleep(ms: number): Promise<void> {
    return new Promise((resolve) => this.setTimer(resolve, ms));
  }

  #earliest(end: number): Timer | undefined {
    let best: Timer | undefined;
    for (const timer of this.#timers) {
      if (timer.at > end) continue;
      if (best === undefined || timer.at < best.at || (timer.at === best.at && timer.seq < best.seq)) {
        best = timer;
      }
    }
    return best;
  }
}
