import { describe, expect, it } from "vitest";
import { DeadlineQueue } from "./deadline.ts";
import { monotonicMicros } from "./gcra.ts";

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe("DeadlineQueue", () => {
  it("expires the calls still pending once their deadlines pass, in order, and holds no settled call", async () => {
    const queue = new DeadlineQueue(monotonicMicros);
    const expired: number[] = [];
    const early: number[] = [];
    const tickets: number[] = [];
    const start = monotonicMicros();
    for (let i = 0; i < 1000; i++) {
      const deadline = start + 20_000 + i * 10;
      const call = {
        deadline,
        expire: () => {
          expired.push(i);
          if (monotonicMicros() < deadline) early.push(i);
        },
      };
      tickets.push(queue.add(call));
    }
    // Answered calls leave at once: nothing keeps them until their deadline.
    for (let i = 0; i < 1000; i++) if (i % 100 !== 7) queue.delete(tickets[i] as number);
    expect(queue.size).toBe(10);
    for (let waited = 0; queue.size > 0 && waited < 2000; waited += 5) await sleep(5);
    expect(expired).toEqual([7, 107, 207, 307, 407, 507, 607, 707, 807, 907]);
    expect(early).toEqual([]);
    // A ticket whose call already expired is ignored.
    queue.delete(tickets[7] as number);
    expect(queue.size).toBe(0);
    // Idle, then busy again: the timer is armed anew.
    queue.add({ deadline: monotonicMicros() + 5_000, expire: () => expired.push(-1) });
    for (let waited = 0; queue.size > 0 && waited < 2000; waited += 5) await sleep(5);
    expect(expired.at(-1)).toBe(-1);
    queue.clear();
  });
});
