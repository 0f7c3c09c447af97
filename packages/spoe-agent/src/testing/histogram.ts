/**
 * A log-linear histogram of latencies in whole microseconds: exact below 128 µs, then 64
 * buckets per power of two (≤ 1.6 % relative error) up to 2^31 µs. Recording is an index
 * computation and an increment, so it can sit on a load generator's hot path.
 */

const SUB_BUCKETS = 64;
const EXACT = 2 * SUB_BUCKETS;
/** Values up to 2^31 − 1 µs (about 36 minutes); above is clamped. */
const MAX_VALUE = 2 ** 31 - 1;
const BUCKETS = EXACT + 25 * SUB_BUCKETS;

function indexOf(value: number): number {
  if (value < EXACT) return value;
  const shift = 31 - Math.clz32(value) - 6;
  return EXACT + (shift - 1) * SUB_BUCKETS + ((value >>> shift) - SUB_BUCKETS);
}

/** The largest value that lands in bucket `index`. */
function highestIn(index: number): number {
  if (index < EXACT) return index;
  const shift = Math.floor((index - EXACT) / SUB_BUCKETS) + 1;
  const top = ((index - EXACT) % SUB_BUCKETS) + SUB_BUCKETS;
  return (top + 1) * 2 ** shift - 1;
}

/** Latencies in microseconds; percentiles come out as the upper bound of their bucket. */
export class LatencyHistogram {
  readonly #counts = new Float64Array(BUCKETS);
  #count = 0;
  #sum = 0;
  #max = 0;

  /** Records one latency, in microseconds (rounded; negative counts as 0). */
  record(micros: number): void {
    const value = micros <= 0 ? 0 : micros >= MAX_VALUE ? MAX_VALUE : Math.round(micros);
    const index = indexOf(value);
    this.#counts[index] = (this.#counts[index] as number) + 1;
    this.#count++;
    this.#sum += value;
    if (value > this.#max) this.#max = value;
  }

  get count(): number {
    return this.#count;
  }

  /** Mean latency in microseconds (0 when empty). */
  get mean(): number {
    return this.#count === 0 ? 0 : this.#sum / this.#count;
  }

  /** The largest latency recorded, in microseconds. */
  get max(): number {
    return this.#max;
  }

  /** The latency (µs) below or at which a fraction `q` (0..1) of the recorded ones lie. */
  percentile(q: number): number {
    if (this.#count === 0) return 0;
    const rank = Math.max(1, Math.ceil(q * this.#count));
    let seen = 0;
    for (let index = 0; index < BUCKETS; index++) {
      seen += this.#counts[index] as number;
      if (seen >= rank) return Math.min(highestIn(index), this.#max);
    }
    return this.#max;
  }

  /** Adds every latency of `other` to this one. */
  add(other: LatencyHistogram): void {
    const counts = other.#counts;
    for (let index = 0; index < BUCKETS; index++) {
      this.#counts[index] = (this.#counts[index] as number) + (counts[index] as number);
    }
    this.#count += other.#count;
    this.#sum += other.#sum;
    if (other.#max > this.#max) this.#max = other.#max;
  }
}
