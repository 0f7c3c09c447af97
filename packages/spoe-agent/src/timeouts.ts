/**
 * The connections' timeouts (`helloTimeout` from accept to the HAPROXY-HELLO, then
 * `idleTimeout`) on one timer per clock: the connections wait in a binary heap ordered by
 * deadline, and the clock's single timer is armed for the nearest. A connection costs two
 * numbers instead of a timer and its callbacks — agents hold many idle connections.
 */
import type { AgentClock, TimerHandle } from "./clock.ts";

/** @internal Something with a deadline: a connection. */
export interface Timed {
  /** When it is due (clock ms); meaningful while queued. */
  deadline: number;
  /** Its index in the queue's heap, -1 when not queued. */
  timeoutSlot: number;
  /** The deadline passed (it is out of the queue; it may queue itself again). */
  timedOut(): void;
}

/** @internal The deadlines of every connection on one clock, on one timer. */
export class TimeoutQueue {
  readonly #clock: AgentClock;
  readonly #heap: Timed[] = [];
  #timer: TimerHandle | undefined = undefined;
  /** The deadline the timer is armed for; +∞ when none. */
  #armedFor = Number.POSITIVE_INFINITY;

  constructor(clock: AgentClock) {
    this.#clock = clock;
  }

  /** Queues `item` (again) to time out `ms` from now. */
  add(item: Timed, ms: number): void {
    this.remove(item);
    const deadline = this.#clock.now() + ms;
    const heap = this.#heap;
    item.deadline = deadline;
    item.timeoutSlot = heap.length;
    heap.push(item);
    this.#up(item.timeoutSlot);
    // A deadline later than the armed one waits its turn; the timer re-arms when it fires.
    if (deadline < this.#armedFor) this.#arm(deadline);
  }

  /** Takes `item` out of the queue (nothing if it is not in it). */
  remove(item: Timed): void {
    const slot = item.timeoutSlot;
    if (slot < 0) return;
    item.timeoutSlot = -1;
    const heap = this.#heap;
    const last = heap.pop() as Timed;
    if (slot < heap.length) {
      heap[slot] = last;
      last.timeoutSlot = slot;
      this.#down(slot);
      this.#up(last.timeoutSlot);
    }
    if (heap.length === 0) {
      // Nothing left to time out: no timer (an armed one for a removed item just fires early).
      this.#clock.clearTimer(this.#timer);
      this.#timer = undefined;
      this.#armedFor = Number.POSITIVE_INFINITY;
    }
  }

  #arm(deadline: number): void {
    const clock = this.#clock;
    clock.clearTimer(this.#timer);
    this.#armedFor = deadline;
    this.#timer = clock.setTimer(this.#fire, Math.max(0, deadline - clock.now()));
  }

  readonly #fire = (): void => {
    this.#timer = undefined;
    this.#armedFor = Number.POSITIVE_INFINITY;
    const heap = this.#heap;
    try {
      for (let head = heap[0]; head !== undefined && head.deadline <= this.#clock.now(); head = heap[0]) {
        this.remove(head);
        head.timedOut();
      }
    } finally {
      const head = heap[0];
      if (head !== undefined && head.deadline < this.#armedFor) this.#arm(head.deadline);
    }
  };

  #up(slot: number): void {
    const heap = this.#heap;
    const item = heap[slot] as Timed;
    while (slot > 0) {
      const parentSlot = (slot - 1) >> 1;
      const parent = heap[parentSlot] as Timed;
      if (parent.deadline <= item.deadline) break;
      heap[slot] = parent;
      parent.timeoutSlot = slot;
      slot = parentSlot;
    }
    heap[slot] = item;
    item.timeoutSlot = slot;
  }

  #down(slot: number): void {
    const heap = this.#heap;
    const item = heap[slot] as Timed;
    const length = heap.length;
    for (;;) {
      let child = 2 * slot + 1;
      if (child >= length) break;
      const right = child + 1;
      if (right < length && (heap[right] as Timed).deadline < (heap[child] as Timed).deadline) child = right;
      const next = heap[child] as Timed;
      if (next.deadline >= item.deadline) break;
      heap[slot] = next;
      next.timeoutSlot = slot;
      slot = child;
    }
    heap[slot] = item;
    item.timeoutSlot = slot;
  }
}

/** One queue per clock: agents on one clock share its timer. */
const queues = new WeakMap<AgentClock, TimeoutQueue>();

/** @internal The timeout queue of `clock`. */
export function timeoutsOf(clock: AgentClock): TimeoutQueue {
  let queue = queues.get(clock);
  if (queue === undefined) {
    queue = new TimeoutQueue(clock);
    queues.set(clock, queue);
  }
  return queue;
}
