/** A pending call that may expire: `expire()` runs once its deadline passes, unless settled first. */
export interface Expiring {
  /** Deadline on the queue's clock (µs). */
  readonly deadline: number;
  /** True once the call has its answer; the queue then drops it without calling `expire()`. */
  settled: boolean;
  expire(): void;
}

/**
 * Deadlines for many calls with one timer instead of one per call. Calls must be added in
 * non-decreasing deadline order (true when they share one timeout and one monotonic clock), so
 * the earliest deadline is always at the head. A call that settles simply marks itself; the
 * queue drops it when it reaches the head.
 */
export class DeadlineQueue {
  readonly #clock: () => number;
  #items: Expiring[] = [];
  #head = 0;
  #timer: NodeJS.Timeout | undefined;

  constructor(clock: () => number) {
    this.#clock = clock;
  }

  /** Starts watching `item`. */
  add(item: Expiring): void {
    this.#items.push(item);
    if (this.#timer === undefined) this.#arm(item.deadline);
  }

  /** Expires nothing more and stops the timer; pending items are forgotten. */
  clear(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#items = [];
    this.#head = 0;
  }

  #arm(deadline: number): void {
    const delayMs = Math.max((deadline - this.#clock()) / 1000, 0);
    this.#timer = setTimeout(this.#fire, delayMs);
    this.#timer.unref();
  }

  readonly #fire = (): void => {
    this.#timer = undefined;
    const now = this.#clock();
    const items = this.#items;
    let head = this.#head;
    while (head < items.length) {
      const item = items[head] as Expiring;
      if (!item.settled) {
        if (item.deadline > now) break;
        item.settled = true;
        item.expire();
      }
      head++;
    }
    if (head >= items.length) {
      this.#items = [];
      this.#head = 0;
      return;
    }
    // Compact now and then so the array does not grow without bound.
    if (head > 1024 && head * 2 > items.length) {
      this.#items = items.slice(head);
      head = 0;
    }
    this.#head = head;
    this.#arm((this.#items[head] as Expiring).deadline);
  };
}
