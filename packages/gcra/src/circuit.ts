import { GcraOptionError } from "./errors.ts";

/** When a partition's circuit opens: on sustained failure, never on one late answer. */
export interface CircuitOptions {
  /** Consecutive failures that open the circuit. Default 5. */
  readonly failureThreshold?: number;
  /** Share of failed calls over the window that opens the circuit, in (0, 1]. Default 0.5. */
  readonly failureRatio?: number;
  /** The window of the failure ratio, ms. Default 10 000. */
  readonly ratioWindowMs?: number;
  /** Least calls in the window before the ratio counts. Default 20. */
  readonly ratioMinCalls?: number;
}

/** Validated {@link CircuitOptions}. */
export interface CircuitSettings {
  readonly threshold: number;
  readonly ratio: number;
  /** Length of one of the window's buckets, µs. */
  readonly bucketUs: number;
  readonly minCalls: number;
}

/** The window is counted in this many buckets, the oldest dropped as time moves on. */
const BUCKETS = 10;

/** Validates {@link CircuitOptions}; a {@link GcraOptionError} names the first bad one. */
export function circuitSettings(options: CircuitOptions): CircuitSettings {
  const threshold = options.failureThreshold ?? 5;
  if (!Number.isSafeInteger(threshold) || threshold < 1) {
    throw new GcraOptionError(`failureThreshold must be an integer ≥ 1, got ${threshold}`);
  }
  const ratio = options.failureRatio ?? 0.5;
  if (!Number.isFinite(ratio) || ratio <= 0 || ratio > 1) {
    throw new GcraOptionError(`failureRatio must be in (0, 1], got ${ratio}`);
  }
  const windowMs = options.ratioWindowMs ?? 10_000;
  if (!Number.isFinite(windowMs) || windowMs < BUCKETS / 1000) {
    throw new GcraOptionError(`ratioWindowMs must be finite and ≥ 0.01, got ${windowMs}`);
  }
  const minCalls = options.ratioMinCalls ?? 20;
  if (!Number.isSafeInteger(minCalls) || minCalls < 1) {
    throw new GcraOptionError(`ratioMinCalls must be an integer ≥ 1, got ${minCalls}`);
  }
  return { threshold, ratio, bucketUs: Math.ceil((windowMs * 1000) / BUCKETS), minCalls };
}

/** Why a circuit opens. */
export interface Trip {
  readonly reason: "consecutive" | "ratio";
  /** Consecutive failures, or failures in the window. */
  readonly failures: number;
  /** Calls in the window. */
  readonly calls: number;
}

/**
 * The breaker of one partition: counts consecutive failures and the calls and failures of a
 * sliding window (in buckets), and says when they amount to sustained failure. While open, the
 * owner answers by its policy and probes; a probe is the half-open trial — one call let through,
 * whose success closes the circuit and whose failure keeps it open for a longer backoff.
 */
export class Circuit {
  readonly #settings: CircuitSettings;
  /** Whether the policy answers for this partition. */
  open = false;
  /** Since when (µs) it is open. */
  since = 0;
  consecutive = 0;
  /** The key that failed last: probes check it. */
  probeKey = "";
  probeAttempt = 0;
  probes = 0;
  probeTimer: NodeJS.Timeout | undefined;
  readonly #epochs = new Float64Array(BUCKETS).fill(-1);
  readonly #calls = new Uint32Array(BUCKETS);
  readonly #failures = new Uint32Array(BUCKETS);
  /** Whether a late call has counted toward `consecutive` in this turn of the event loop. */
  #lateThisTurn = false;
  readonly #nextTurn = (): void => {
    this.#lateThisTurn = false;
  };

  constructor(settings: CircuitSettings) {
    this.#settings = settings;
  }

  /** A call at `now` (µs) was answered. */
  succeeded(now: number): void {
    this.consecutive = 0;
    const at = this.#bucket(now);
    this.#calls[at] = (this.#calls[at] as number) + 1;
  }

  /**
   * A call at `now` (µs) failed; returns why the circuit should open now, if it should.
   *
   * Calls whose deadlines pass in the same turn of the event loop (`late`) add one to the
   * consecutive failures, not one each: a stall — a GC pause, a CPU taken by other processes —
   * makes every call pending across it late at once, and that is one event, not sustained
   * failure. Each still counts in the window's ratio. A store that stops answering makes calls
   * late turn after turn, so the circuit still opens after `failureThreshold` of them.
   */
  failed(now: number, late = false): Trip | undefined {
    const at = this.#bucket(now);
    this.#calls[at] = (this.#calls[at] as number) + 1;
    this.#failures[at] = (this.#failures[at] as number) + 1;
    if (!late) {
      this.consecutive++;
    } else if (!this.#lateThisTurn) {
      this.consecutive++;
      this.#lateThisTurn = true;
      setImmediate(this.#nextTurn);
    }
    const { threshold, ratio, minCalls } = this.#settings;
    if (this.consecutive >= threshold) {
      return { reason: "consecutive", failures: this.consecutive, calls: this.#sum(this.#calls, now) };
    }
    const calls = this.#sum(this.#calls, now);
    const failures = this.#sum(this.#failures, now);
    if (calls >= minCalls && failures >= ratio * calls) return { reason: "ratio", failures, calls };
    return undefined;
  }

  /** Opens the circuit at `now`. */
  trip(now: number): void {
    this.open = true;
    this.since = now;
    this.probeAttempt = 0;
    this.probes = 0;
  }

  /** Closes the circuit: counting starts afresh. */
  reset(): void {
    this.open = false;
    this.consecutive = 0;
    clearTimeout(this.probeTimer);
    this.probeTimer = undefined;
    this.#epochs.fill(-1);
    this.#calls.fill(0);
    this.#failures.fill(0);
  }

  /** The bucket of `now`, emptied first when it last counted an older period. */
  #bucket(now: number): number {
    const epoch = Math.floor(now / this.#settings.bucketUs);
    const at = ((epoch % BUCKETS) + BUCKETS) % BUCKETS;
    if (this.#epochs[at] !== epoch) {
      this.#epochs[at] = epoch;
      this.#calls[at] = 0;
      this.#failures[at] = 0;
    }
    return at;
  }

  /** The sum of `counts` over the buckets of the window ending at `now`. */
  #sum(counts: Uint32Array, now: number): number {
    const epoch = Math.floor(now / this.#settings.bucketUs);
    let sum = 0;
    for (let at = 0; at < BUCKETS; at++) {
      if ((this.#epochs[at] as number) > epoch - BUCKETS) sum += counts[at] as number;
    }
    return sum;
  }
}
