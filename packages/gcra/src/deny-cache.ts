import { GcraOptionError } from "./errors.ts";
import { decision, type GcraDecision, monotonicMicros } from "./gcra.ts";
import { type GcraLimit, invalidInput } from "./limit.ts";
import { type GcraMultiDecision, type GcraRequest, invalidRequests } from "./multi.ts";
import type { GcraStore } from "./store.ts";

/** Options of {@link DenyCacheStore}. */
export interface DenyCacheOptions {
  /** Most keys remembered; the oldest entry makes room. Default 10 000. */
  readonly maxKeys?: number;
  /** Monotonic clock in integer µs. Default `performance.now()` in µs. */
  readonly clock?: () => number;
}

interface Entry {
  /** A lower bound of the key's TAT, on the local clock (µs). */
  readonly tat: number;
  readonly limit: GcraLimit;
}

/**
 * A local deny cache in front of another store. When the store denies a key, the denial says
 * exactly how far ahead of now the key's TAT is (`resetAfter`); a denial changes nothing in the
 * store, and a TAT never moves back, so until that TAT comes within reach the store's answer to
 * the same key is known: the cache answers locally, and hot abusive keys stay off Valkey.
 *
 * Exactness: the TAT is placed on the local clock as `time the call was sent + resetAfter`, a
 * lower bound (the server decided after the call was sent). A cached answer is therefore only ever
 * a denial the store would give too — never a denial the store would not give — and its
 * `retryAfter` is at most one round trip shorter than the store's. Requests of other costs for the
 * same key and limit are judged against the same TAT. A different limit for the key bypasses the
 * cache. Only the store's own denials are cached (not a failure policy's).
 */
export class DenyCacheStore implements GcraStore {
  readonly #store: GcraStore;
  readonly #maxKeys: number;
  readonly #clock: () => number;
  readonly #entries = new Map<string, Entry>();
  #hits = 0;

  /** @throws GcraOptionError for a `maxKeys` that is not a positive integer. */
  constructor(store: GcraStore, options: DenyCacheOptions = {}) {
    const maxKeys = options.maxKeys ?? 10_000;
    if (!Number.isSafeInteger(maxKeys) || maxKeys < 1) {
      throw new GcraOptionError(`maxKeys must be an integer ≥ 1, got ${maxKeys}`);
    }
    this.#store = store;
    this.#maxKeys = maxKeys;
    this.#clock = options.clock ?? monotonicMicros;
  }

  /** Keys remembered now. */
  get size(): number {
    return this.#entries.size;
  }

  /** Calls answered by the cache since construction. */
  get hits(): number {
    return this.#hits;
  }

  /** {@inheritDoc GcraStore.check} */
  check(key: string, limit: GcraLimit, cost = 1): Promise<GcraDecision> {
    const invalid = invalidInput(key, limit, cost);
    if (invalid) return Promise.reject(invalid);
    const cached = this.#cached(key, limit, cost, this.#clock());
    if (cached !== undefined) {
      this.#hits++;
      return Promise.resolve(cached);
    }
    const sent = this.#clock();
    return this.#store.check(key, limit, cost).then((result) => {
      if (!result.allowed && result.source === "store") this.#remember(key, limit, sent + result.resetAfter);
      return result;
    });
  }

  /**
   * {@inheritDoc GcraStore.checkAll}
   *
   * When an enforcing request's key is cached as denied (same limit), the whole request is
   * denied here — exactly as the store would deny it, consuming nothing — and the decisions of
   * the other requests, not looked at, are `undefined`. Otherwise the store decides, and every
   * denial it reports of a key's first request in the list is remembered (a later request of the
   * same key was judged against a TAT that may not have been stored).
   */
  checkAll(requests: readonly GcraRequest[]): Promise<GcraMultiDecision> {
    const invalid = invalidRequests(requests);
    if (invalid) return Promise.reject(invalid);
    const now = this.#clock();
    let decisions: (GcraDecision | undefined)[] | undefined;
    for (let i = 0; i < requests.length; i++) {
      const { key, limit, cost = 1, enforce = true } = requests[i] as GcraRequest;
      const cached = enforce ? this.#cached(key, limit, cost, now) : undefined;
      if (cached === undefined) continue;
      decisions ??= new Array<GcraDecision | undefined>(requests.length).fill(undefined);
      decisions[i] = cached;
    }
    if (decisions !== undefined) {
      this.#hits++;
      return Promise.resolve({ allowed: false, decisions, source: "deny-cache" });
    }
    const sent = this.#clock();
    return this.#store.checkAll(requests).then((result) => {
      this.#rememberAll(requests, result, sent);
      return result;
    });
  }

  /** Remembers the store's denials in `result`, each of a key's first request in `requests`. */
  #rememberAll(requests: readonly GcraRequest[], result: GcraMultiDecision, sent: number): void {
    for (let i = 0; i < requests.length; i++) {
      const d = result.decisions[i];
      if (d === undefined || d.allowed || d.source !== "store") continue;
      const { key, limit } = requests[i] as GcraRequest;
      let first = true;
      for (let j = 0; j < i && first; j++) first = (requests[j] as GcraRequest).key !== key;
      if (first) this.#remember(key, limit, sent + d.resetAfter);
    }
  }

  /**
   * The denial the cache knows for `key` at `now`, if any. An entry goes once a request of cost 1
   * could pass, or when asked about another limit.
   */
  #cached(key: string, limit: GcraLimit, cost: number, now: number): GcraDecision | undefined {
    const entry = this.#entries.get(key);
    if (entry === undefined) return undefined;
    if (entry.limit === limit) {
      const base = Math.max(entry.tat, now);
      const after = base + cost * limit.emissionIntervalUs;
      if (after - now > limit.burstToleranceUs) {
        return decision(limit, false, base - now, after - limit.burstToleranceUs - now, "deny-cache");
      }
    }
    if (entry.limit !== limit || entry.tat + limit.emissionIntervalUs - limit.burstToleranceUs <= now) {
      this.#entries.delete(key);
    }
    return undefined;
  }

  /** {@inheritDoc GcraStore.warmUp} Passes it on to the wrapped store. */
  warmUp(budgetMs: number): Promise<boolean> {
    return this.#store.warmUp?.(budgetMs) ?? Promise.resolve(true);
  }

  /** Forgets every cached denial. */
  clear(): void {
    this.#entries.clear();
  }

  /** Closes the wrapped store. */
  close(): Promise<void> {
    this.#entries.clear();
    return this.#store.close();
  }

  #remember(key: string, limit: GcraLimit, tat: number): void {
    this.#entries.delete(key);
    if (this.#entries.size >= this.#maxKeys) {
      const oldest = this.#entries.keys().next();
      if (!oldest.done) this.#entries.delete(oldest.value);
    }
    this.#entries.set(key, { tat, limit });
  }
}
