import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { GcraInputError, GcraLimit, GcraOptionError, gcra, toMilliseconds, toSeconds } from "./index.ts";

/**
 * An independent model: the continuous-state leaky bucket (ITU-T I.371's other formulation of
 * GCRA). The bucket holds `level` µs of work, drains 1 µs per µs, and a request of cost n adds
 * n·T unless that would overflow the capacity τ.
 */
class LeakyBucket {
  level = 0;
  last: number | undefined;
  readonly limit: GcraLimit;
  constructor(limit: GcraLimit) {
    this.limit = limit;
  }
  offer(now: number, cost: number): boolean {
    const drained = this.last === undefined ? 0 : Math.max(0, this.level - (now - this.last));
    if (drained + cost * this.limit.emissionIntervalUs > this.limit.burstToleranceUs) {
      // Denied: nothing changes, but the bucket keeps draining from its last state.
      return false;
    }
    this.level = drained + cost * this.limit.emissionIntervalUs;
    this.last = now;
    return true;
  }
}

const limits = fc
  .record({
    interval: fc.integer({ min: 1, max: 5_000 }),
    burst: fc.integer({ min: 1, max: 30 }),
    extra: fc.nat(4_999),
  })
  .map(
    ({ interval, burst, extra }) =>
      new GcraLimit({
        emissionIntervalUs: interval,
        burstToleranceUs: burst * interval + (extra % interval),
      }),
  );

/**
 * A request sequence: non-decreasing times (gaps from 0), costs within the burst. `size: "max"`
 * draws lengths over the whole range (fast-check's default size stops near 10 requests, too few
 * to exhaust a burst and recover from it).
 */
const requests = (limit: GcraLimit) =>
  fc.array(
    fc.record({
      gap: fc.oneof(fc.constant(0), fc.nat(limit.emissionIntervalUs * 3)),
      cost: fc.integer({ min: 0, max: limit.burst }),
    }),
    { minLength: 1, maxLength: 120, size: "max" },
  );

function run(limit: GcraLimit, sequence: { gap: number; cost: number }[]) {
  let tat: number | undefined;
  let now = 1_000_000;
  const log: { now: number; cost: number; allowed: boolean; retryAfter: number; resetAfter: number }[] = [];
  for (const { gap, cost } of sequence) {
    now += gap;
    const outcome = gcra(tat, now, limit, cost);
    tat = outcome.tat;
    log.push({
      now,
      cost,
      allowed: outcome.allowed,
      retryAfter: outcome.retryAfter,
      resetAfter: outcome.resetAfter,
    });
  }
  return log;
}

/** Plays `sequence` and returns the key's final state and clock. */
function replay(limit: GcraLimit, sequence: { gap: number; cost: number }[]) {
  let tat: number | undefined;
  let now = 1_000_000;
  for (const { gap, cost } of sequence) {
    now += gap;
    tat = gcra(tat, now, limit, cost).tat;
  }
  return { tat, now };
}

const limitsWithRequests = limits.chain((l) => fc.tuple(fc.constant(l), requests(l)));

describe("GcraLimit", () => {
  it("derives T and τ from a rate and a burst: 100/s with bursts of 20 is T = 10 ms, τ = 200 ms", () => {
    const limit = new GcraLimit({ rate: 100, burst: 20 });
    expect(limit.emissionIntervalUs).toBe(10_000);
    expect(limit.burstToleranceUs).toBe(200_000);
    expect(limit.burst).toBe(20);
    expect(limit.ratePerSecond).toBe(100);
    expect(new GcraLimit({ rate: 3, periodMs: 60_000, burst: 2 }).emissionIntervalUs).toBe(20_000_000);
  });

  it("takes the seed's settings directly and derives the burst floor(τ/T)", () => {
    expect(new GcraLimit({ emissionIntervalUs: 10_000, burstToleranceUs: 200_000 }).burst).toBe(20);
    expect(new GcraLimit({ emissionIntervalUs: 10_000, burstToleranceUs: 209_999 }).burst).toBe(20);
  });

  it.each([
    [{ rate: 0, burst: 1 }, /rate must be finite and > 0/],
    [{ rate: -5, burst: 1 }, /rate must be finite and > 0/],
    [{ rate: Number.NaN, burst: 1 }, /rate must be finite/],
    [{ rate: Number.POSITIVE_INFINITY, burst: 1 }, /rate must be finite/],
    [{ rate: 10, burst: 0 }, /burst must be an integer ≥ 1/],
    [{ rate: 10, burst: -1 }, /burst must be an integer ≥ 1/],
    [{ rate: 10, burst: 1.5 }, /burst must be an integer ≥ 1/],
    [{ rate: 10, periodMs: -1, burst: 1 }, /periodMs must be finite and > 0/],
    [{ rate: 10_000_000, burst: 1 }, /above one per µs/],
    [{ emissionIntervalUs: 0, burstToleranceUs: 10 }, /emissionIntervalUs must be an integer/],
    [{ emissionIntervalUs: 1.5, burstToleranceUs: 10 }, /emissionIntervalUs must be an integer/],
    [{ emissionIntervalUs: 10, burstToleranceUs: -1 }, /burstToleranceUs must be an integer/],
    [{ emissionIntervalUs: 10, burstToleranceUs: Number.NaN }, /burstToleranceUs must be an integer/],
    [{ emissionIntervalUs: 10, burstToleranceUs: 5 }, /must be ≥ emissionIntervalUs/],
    [{ emissionIntervalUs: 10, burstToleranceUs: 2 ** 47 }, /\[1, 2\^46\]/],
  ])("rejects %j with a GcraOptionError (code GCRA_INVALID_OPTION)", (options, message) => {
    expect(() => new GcraLimit(options)).toThrow(GcraOptionError);
    expect(() => new GcraLimit(options)).toThrow(expect.objectContaining({ code: "GCRA_INVALID_OPTION" }));
    expect(() => new GcraLimit(options)).toThrow(message);
  });
});

describe("gcra (pure)", () => {
  const limit = new GcraLimit({ rate: 100, burst: 20 });

  it("works the README example: 100/s, burst 20", () => {
    let tat: number | undefined;
    const now = 5_000_000;
    const outcomes = Array.from({ length: 21 }, () => {
      const outcome = gcra(tat, now, limit);
      tat = outcome.tat;
      return outcome;
    });
    expect(outcomes.filter((o) => o.allowed)).toHaveLength(20);
    expect(outcomes[0]).toMatchObject({
      allowed: true,
      remaining: 19,
      resetAfter: 10_000,
      retryAfter: 0,
      limit: 20,
    });
    expect(outcomes[19]).toMatchObject({ allowed: true, remaining: 0, resetAfter: 200_000 });
    // The 21st: tat' = now + 210 ms, τ = 200 ms → retry in exactly 10 ms; nothing stored.
    expect(outcomes[20]).toMatchObject({
      allowed: false,
      remaining: 0,
      retryAfter: 10_000,
      resetAfter: 200_000,
    });
    expect(outcomes[20]?.tat).toBe(now + 200_000);
    const later = gcra(tat, now + 10_000, limit);
    expect(later).toMatchObject({ allowed: true, remaining: 0, resetAfter: 200_000 });
    expect(gcra(tat, now + 9_999, limit)).toMatchObject({ allowed: false, retryAfter: 1 });
  });

  it("rejects bad input with GcraInputError", () => {
    expect(() => gcra(undefined, 1.5, limit)).toThrow(GcraInputError);
    expect(() => gcra(0.5, 1, limit)).toThrow(GcraInputError);
    expect(() => gcra(undefined, 1, limit, -1)).toThrow(/cost must be an integer ≥ 0/);
    expect(() => gcra(undefined, 1, limit, Number.NaN)).toThrow(GcraInputError);
    expect(() => gcra(undefined, 1, limit, 21)).toThrow(/exceeds the limit's burst of 20/);
  });

  it("agrees decision by decision with a leaky-bucket simulation", () => {
    fc.assert(
      fc.property(limitsWithRequests, ([l, sequence]) => {
        const bucket = new LeakyBucket(l);
        const log = run(l, sequence);
        expect(log.map((entry) => entry.allowed)).toEqual(
          log.map((entry) => bucket.offer(entry.now, entry.cost)),
        );
      }),
      { numRuns: 500 },
    );
  });

  it("admits at most floor((W + τ) / T) units of cost in any window of length W (closed, both ends)", () => {
    fc.assert(
      fc.property(limitsWithRequests, ([l, sequence]) => {
        const allowed = run(l, sequence).filter((e) => e.allowed);
        // Brute force over every window that starts and ends at an admitted request (plain
        // comparisons in the loop: one expect per window made this the suite's slowest test).
        const over: string[] = [];
        for (let i = 0; i < allowed.length; i++) {
          let units = 0;
          for (let j = i; j < allowed.length; j++) {
            units += (allowed[j] as (typeof allowed)[number]).cost;
            const width =
              (allowed[j] as (typeof allowed)[number]).now - (allowed[i] as (typeof allowed)[number]).now;
            const bound = Math.floor((width + l.burstToleranceUs) / l.emissionIntervalUs);
            if (units > bound)
              over.push(`${units} units in ${width} µs (requests ${i}..${j}), bound ${bound}`);
          }
        }
        expect(over).toEqual([]);
      }),
      { numRuns: 500 },
    );
  });

  it("reaches the window bound: a burst then one request per T uses every unit it allows", () => {
    let tat: number | undefined;
    const start = 0;
    let admitted = 0;
    for (let i = 0; i < limit.burst; i++) {
      const o = gcra(tat, start, limit);
      tat = o.tat;
      if (o.allowed) admitted++;
    }
    for (let k = 1; k <= 50; k++) {
      const o = gcra(tat, start + k * limit.emissionIntervalUs, limit);
      tat = o.tat;
      if (o.allowed) admitted++;
      expect(admitted).toBe(
        Math.floor((k * limit.emissionIntervalUs + limit.burstToleranceUs) / limit.emissionIntervalUs),
      );
    }
  });

  it("admits exactly floor(τ/T) requests of cost 1 at one instant on a fresh key", () => {
    fc.assert(
      fc.property(limits, fc.integer({ min: 0, max: 2 ** 50 }), (l, now) => {
        let tat: number | undefined;
        let admitted = 0;
        for (let i = 0; i < l.burst + 5; i++) {
          const o = gcra(tat, now, l);
          tat = o.tat;
          if (o.allowed) admitted++;
        }
        expect(admitted).toBe(Math.floor(l.burstToleranceUs / l.emissionIntervalUs));
      }),
    );
  });

  it("never denies a client sending exactly every T, whatever came before", () => {
    fc.assert(
      fc.property(limitsWithRequests, ([l, sequence]) => {
        let { tat, now } = replay(l, sequence);
        // After an idle period of τ the key has recovered; from then on, one request per T passes.
        now += l.burstToleranceUs;
        for (let k = 0; k < 3 * l.burst + 10; k++) {
          const o = gcra(tat, now + k * l.emissionIntervalUs, l);
          expect(o.allowed).toBe(true);
          tat = o.tat;
        }
      }),
    );
  });

  it("makes retryAfter exact: the same request passes after retryAfter and not 1 µs earlier", () => {
    fc.assert(
      fc.property(
        limits.chain((l) => fc.tuple(fc.constant(l), requests(l), fc.integer({ min: 1, max: l.burst }))),
        ([l, sequence, cost]) => {
          const { tat, now } = replay(l, sequence);
          const o = gcra(tat, now, l, cost);
          if (o.allowed) {
            expect(o.retryAfter).toBe(0);
            return;
          }
          expect(o.tat).toBe(tat); // a denial stores nothing
          expect(gcra(tat, now + o.retryAfter, l, cost).allowed).toBe(true);
          expect(gcra(tat, now + o.retryAfter - 1, l, cost).allowed).toBe(false);
          // resetAfter: after it the key admits a full burst again.
          expect(gcra(tat, now + o.resetAfter, l, l.burst).allowed).toBe(true);
        },
      ),
    );
  });

  it("reports remaining as the cost-1 requests that would still pass now", () => {
    fc.assert(
      fc.property(limitsWithRequests, ([l, sequence]) => {
        let tat: number | undefined;
        let now = 1_000_000;
        const reported: number[] = [];
        const probed: number[] = [];
        for (const { gap, cost } of sequence) {
          now += gap;
          const o = gcra(tat, now, l, cost);
          tat = o.tat;
          let probe = tat;
          let passes = 0;
          for (let i = 0; i <= l.burst; i++) {
            const p = gcra(probe, now, l);
            if (!p.allowed) break;
            probe = p.tat;
            passes++;
          }
          reported.push(o.remaining);
          probed.push(passes);
        }
        expect(reported).toEqual(probed);
      }),
      { numRuns: 200 },
    );
  });

  it("rounds durations up to whole ms and s", () => {
    expect(toMilliseconds(0)).toBe(0);
    expect(toMilliseconds(1)).toBe(1);
    expect(toMilliseconds(10_000)).toBe(10);
    expect(toSeconds(1)).toBe(1);
    expect(toSeconds(1_000_001)).toBe(2);
  });
});
