/** A pending call that may expire: `expire()` runs once its deadline passes, unless deleted first. */
export interface Expiring {
  /** Deadline on the queue's clock (µs). */
  readonly deadline: number;
  expire(): void;
}

/**
 * Deadlines for many calls with one timer instead of one per call. Calls must be added in
 * non-decreasing deadline order (true when they share one timeout and one monotonic clock), so
 * the earliest deadline is always the oldest pending call. A call that settles is deleted at
 * once: the queue holds only calls still waiting, never the answered ones until their deadline
 * (at many thousand calls per second that would keep a deadline's worth of calls alive, to be
 * copied by every garbage collection).
 */
export class DeadlineQueue {
  readonly #clock: () => number;
  /** Pending calls in insertion order — which is deadline order. */
  readonly #pending = new Set<Expiring>();
  #timer: NodeJS.Timeout | undefined;

  constructor(clock: () => number) {
    this.#clock = clock;
  }

  /** Calls waiting now. */
  get size(): number {
    return this.#pending.size;
  }

  /** Starts watching `item`. */
  add(item: Expiring): void {
    this.#pending.add(item);
    if (this.#timer === undefined) this.#arm(item.deadline);
  }

  /** Stops watching `item` (it settled). The timer stays armed; it re-arms for the next call or stops. */
  delete(item: Expiring): void {
    this.#pending.delete(item);
  }

  /** Expires nothing more and stops the timer; pending items are forgotten. */
  clear(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#pending.clear();
  }

  #arm(deadline: number): void {
    const delayMs = Math.max((deadline - this.#clock()) / 1000, 0);
    this.#timer = setTimeout(this.#fire, delayMs);
    this.#timer.unref();
  }

  readonly #fire = (): void => {
    this.#timer = undefined;
    const now = this.#clock();
    for (const item of this.#pending) {
      if (item.deadline > now) {
        this.#arm(item.deadline);
        return;
      }
      this.#pending.delete(item);
      item.expire();
    }
  };
}
