import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { GcraInputError, GcraLimit, GcraOptionError, gcra, MemoryStore } from "./index.ts";

function manualClock(start = 1_000_000) {
  const clock = { now: start, read: () => clock.now };
  return clock;
}

describe("MemoryStore", () => {
  const limit = new GcraLimit({ rate: 100, burst: 20 });

  it("decides exactly as the pure function on its own clock", () => {
    const clock = manualClock();
    const store = new MemoryStore({ clock: clock.read });
    let tat: number | undefined;
    for (let i = 0; i < 500; i++) {
      clock.now += (i * 7919) % 13_000;
      const cost = i % 3;
      const expected = gcra(tat, clock.now, limit, cost);
      tat = expected.tat;
      const { tat: _, ...want } = expected;
      expect(store.decide("k", limit, cost)).toEqual(want);
    }
  });

  it("admits the burst at one instant, then one request per T", async () => {
    const clock = manualClock();
    const store = new MemoryStore({ clock: clock.read });
    const results = await Promise.all(Array.from({ length: 25 }, () => store.check("ip", limit)));
    expect(results.filter((r) => r.allowed)).toHaveLength(20);
    expect(results[20]).toMatchObject({ allowed: false, retryAfter: 10_000 });
    clock.now += 10_000;
    expect(store.decide("ip", limit).allowed).toBe(true);
    expect(store.decide("ip", limit).allowed).toBe(false);
  });

  it("keeps denied keys out of the store and forgets keys once their TAT has passed", () => {
    const clock = manualClock();
    const store = new MemoryStore({ clock: clock.read });
    expect(() => store.decide("k", limit, 21)).toThrow(GcraInputError);
    expect(store.size).toBe(0);
    store.decide("a", limit);
    expect(store.size).toBe(1);
    clock.now += 10_000; // a's TAT has passed
    expect(store.sweep()).toBe(1);
    expect(store.size).toBe(0);
    // A forgotten key is a fresh key again.
    expect(store.decide("a", limit).remaining).toBe(19);
  });

  it("sweeps expired keys as new keys arrive, so the size follows the live keys", () => {
    const clock = manualClock();
    const store = new MemoryStore({ clock: clock.read, maxKeys: 1_000_000 });
    for (let i = 0; i < 10_000; i++) {
      store.decide(`k${i}`, limit);
      clock.now += 100; // each key lives 10 ms = 100 insertions
    }
    expect(store.size).toBeLessThan(300);
  });

  it("stays within maxKeys, evicting expired keys first", () => {
    const clock = manualClock();
    const store = new MemoryStore({ clock: clock.read, maxKeys: 100 });
    const long = new GcraLimit({ emissionIntervalUs: 1_000_000_000, burstToleranceUs: 1_000_000_000 });
    for (let i = 0; i < 50; i++) store.decide(`short${i}`, limit); // expire after 10 ms
    for (let i = 0; i < 50; i++) store.decide(`long${i}`, long);
    expect(store.size).toBe(100);
    clock.now += 20_000;
    for (let i = 0; i < 50; i++) store.decide(`new${i}`, long);
    expect(store.size).toBeLessThanOrEqual(100);
    // Every long-lived key survived: only expired ones made room.
    for (let i = 0; i < 50; i++) expect(store.decide(`long${i}`, long).allowed).toBe(false);
    for (let i = 0; i < 1000; i++) store.decide(`more${i}`, long);
    expect(store.size).toBeLessThanOrEqual(100);
  });

  it("answers as a map of key to TAT would, through any mix of decisions, deletions and sweeps", () => {
    // 24 keys in a table of 64 slots: probe sequences collide, wrap around the table's end and
    // are shifted back on deletion; no key is ever evicted, so a plain Map is the exact model.
    const keys = Array.from({ length: 24 }, (_, i) => `10.0.${i % 3}.${i}`);
    const op = fc.oneof(
      fc.record({
        kind: fc.constant("decide" as const),
        key: fc.constantFrom(...keys),
        cost: fc.integer({ min: 0, max: 3 }),
        dt: fc.integer({ min: 0, max: 1000 }),
      }),
      fc.record({ kind: fc.constant("delete" as const), key: fc.constantFrom(...keys) }),
      fc.record({ kind: fc.constant("sweep" as const), dt: fc.integer({ min: 0, max: 20_000 }) }),
    );
    fc.assert(
      fc.property(fc.array(op, { minLength: 100, maxLength: 400, size: "max" }), (ops) => {
        const clock = manualClock();
        const store = new MemoryStore({ clock: clock.read, maxKeys: keys.length });
        const model = new Map<string, number>();
        const live = () => [...model.values()].filter((tat) => tat > clock.now).length;
        // What the store answered and what the model says, compared once at the end (an expect
        // per operation made this test take seconds).
        const answered: unknown[] = [];
        const wanted: unknown[] = [];
        for (const o of ops) {
          if (o.kind === "decide") {
            clock.now += o.dt;
            const expected = gcra(model.get(o.key), clock.now, limit, o.cost);
            if (expected.allowed && expected.tat !== undefined) model.set(o.key, expected.tat);
            const { tat: _, ...want } = expected;
            wanted.push(want);
            answered.push(store.decide(o.key, limit, o.cost));
          } else if (o.kind === "delete") {
            const held = (model.get(o.key) ?? 0) > clock.now;
            model.delete(o.key);
            // An expired key may or may not have been dropped yet: only a live one must be held.
            const deleted = store.delete(o.key);
            if (held) {
              wanted.push(`deleted ${o.key}`);
              answered.push(deleted ? `deleted ${o.key}` : `${o.key} not held`);
            }
          } else {
            clock.now += o.dt;
            store.sweep();
            wanted.push(`${live()} keys after a sweep`);
            answered.push(`${store.size} keys after a sweep`);
          }
          const [size, held] = [store.size, live()];
          if (size < held || size > keys.length) answered.push(`${size} keys held with ${held} live`);
        }
        expect(answered).toEqual(wanted);
      }),
      { numRuns: 300 },
    );
  });

  it("holds a million keys, each found again, and forgets them all on clear()", () => {
    const clock = manualClock();
    const store = new MemoryStore({ clock: clock.read, maxKeys: 1_000_000 });
    const long = new GcraLimit({ emissionIntervalUs: 1_000_000_000, burstToleranceUs: 1_000_000_000 });
    for (let i = 0; i < 1_000_000; i++) store.decide(`k${i}`, long);
    expect(store.size).toBe(1_000_000);
    for (let i = 0; i < 1_000_000; i += 997) expect(store.decide(`k${i}`, long).allowed).toBe(false);
    store.clear();
    expect(store.size).toBe(0);
    expect(store.decide("k0", long).allowed).toBe(true);
  });

  it("uses a monotonic clock by default", () => {
    // T = 1000 s: the second call comes less than T after the first, however busy the machine.
    const slow = new GcraLimit({ emissionIntervalUs: 1_000_000_000, burstToleranceUs: 2_000_000_000 });
    const store = new MemoryStore();
    const first = store.decide("x", slow);
    const second = store.decide("x", slow);
    expect(first.allowed && second.allowed).toBe(true);
    expect(first.resetAfter).toBe(1_000_000_000);
    expect(second.resetAfter).toBeGreaterThan(first.resetAfter);
    expect(second.resetAfter).toBeLessThanOrEqual(2_000_000_000);
  });

  it("rejects bad input", async () => {
    expect(() => new MemoryStore({ maxKeys: 0 })).toThrow(GcraOptionError);
    expect(() => new MemoryStore({ maxKeys: 2 ** 25 })).toThrow(GcraOptionError);
    const store = new MemoryStore();
    expect(() => store.decide("", limit)).toThrow(/non-empty string/);
    expect(() => store.decide("k", limit, -1)).toThrow(GcraInputError);
    expect(() => store.decide("k", limit, Number.POSITIVE_INFINITY)).toThrow(GcraInputError);
    await expect(store.check("", limit)).rejects.toThrow(GcraInputError);
    expect(store.delete("k")).toBe(false);
    store.decide("k", limit);
    expect(store.delete("k")).toBe(true);
    store.decide("k", limit);
    store.clear();
    expect(store.size).toBe(0);
  });
});
