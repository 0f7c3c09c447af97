import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import {
  GcraLimit,
  GcraOptionError,
  type GcraRequest,
  type GcraStore,
  GcraStoreError,
  MemoryStore,
  PolicyStore,
  type PolicyStoreOptions,
  type StoreEvent,
} from "./index.ts";

/**
 * A store whose answers the test decides: each call takes the next planned outcome (`ok` decides
 * in memory, otherwise it fails with that kind), by partition `a` or `b` (the key's first letter).
 */
class ScriptedStore implements GcraStore {
  readonly memory: MemoryStore;
  fail: GcraStoreError["kind"] | undefined;
  calls = 0;

  constructor(clock: () => number) {
    this.memory = new MemoryStore({ clock });
  }

  check(key: string, limit: GcraLimit, cost = 1) {
    this.calls++;
    if (this.fail !== undefined) {
      return Promise.reject(new GcraStoreError(this.fail, `scripted ${this.fail}`));
    }
    return this.memory.check(key, limit, cost);
  }

  checkAll(requests: readonly GcraRequest[]) {
    this.calls++;
    if (this.fail !== undefined) {
      return Promise.reject(new GcraStoreError(this.fail, `scripted ${this.fail}`));
    }
    return this.memory.checkAll(requests);
  }

  partitionOf(key: string): string {
    return key.slice(0, 1);
  }

  partitions(): readonly string[] {
    return ["a", "b"];
  }

  close(): Promise<void> {
    return this.memory.close();
  }
}

const limit = new GcraLimit({ rate: 1000, burst: 1000 });

describe("PolicyStore circuits", () => {
  let now = 0;
  const clock = () => now;
  let store: ScriptedStore;
  let events: StoreEvent[];
  const policy = (options: Partial<PolicyStoreOptions> = {}) =>
    new PolicyStore(store, {
      policy: "closed",
      clock,
      onEvent: (event) => events.push(event),
      probeDelayMs: 100,
      maxProbeDelayMs: 400,
      ...options,
    });
  /** Advances the injected clock and the fake timers together. */
  const advance = async (ms: number) => {
    now += ms * 1000;
    await vi.advanceTimersByTimeAsync(ms);
  };

  beforeEach(() => {
    vi.useFakeTimers();
    now = 1_000_000_000;
    store = new ScriptedStore(clock);
    events = [];
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it("answers a late call by the policy but keeps the circuit closed: one late answer is no outage", async () => {
    const limiter = policy();
    store.fail = "timeout";
    expect(await limiter.check("a1", limit)).toMatchObject({ allowed: false, source: "closed" });
    store.fail = undefined;
    expect(await limiter.check("a1", limit)).toMatchObject({ allowed: true, source: "store" });
    expect(limiter.stats()).toMatchObject({ mode: "store", healthy: true, trips: 0, failing: [] });
    expect(events).toEqual([]);
  });

  it("opens after failureThreshold consecutive failures, per partition, and reports it once", async () => {
    const limiter = policy({ failureThreshold: 3 });
    store.fail = "connection";
    for (let i = 0; i < 2; i++) await limiter.check("a1", limit);
    expect(limiter.healthy).toBe(true);
    await limiter.check("a1", limit);
    expect(limiter.stats()).toMatchObject({ mode: "closed", trips: 1, failing: [{ partition: "a" }] });
    const calls = store.calls;
    // Open: the policy answers without touching the store, and nothing more is reported.
    for (let i = 0; i < 10; i++) expect((await limiter.check("a2", limit)).source).toBe("closed");
    expect(store.calls).toBe(calls);
    expect(events).toEqual([
      expect.objectContaining({ type: "circuit-open", partition: "a", reason: "consecutive", failures: 3 }),
    ]);
    // Partition b has a circuit of its own: a success there, then it answers on its own.
    store.fail = undefined;
    expect((await limiter.check("b1", limit)).source).toBe("store");
    expect(limiter.ready).toBe(true);
  });

  it("checkAll: a failure counts against every partition of its keys; one open circuit answers the whole request", async () => {
    const both: GcraRequest[] = [
      { key: "a1", limit },
      { key: "b1", limit },
    ];
    const limiter = policy({ failureThreshold: 2 });
    expect(await limiter.checkAll(both)).toMatchObject({ allowed: true, source: "store" });
    store.fail = "connection";
    for (let i = 0; i < 2; i++) {
      const answer = await limiter.checkAll(both);
      expect(answer).toMatchObject({ allowed: false, source: "closed" });
      expect(answer.decisions.map((d) => d?.source)).toEqual(["closed", "closed"]);
    }
    expect(limiter.stats().failing.map((f) => f.partition)).toEqual(["a", "b"]);
    // Only b open, a healthy: a request over both is answered whole, without the store.
    const other = policy({ failureThreshold: 2 });
    for (let i = 0; i < 2; i++) await other.check("b2", limit);
    store.fail = undefined;
    const calls = store.calls;
    expect(await other.checkAll(both)).toMatchObject({ allowed: false, source: "closed" });
    expect(store.calls).toBe(calls);
    expect((await other.checkAll([{ key: "a2", limit }])).source).toBe("store");
    await expect(other.checkAll([])).rejects.toMatchObject({ code: "GCRA_INVALID_INPUT" });
  });

  it("counts the calls one stall made late as one failure; a store that stays silent still opens it", async () => {
    const limiter = policy({ failureThreshold: 3 });
    store.fail = "timeout";
    // Ten calls late in the same turn of the event loop (a stall): one consecutive failure.
    const stalled = await Promise.all(Array.from({ length: 10 }, () => limiter.check("a1", limit)));
    expect(stalled.map((d) => d.source)).toEqual(Array(10).fill("closed"));
    expect(limiter.stats()).toMatchObject({ mode: "store", trips: 0 });
    // Late turn after turn: the third turn opens the circuit.
    await vi.advanceTimersByTimeAsync(0);
    await Promise.all([limiter.check("a1", limit), limiter.check("a1", limit)]);
    expect(limiter.stats()).toMatchObject({ mode: "store", trips: 0 });
    await vi.advanceTimersByTimeAsync(0);
    await limiter.check("a1", limit);
    expect(limiter.stats()).toMatchObject({ mode: "closed", trips: 1, failing: [{ partition: "a" }] });
    expect(events).toEqual([
      expect.objectContaining({ type: "circuit-open", partition: "a", reason: "consecutive", failures: 3 }),
    ]);
  });

  it("counts every connection failure in a turn: only lateness is batched", async () => {
    const limiter = policy({ failureThreshold: 3 });
    store.fail = "connection";
    await Promise.all(Array.from({ length: 3 }, () => limiter.check("a1", limit)));
    expect(limiter.stats()).toMatchObject({ mode: "closed", trips: 1 });
  });

  it("opens on a failure ratio over the window, and forgets failures older than the window", async () => {
    const limiter = policy({
      failureThreshold: 100,
      failureRatio: 0.5,
      ratioWindowMs: 1000,
      ratioMinCalls: 10,
    });
    // Every other call fails for a window's time: 2 failures and 2 successes per 100 ms …
    const round = async () => {
      for (const fail of [true, false, true, false]) {
        store.fail = fail ? "timeout" : undefined;
        await limiter.check("a1", limit);
      }
    };
    // … but failures that lie a whole window back no longer count.
    store.fail = "timeout";
    for (let i = 0; i < 8; i++) await limiter.check("a1", limit);
    await advance(1500);
    store.fail = undefined;
    for (let i = 0; i < 9; i++) await limiter.check("a1", limit);
    store.fail = "timeout";
    await limiter.check("a1", limit);
    expect(limiter.healthy).toBe(true);
    await advance(1500);
    for (let i = 0; i < 2; i++) {
      await round();
      await advance(100);
    }
    expect(limiter.healthy).toBe(true);
    await round();
    expect(limiter.healthy).toBe(false);
    expect(events).toEqual([
      expect.objectContaining({
        type: "circuit-open",
        partition: "a",
        reason: "ratio",
        failures: 6,
        calls: 11,
      }),
    ]);
  });

  it("probes with backoff while open (half-open: one cost-0 check) and closes on the first success", async () => {
    const limiter = policy({ failureThreshold: 1 });
    const probes: boolean[] = [];
    limiter.on("probe", (ok) => probes.push(ok));
    store.fail = "connection";
    await limiter.check("a1", limit);
    expect(limiter.healthy).toBe(false);
    // First probe within 100 ms ± 20 %, the next within 200 ms ± 20 % after it: both fail.
    await advance(120);
    expect(probes).toEqual([false]);
    await advance(240);
    expect(probes).toEqual([false, false]);
    store.fail = undefined;
    await advance(480);
    expect(probes).toEqual([false, false, true]);
    expect(limiter.stats()).toMatchObject({ mode: "store", healthy: true, failing: [] });
    expect(events.map((event) => event.type)).toEqual(["circuit-open", "circuit-closed"]);
    expect(events[1]).toMatchObject({ partition: "a", probes: 3 });
    expect((events[1] as { openForUs: number }).openForUs).toBeGreaterThanOrEqual(80_000 + 160_000 + 320_000);
    // The probe changed nothing: the key still has its whole burst, less this call.
    expect((await limiter.check("a1", limit)).remaining).toBe(999);
    await limiter.close();
  });

  it("validates the thresholds with coded errors", () => {
    for (const options of [
      { failureThreshold: 0 },
      { failureRatio: 0 },
      { failureRatio: 1.5 },
      { ratioWindowMs: Number.NaN },
      { ratioMinCalls: 0 },
      { probeDelayMs: 0 },
    ]) {
      expect(() => policy(options)).toThrow(GcraOptionError);
      expect(() => policy(options)).toThrow(expect.objectContaining({ code: "GCRA_INVALID_OPTION" }));
    }
  });
});
