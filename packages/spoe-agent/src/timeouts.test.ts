import { describe, expect, it } from "vitest";
import { ManualClock } from "./testing/manual-clock.ts";
import { type Timed, TimeoutQueue } from "./timeouts.ts";

/** An item that records when (clock time) it timed out. */
function item(clock: ManualClock, fired: [string, number][], name: string): Timed {
  return {
    deadline: 0,
    timeoutSlot: -1,
    timedOut: () => fired.push([name, clock.now()]),
  };
}

describe("TimeoutQueue", () => {
  it("fires each item at its own deadline, on one timer, whatever the order they were added in", () => {
    const clock = new ManualClock(0);
    const queue = new TimeoutQueue(clock);
    const fired: [string, number][] = [];
    const delays = [50, 10, 40, 10, 30, 20, 70, 60];
    const items = delays.map((_, i) => item(clock, fired, `i${i}`));
    for (const [i, ms] of delays.entries()) queue.add(items[i] as Timed, ms);
    expect(clock.pending).toBe(1);
    clock.advance(100);
    expect(fired.map(([, at]) => at)).toEqual([...delays].sort((a, b) => a - b));
    expect(new Set(fired.map(([name]) => name)).size).toBe(delays.length);
    expect(clock.pending).toBe(0);
  });

  it("never fires an item removed or queued again for later; an emptied queue arms no timer", () => {
    const clock = new ManualClock(0);
    const queue = new TimeoutQueue(clock);
    const fired: [string, number][] = [];
    const [a, b, c] = ["a", "b", "c"].map((name) => item(clock, fired, name)) as [Timed, Timed, Timed];
    queue.add(a, 10);
    queue.add(b, 20);
    queue.add(c, 30);
    queue.remove(a);
    queue.remove(a); // twice: nothing
    queue.add(b, 50); // again, later: at 50
    clock.advance(40);
    expect(fired).toEqual([["c", 30]]);
    clock.advance(20);
    expect(fired).toEqual([
      ["c", 30],
      ["b", 50],
    ]);
    queue.add(a, 5);
    queue.remove(a);
    expect(clock.pending).toBe(0);
  });

  it("lets an item queue itself again from its timeout, and fires it again then", () => {
    const clock = new ManualClock(0);
    const queue = new TimeoutQueue(clock);
    const times: number[] = [];
    const again: Timed = {
      deadline: 0,
      timeoutSlot: -1,
      timedOut: () => {
        times.push(clock.now());
        if (times.length < 3) queue.add(again, 25);
      },
    };
    queue.add(again, 10);
    clock.advance(200);
    expect(times).toEqual([10, 35, 60]);
  });
});
