/** A pending call that may expire: `expire()` runs once its deadline passes, unless deleted first. */
export interface Expiring {
  /** Deadline on the queue's clock (µs). */
  readonly deadline: number;
  expire(): void;
}

/**
 * Deadlines for many calls with one timer instead of one per call. Calls must be added in
 * non-decreasing deadline order (true when they share one timeout and one monotonic clock), so
 * the oldest pending call always has the earliest deadline.
 *
 * The calls sit in a ring, in the order they were added; `add()` returns a ticket, and a call
 * that settles is taken out at once with it (its slot emptied), so the queue never keeps an
 * answered call — nor what its closures hold — alive until its deadline. (An array kept every
 * call until its deadline; a `Set` was measured keeping tens of megabytes of answered calls
 * reachable under load after an idle period. Either way scavenges copied and promoted them.)
 */
export class DeadlineQueue {
  readonly #clock: () => number;
  #slots: (Expiring | undefined)[] = new Array(64).fill(undefined);
  #mask = 63;
  /** Ticket of the oldest slot still in the ring, and of the next call to add. */
  #head = 0;
  #tail = 0;
  #pending = 0;
  /** The timer until the head's deadline, or the look after the poll phase once it passed. */
  #timer: NodeJS.Timeout | NodeJS.Immediate | undefined;

  constructor(clock: () => number) {
    this.#clock = clock;
  }

  /** Calls waiting now. */
  get size(): number {
    return this.#pending;
  }

  /** Starts watching `item`; returns the ticket that {@link delete} takes. */
  add(item: Expiring): number {
    if (this.#tail - this.#head > this.#mask) this.#grow();
    const ticket = this.#tail++;
    this.#slots[ticket & this.#mask] = item;
    this.#pending++;
    if (this.#timer === undefined) this.#arm(item.deadline);
    return ticket;
  }

  /** Stops watching the call of `ticket` (it settled). A ticket already expired is ignored. */
  delete(ticket: number): void {
    if (ticket < this.#head || ticket >= this.#tail) return;
    const at = ticket & this.#mask;
    if (this.#slots[at] === undefined) return;
    this.#slots[at] = undefined;
    this.#pending--;
    if (ticket === this.#head) this.#skipEmpty();
  }

  /** Expires nothing more and stops the timer; pending items are forgotten. */
  clear(): void {
    clearTimeout(this.#timer as NodeJS.Timeout);
    clearImmediate(this.#timer as NodeJS.Immediate);
    this.#timer = undefined;
    this.#slots.fill(undefined);
    this.#head = this.#tail;
    this.#pending = 0;
  }

  /** Moves the head past emptied slots. */
  #skipEmpty(): void {
    while (this.#head < this.#tail && this.#slots[this.#head & this.#mask] === undefined) this.#head++;
  }

  #grow(): void {
    const size = (this.#mask + 1) * 2;
    const slots: (Expiring | undefined)[] = new Array(size).fill(undefined);
    for (let ticket = this.#head; ticket < this.#tail; ticket++) {
      slots[ticket & (size - 1)] = this.#slots[ticket & this.#mask];
    }
    this.#slots = slots;
    this.#mask = size - 1;
  }

  #arm(deadline: number): void {
    const delayMs = Math.max((deadline - this.#clock()) / 1000, 0);
    this.#timer = setTimeout(this.#fire, delayMs);
    this.#timer.unref();
  }

  /**
   * The timer is due: look again after the event loop's poll phase. After a stall (a long task,
   * a GC pause, a CPU taken by other processes) expired timers run before the poll phase reads
   * the replies already waiting in the sockets; expiring now would call those calls late.
   */
  readonly #fire = (): void => {
    this.#timer = setImmediate(this.#expireDue);
  };

  readonly #expireDue = (): void => {
    this.#timer = undefined;
    const now = this.#clock();
    this.#skipEmpty();
    while (this.#head < this.#tail) {
      const at = this.#head & this.#mask;
      const item = this.#slots[at] as Expiring;
      if (item.deadline > now) {
        this.#arm(item.deadline);
        return;
      }
      this.#slots[at] = undefined;
      this.#pending--;
      this.#head++;
      this.#skipEmpty();
      item.expire();
    }
  };
}

/**
 * Runs `expire` once `delayMs` has passed and the replies that were waiting in the sockets by
 * then have been read (see {@link DeadlineQueue}): a timer, then a look after the poll phase.
 * Returns a function that cancels it.
 */
export function afterDeadline(delayMs: number, expire: () => void): () => void {
  let immediate: NodeJS.Immediate | undefined;
  const timer = setTimeout(
    () => {
      immediate = setImmediate(expire);
    },
    Math.max(delayMs, 0),
  );
  return () => {
    clearTimeout(timer);
    if (immediate !== undefined) clearImmediate(immediate);
  };
}
