import { GcraInputError } from "./errors.ts";
import { type GcraLimit, requireCost } from "./limit.ts";

/**
 * Who answered a decision: the store itself, the local deny cache, or the failure policy while
 * the store was failing (`fallback`: the per-process memory store; `open`/`closed`: no state).
 */
export type DecisionSource = "store" | "deny-cache" | "fallback" | "open" | "closed";

/** Every decision source, e.g. for a metric's label values. */
export const DECISION_SOURCES: readonly DecisionSource[] = Object.freeze([
  "store",
  "deny-cache",
  "fallback",
  "open",
  "closed",
]);

/** A decision's outcome as a word, e.g. for a metric's label values. */
export type DecisionOutcome = "allowed" | "denied";

/** Both outcomes. */
export const DECISION_OUTCOMES: readonly DecisionOutcome[] = Object.freeze(["allowed", "denied"]);

/** The answer to one rate-limit check. Durations are integer microseconds. */
export interface GcraDecision {
  /** Whether the request passes. */
  readonly allowed: boolean;
  /** The limit's burst: requests of cost 1 a fresh key admits at one instant. */
  readonly limit: number;
  /** Requests of cost 1 that would still pass right now, after this decision. */
  readonly remaining: number;
  /** 0 when allowed; otherwise the exact time until the same request would pass (`tat' − τ − now`). */
  readonly retryAfter: number;
  /** Time until the key is back to a full burst (stored TAT after the decision − now). */
  readonly resetAfter: number;
  /** Who answered. */
  readonly source: DecisionSource;
}

/** The outcome of the pure algorithm: a decision (source `store`) plus the state to store. */
export interface GcraOutcome extends GcraDecision {
  /**
   * The theoretical arrival time to keep after this decision: the new TAT when allowed, the
   * previous one (possibly `undefined`) when denied — a denial changes nothing.
   */
  readonly tat: number | undefined;
}

/**
 * Builds a decision from what a store learnt: whether the request passed, the time until the
 * stored TAT (`resetAfter`) and, when denied, `retryAfter`. `remaining` follows from those.
 */
export function decision(
  limit: GcraLimit,
  allowed: boolean,
  resetAfter: number,
  retryAfter: number,
  source: DecisionSource,
): GcraDecision {
  return {
    allowed,
    limit: limit.burst,
    remaining: remainingAfter(limit, resetAfter),
    retryAfter,
    resetAfter,
    source,
  };
}

/** Requests of cost 1 that still pass when the stored TAT is `resetAfter` µs ahead of now. */
function remainingAfter(limit: GcraLimit, resetAfter: number): number {
  const remaining = Math.floor((limit.burstToleranceUs - resetAfter) / limit.emissionIntervalUs);
  return Math.max(remaining, 0);
}

/**
 * GCRA, the pure function. `tat` is the key's theoretical arrival time (µs, `undefined` for a
 * key never seen or expired), `now` the current time on the same clock (integer µs), `cost` the
 * request's weight (default 1).
 *
 * `tat' = max(tat, now) + cost·T`; the request passes iff `tat' − now ≤ τ`. Allowed → store
 * `tat'`; denied → store nothing, `retryAfter = tat' − τ − now`.
 *
 * Consequences (property-tested): a fresh key admits exactly `floor(τ / T)` requests of cost 1 at
 * one instant; a client sending every T is never denied; in any window of length W the requests
 * admitted cost at most `floor((W + τ) / T)` in total — see the README for the proof.
 *
 * @throws GcraInputError when `now` or `tat` is not a safe integer, or `cost` is not an integer in `[0, limit.burst]`.
 */
export function gcra(tat: number | undefined, now: number, limit: GcraLimit, cost = 1): GcraOutcome {
  if (!Number.isSafeInteger(now)) throw new GcraInputError(`now must be an integer number of µs, got ${now}`);
  if (tat !== undefined && !Number.isSafeInteger(tat)) {
    throw new GcraInputError(`tat must be an integer number of µs, got ${tat}`);
  }
  requireCost(cost, limit);
  const base = tat === undefined || tat < now ? now : tat;
  const next = base + cost * limit.emissionIntervalUs;
  const allowed = next - now <= limit.burstToleranceUs;
  const resetAfter = (allowed ? next : base) - now;
  const retryAfter = allowed ? 0 : next - limit.burstToleranceUs - now;
  return { ...decision(limit, allowed, resetAfter, retryAfter, "store"), tat: allowed ? next : tat };
}

/** µs → whole milliseconds, rounded up (a wait rounded down would be too short). */
export function toMilliseconds(us: number): number {
  return Math.ceil(us / 1000);
}

/** µs → whole seconds, rounded up, e.g. for an HTTP `Retry-After` header. */
export function toSeconds(us: number): number {
  return Math.ceil(us / 1_000_000);
}

/** A monotonic clock in integer µs (`performance.now()`), the default clock of the local stores. */
export function monotonicMicros(): number {
  return Math.floor(performance.now() * 1000);
}
