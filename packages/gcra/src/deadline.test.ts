import { once } from "node:events";
import { connect, createServer, type Socket } from "node:net";
import { afterEach, describe, expect, it, vi } from "vitest";
import { afterDeadline, DeadlineQueue } from "./deadline.ts";
import { monotonicMicros } from "./gcra.ts";

describe("DeadlineQueue", () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it("expires the calls still pending once their deadlines pass, in order, and holds no settled call", async () => {
    vi.useFakeTimers();
    // The queue's clock follows the fake timers.
    const clock = () => Date.now() * 1000;
    const queue = new DeadlineQueue(clock);
    const expired: number[] = [];
    const early: number[] = [];
    const tickets: number[] = [];
    const start = clock();
    for (let i = 0; i < 1000; i++) {
      const deadline = start + 20_000 + i * 10;
      const call = {
        deadline,
        expire: () => {
          expired.push(i);
          if (clock() < deadline) early.push(i);
        },
      };
      tickets.push(queue.add(call));
    }
    // Answered calls leave at once: nothing keeps them until their deadline.
    for (let i = 0; i < 1000; i++) if (i % 100 !== 7) queue.delete(tickets[i] as number);
    expect(queue.size).toBe(10);
    await vi.advanceTimersByTimeAsync(19);
    expect(expired).toEqual([]);
    await vi.advanceTimersByTimeAsync(12);
    expect(expired).toEqual([7, 107, 207, 307, 407, 507, 607, 707, 807, 907]);
    expect(early).toEqual([]);
    expect(queue.size).toBe(0);
    // A ticket whose call already expired is ignored.
    queue.delete(tickets[7] as number);
    expect(queue.size).toBe(0);
    // Idle, then busy again: the timer is armed anew.
    queue.add({ deadline: clock() + 5_000, expire: () => expired.push(-1) });
    await vi.advanceTimersByTimeAsync(4);
    expect(expired.at(-1)).toBe(907);
    await vi.advanceTimersByTimeAsync(2);
    expect(expired.at(-1)).toBe(-1);
    queue.clear();
  });
});

/** A connected loopback socket pair: what the server writes arrives at `client`. */
async function socketPair(): Promise<{ client: Socket; server: Socket; close(): void }> {
  const listener = createServer();
  listener.listen(0, "127.0.0.1");
  await once(listener, "listening");
  const port = (listener.address() as { port: number }).port;
  const accepted = once(listener, "connection");
  const client = connect(port, "127.0.0.1");
  await once(client, "connect");
  const [server] = (await accepted) as [Socket];
  return {
    client,
    server,
    close() {
      client.destroy();
      server.destroy();
      listener.close();
    },
  };
}

/** Blocks the event loop (a long task, a GC pause, a CPU taken by others) until `clock` passes `until`. */
function stall(clock: () => number, until: number): void {
  while (clock() < until) {
    // busy
  }
}

describe("deadlines after a stall", () => {
  // The reply is in the socket before the deadline passes, but the event loop is stalled past it:
  // when it runs again, the expired timer comes first — the reply waiting in the socket must
  // still win, because the queue looks again only after the poll phase has read it.
  it("reads a reply that waited in the socket before declaring its call late (shared queue)", async () => {
    const pair = await socketPair();
    try {
      const queue = new DeadlineQueue(monotonicMicros);
      const outcome: string[] = [];
      const ticket = queue.add({ deadline: monotonicMicros() + 2_000, expire: () => outcome.push("late") });
      pair.client.once("data", () => {
        queue.delete(ticket);
        outcome.push("answered");
      });
      pair.server.write("+OK\r\n");
      stall(monotonicMicros, monotonicMicros() + 30_000);
      await new Promise((resolve) => setTimeout(resolve, 10));
      expect(outcome).toEqual(["answered"]);
      expect(queue.size).toBe(0);
    } finally {
      pair.close();
    }
  });

  it("does the same for a call with a deadline of its own", async () => {
    const pair = await socketPair();
    try {
      const outcome: string[] = [];
      const cancel = afterDeadline(2, () => outcome.push("late"));
      pair.client.once("data", () => {
        cancel();
        outcome.push("answered");
      });
      pair.server.write("+OK\r\n");
      stall(monotonicMicros, monotonicMicros() + 30_000);
      await new Promise((resolve) => setTimeout(resolve, 10));
      expect(outcome).toEqual(["answered"]);
    } finally {
      pair.close();
    }
  });

  it("still expires a call whose reply is not there", async () => {
    const queue = new DeadlineQueue(monotonicMicros);
    const outcome: string[] = [];
    queue.add({ deadline: monotonicMicros() + 2_000, expire: () => outcome.push("late") });
    stall(monotonicMicros, monotonicMicros() + 5_000);
    await new Promise((resolve) => setTimeout(resolve, 10));
    expect(outcome).toEqual(["late"]);
  });
});
