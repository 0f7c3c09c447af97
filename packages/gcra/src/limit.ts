import { GcraInputError, GcraOptionError } from "./errors.ts";

/**
 * The largest emission interval or burst tolerance accepted, in µs (2^46 µs ≈ 2.2 years). It
 * keeps every intermediate value of a decision (µs since the epoch plus a few tolerances) below
 * 2^53, so doubles — JavaScript numbers and Lua numbers alike — hold them exactly.
 */
export const MAX_DURATION_US = 2 ** 46;

/** A limit given by its GCRA parameters directly, as the agent's `SPOA_RATE_*` settings are. */
export interface IntervalLimitOptions {
  /** Emission interval T in µs: the time one unit of cost "occupies" (1 000 000 / rate per second). */
  readonly emissionIntervalUs: number;
  /**
   * Burst tolerance τ in µs: how far ahead of now the theoretical arrival time may run
   * (burst size × T). At least T; `floor(τ / T)` is the burst a fresh key admits at one instant.
   */
  readonly burstToleranceUs: number;
}

/** A limit given as "`rate` requests per `periodMs`, bursts of up to `burst`". */
export interface RateLimitOptions {
  /** Requests (units of cost) per period; finite and positive. */
  readonly rate: number;
  /** The period in ms. Default 1000 (rate per second). */
  readonly periodMs?: number;
  /** Requests a fresh key admits at one instant; a positive integer. */
  readonly burst: number;
}

function requireDuration(name: string, value: number): number {
  if (!Number.isSafeInteger(value) || value < 1 || value > MAX_DURATION_US) {
    throw new GcraOptionError(`${name} must be an integer number of µs in [1, 2^46], got ${value}`);
  }
  return value;
}

/**
 * The parameters of one rate limit, validated once: emission interval T and burst tolerance τ in
 * integer µs. A fresh key admits `burst = floor(τ / T)` requests of cost 1 at one instant and
 * one more every T after that; a client sending exactly every T is never denied.
 *
 * Construction throws a `GcraOptionError` (code `GCRA_INVALID_OPTION`) naming the offending value: non-finite, negative or zero
 * rate, period or burst, a burst that is not an integer, or intervals outside `[1 µs, 2^46 µs]`.
 *
 * @example
 * ```ts
 * const perIp = new GcraLimit({ rate: 100, burst: 20 });          // 100/s, bursts of 20
 * const same = new GcraLimit({ emissionIntervalUs: 10_000, burstToleranceUs: 200_000 });
 * ```
 */
export class GcraLimit {
  /** Emission interval T, µs. */
  readonly emissionIntervalUs: number;
  /** Burst tolerance τ, µs. */
  readonly burstToleranceUs: number;
  /** `floor(τ / T)`: requests of cost 1 a fresh key admits at one instant, and the largest cost accepted. */
  readonly burst: number;

  constructor(options: IntervalLimitOptions | RateLimitOptions) {
    if ("rate" in options) {
      const { rate, periodMs = 1000, burst } = options;
      if (!Number.isFinite(rate) || rate <= 0)
        throw new GcraOptionError(`rate must be finite and > 0, got ${rate}`);
      if (!Number.isFinite(periodMs) || periodMs <= 0) {
        throw new GcraOptionError(`periodMs must be finite and > 0, got ${periodMs}`);
      }
      if (!Number.isSafeInteger(burst) || burst < 1) {
        throw new GcraOptionError(`burst must be an integer ≥ 1, got ${burst}`);
      }
      const interval = Math.round((periodMs * 1000) / rate);
      if (interval < 1) {
        throw new GcraOptionError(
          `rate ${rate} per ${periodMs} ms is above one per µs, the resolution of GCRA here`,
        );
      }
      this.emissionIntervalUs = requireDuration("the emission interval (periodMs × 1000 / rate)", interval);
      this.burstToleranceUs = requireDuration("the burst tolerance (burst × interval)", burst * interval);
    } else {
      this.emissionIntervalUs = requireDuration("emissionIntervalUs", options.emissionIntervalUs);
      this.burstToleranceUs = requireDuration("burstToleranceUs", options.burstToleranceUs);
      if (this.burstToleranceUs < this.emissionIntervalUs) {
        throw new GcraOptionError(
          `burstToleranceUs (${this.burstToleranceUs}) must be ≥ emissionIntervalUs (${this.emissionIntervalUs}), or no request would ever pass`,
        );
      }
    }
    this.burst = Math.floor(this.burstToleranceUs / this.emissionIntervalUs);
    Object.freeze(this);
  }

  /** Requests per second this limit sustains (1e6 / T). */
  get ratePerSecond(): number {
    return 1_000_000 / this.emissionIntervalUs;
  }
}

/** Throws a `GcraInputError` unless `key` is a non-empty string. */
export function requireKey(key: string): void {
  if (typeof key !== "string" || key.length === 0) {
    throw new GcraInputError(`a rate-limit key must be a non-empty string, got ${JSON.stringify(key)}`);
  }
}

/** Throws a `GcraInputError` unless `cost` is an integer in `[0, limit.burst]`. */
export function requireCost(cost: number, limit: GcraLimit): void {
  if (!Number.isSafeInteger(cost) || cost < 0) {
    throw new GcraInputError(`cost must be an integer ≥ 0, got ${cost}`);
  }
  if (cost > limit.burst) {
    throw new GcraInputError(
      `cost ${cost} exceeds the limit's burst of ${limit.burst}: such a request could never pass`,
    );
  }
}

/**
 * The `GcraInputError` a store call with this input must fail with, or `undefined` when the input is
 * valid: for stores whose `check()` reports bad input as a rejected promise.
 */
export function invalidInput(key: string, limit: GcraLimit, cost: number): GcraInputError | undefined {
  try {
    requireKey(key);
    requireCost(cost, limit);
    return undefined;
  } catch (error) {
    return error as GcraInputError;
  }
}

/**
 * The limit of looks that must never disturb a key: probes and warm-up calls (cost 0, which
 * changes no state, against a limit whose burst any key fits in).
 */
export const PROBE_LIMIT = new GcraLimit({ emissionIntervalUs: 1, burstToleranceUs: MAX_DURATION_US });
