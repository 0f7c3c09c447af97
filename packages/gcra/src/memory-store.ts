import { decision, type GcraDecision, monotonicMicros } from "./gcra.ts";
import { type GcraLimit, requireCost, requireKey } from "./limit.ts";
import type { GcraStore } from "./store.ts";

/** Options of {@link MemoryStore}. */
export interface MemoryStoreOptions {
  /** Most keys held at once. Default 1 000 000; at most 2^24 (a `Map`'s practical ceiling). */
  readonly maxKeys?: number;
  /** Monotonic clock in integer µs. Default `performance.now()` in µs. */
  readonly clock?: () => number;
}

const MAX_KEYS = 2 ** 24;
/** Entries examined to make room when the store is full. */
const EVICTION_SCAN = 32;
/** Entries examined for expiry on every insertion, so expired keys do not pile up. */
const SWEEP_STEP = 2;

/**
 * GCRA state in this process: one theoretical arrival time per key, on a monotonic clock.
 *
 * Compact by design: a `Map` from key to a slot number (a small integer, stored unboxed) and the
 * TATs in a `Float64Array`, so a live key costs its string plus a few dozen bytes. A key is
 * forgotten once its TAT has passed — then it is indistinguishable from a fresh key. When
 * `maxKeys` are held, inserting a key first drops keys whose TAT has passed; only if none of the
 * entries examined has expired is the one closest to expiry evicted (which hands that key its
 * burst back early — size `maxKeys` for the live key count you expect).
 *
 * {@link MemoryStore.decide} is synchronous; {@link MemoryStore.check} wraps it for the
 * {@link GcraStore} interface.
 */
export class MemoryStore implements GcraStore {
  readonly #maxKeys: number;
  readonly #clock: () => number;
  readonly #slots = new Map<string, number>();
  #tats: Float64Array;
  #free: number[] = [];
  #used = 0;
  #hand: MapIterator<[string, number]> | undefined;

  constructor(options: MemoryStoreOptions = {}) {
    const maxKeys = options.maxKeys ?? 1_000_000;
    if (!Number.isSafeInteger(maxKeys) || maxKeys < 1 || maxKeys > MAX_KEYS) {
      throw new RangeError(`maxKeys must be an integer in [1, 2^24], got ${maxKeys}`);
    }
    this.#maxKeys = maxKeys;
    this.#clock = options.clock ?? monotonicMicros;
    this.#tats = new Float64Array(Math.min(maxKeys, 1024));
  }

  /** Keys currently held (including expired ones not yet swept). */
  get size(): number {
    return this.#slots.size;
  }

  /** Decides one request synchronously. Same contract as {@link MemoryStore.check}. */
  decide(key: string, limit: GcraLimit, cost = 1): GcraDecision {
    requireKey(key);
    requireCost(cost, limit);
    const now = this.#clock();
    let slot = this.#slots.get(key);
    let tat = slot === undefined ? now : (this.#tats[slot] as number);
    if (tat < now) tat = now;
    const next = tat + cost * limit.emissionIntervalUs;
    if (next - now <= limit.burstToleranceUs) {
      if (slot === undefined) slot = this.#insert(key, now);
      this.#tats[slot] = next;
      return decision(limit, true, next - now, 0, "store");
    }
    return decision(limit, false, tat - now, next - limit.burstToleranceUs - now, "store");
  }

  /** {@inheritDoc GcraStore.check} */
  check(key: string, limit: GcraLimit, cost = 1): Promise<GcraDecision> {
    try {
      return Promise.resolve(this.decide(key, limit, cost));
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /** Forgets `key` (as if its TAT had passed). Returns whether it was held. */
  delete(key: string): boolean {
    const slot = this.#slots.get(key);
    if (slot === undefined) return false;
    this.#release(key, slot);
    return true;
  }

  /** Forgets every key. */
  clear(): void {
    this.#slots.clear();
    this.#free = [];
    this.#used = 0;
    this.#hand = undefined;
  }

  /** Drops every key whose TAT has passed; returns how many. O(keys): for idle moments, not the hot path. */
  sweep(): number {
    const now = this.#clock();
    let dropped = 0;
    for (const [key, slot] of this.#slots) {
      if ((this.#tats[slot] as number) <= now) {
        this.#release(key, slot);
        dropped++;
      }
    }
    return dropped;
  }

  /** Nothing to release; present for the {@link GcraStore} interface. */
  close(): Promise<void> {
    return Promise.resolve();
  }

  #insert(key: string, now: number): number {
    this.#advance(now, SWEEP_STEP, false);
    if (this.#slots.size >= this.#maxKeys) this.#advance(now, EVICTION_SCAN, true);
    let slot = this.#free.pop();
    if (slot === undefined) {
      slot = this.#used++;
      if (slot >= this.#tats.length) {
        const grown = new Float64Array(Math.min(this.#tats.length * 2, this.#maxKeys));
        grown.set(this.#tats);
        this.#tats = grown;
      }
    }
    this.#slots.set(key, slot);
    return slot;
  }

  /**
   * Moves the clock hand over up to `steps` entries, dropping those whose TAT has passed. With
   * `mustFree`, evicts the examined entry closest to expiry if none had expired.
   */
  #advance(now: number, steps: number, mustFree: boolean): void {
    let freed = false;
    let oldestKey: string | undefined;
    let oldestSlot = 0;
    let oldestTat = Number.POSITIVE_INFINITY;
    for (let i = 0; i < steps && this.#slots.size > 0; i++) {
      this.#hand ??= this.#slots.entries();
      const step = this.#hand.next();
      if (step.done) {
        this.#hand = undefined;
        continue;
      }
      const [key, slot] = step.value;
      const tat = this.#tats[slot] as number;
      if (tat <= now) {
        this.#release(key, slot);
        freed = true;
      } else if (tat < oldestTat) {
        oldestTat = tat;
        oldestKey = key;
        oldestSlot = slot;
      }
    }
    if (mustFree && !freed && oldestKey !== undefined) this.#release(oldestKey, oldestSlot);
  }

  #release(key: string, slot: number): void {
    this.#slots.delete(key);
    this.#free.push(slot);
  }
}
