import { GcraInputError } from "./errors.ts";
import { type DecisionSource, decision, type GcraDecision } from "./gcra.ts";
import { type GcraLimit, invalidInput } from "./limit.ts";

/** One limit of a multi-limit check (see {@link GcraStore.checkAll}). */
export interface GcraRequest {
  /** The rate-limit key; non-empty. */
  readonly key: string;
  readonly limit: GcraLimit;
  /** The request's weight, an integer in `[0, limit.burst]`. Default 1. */
  readonly cost?: number;
  /**
   * Whether a denial of this limit denies the whole request. Default true. A limit with
   * `enforce: false` (a shadow rule) is evaluated and reported but never denies; its state is
   * consumed only when the whole request passes and this limit alone allows it.
   */
  readonly enforce?: boolean;
}

/** The answer to a multi-limit check. */
export interface GcraMultiDecision {
  /** Whether every enforcing limit allows the request; only then is any state consumed. */
  readonly allowed: boolean;
  /**
   * One decision per request, in order, each as if the whole request passed (a passing limit's
   * `remaining` counts this request; when the whole request is denied, nothing is stored). A
   * request the local deny cache did not need to look at is `undefined` (see `DenyCacheStore`).
   */
  readonly decisions: readonly (GcraDecision | undefined)[];
  /** Who answered. */
  readonly source: DecisionSource;
}

/**
 * The `GcraInputError` a multi-limit check with these requests must fail with, or `undefined`:
 * an empty list, an empty key, or a bad cost.
 */
export function invalidRequests(requests: readonly GcraRequest[]): GcraInputError | undefined {
  if (!Array.isArray(requests) || requests.length === 0) {
    return new GcraInputError("a multi-limit check needs at least one request");
  }
  for (const request of requests) {
    const invalid = invalidInput(request.key, request.limit, request.cost ?? 1);
    if (invalid) return invalid;
  }
  return undefined;
}

/** A multi-limit decision made locally, and the TATs to store when it passes. */
export interface LocalMultiOutcome extends GcraMultiDecision {
  readonly decisions: readonly GcraDecision[];
  /** Each key's new TAT, to store only when `allowed`. */
  readonly writes: ReadonlyMap<string, number>;
}

/**
 * The all-or-nothing GCRA decision over several limits, the pure function behind the memory
 * store (and, in Lua, `GCRA_MULTI_SCRIPT`). `read(key)` gives a key's stored TAT. Requests are
 * judged in order; a key named twice is judged the second time against the TAT its first,
 * passing, request would leave. Nothing is written here: the caller stores `writes` when the
 * outcome is allowed.
 */
export function decideAll(
  requests: readonly GcraRequest[],
  now: number,
  read: (key: string) => number | undefined,
  source: DecisionSource,
): LocalMultiOutcome {
  const writes = new Map<string, number>();
  const decisions: GcraDecision[] = [];
  let allowed = true;
  for (const { key, limit, cost = 1, enforce = true } of requests) {
    let tat = writes.get(key) ?? read(key) ?? now;
    if (tat < now) tat = now;
    const after = tat + cost * limit.emissionIntervalUs;
    if (after - now <= limit.burstToleranceUs) {
      writes.set(key, after);
      decisions.push(decision(limit, true, after - now, 0, source));
    } else {
      if (enforce) allowed = false;
      decisions.push(decision(limit, false, tat - now, after - limit.burstToleranceUs - now, source));
    }
  }
  return { allowed, decisions, writes, source };
}

/** The answer of a failure policy that allows (`open`) or denies (`closed`) without state. */
export function policyAnswer(
  requests: readonly GcraRequest[],
  allowed: boolean,
  retryAfterUs: number,
): GcraMultiDecision {
  const source = allowed ? "open" : "closed";
  return {
    allowed,
    source,
    decisions: requests.map(({ limit }) =>
      allowed
        ? decision(limit, true, 0, 0, source)
        : decision(limit, false, limit.burstToleranceUs, retryAfterUs, source),
    ),
  };
}
