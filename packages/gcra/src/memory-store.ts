import { GcraOptionError } from "./errors.ts";
import { decision, type GcraDecision, monotonicMicros } from "./gcra.ts";
import { type GcraLimit, requireCost, requireKey } from "./limit.ts";
import { decideAll, type GcraRequest, invalidRequests, type LocalMultiOutcome } from "./multi.ts";
import type { GcraStore } from "./store.ts";

/** Options of {@link MemoryStore}. */
export interface MemoryStoreOptions {
  /** Most keys held at once. Default 1 000 000; at most 2^24. */
  readonly maxKeys?: number;
  /** Monotonic clock in integer µs. Default `performance.now()` in µs. */
  readonly clock?: () => number;
}

const MAX_KEYS = 2 ** 24;
/** Slots of a new table (a power of two). */
const INITIAL_SLOTS = 1024;
/** Occupied slots examined to make room when the store is full. */
const EVICTION_SCAN = 32;
/** Slots the clock hand passes on every insertion, dropping expired keys, so they do not pile up. */
const SWEEP_STEP = 8;

/** A 32-bit hash of `key` (FNV-1a over its UTF-16 code units, then murmur3's finaliser). */
function hashOf(key: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < key.length; i++) h = Math.imul(h ^ key.charCodeAt(i), 0x01000193);
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}

/**
 * GCRA state in this process: one theoretical arrival time per key, on a monotonic clock.
 *
 * An open-addressing hash table (linear probing, deletion by backward shift) over three flat
 * arrays — keys, their hashes, their TATs — that grows by doubling up to twice `maxKeys` slots
 * and never rebuilds otherwise. A `Map` under a stream of short-lived keys (a new client per
 * request, each forgotten milliseconds later) reallocates its table every few thousand
 * insertions, and those tables live long enough to fill V8's old generation with garbage; here
 * the only allocation per new key is the key itself. A live key costs its string plus about
 * 40 bytes.
 *
 * A key is forgotten once its TAT has passed — then it is indistinguishable from a fresh key. A
 * clock hand moving over the slots as keys are inserted drops expired ones. When `maxKeys` are
 * held, inserting a key first drops a key whose TAT has passed; only if none of the keys examined
 * has expired is the one closest to expiry evicted (which hands that key its burst back early —
 * size `maxKeys` for the live key count you expect).
 *
 * {@link MemoryStore.decide} is synchronous; {@link MemoryStore.check} wraps it for the
 * {@link GcraStore} interface.
 */
export class MemoryStore implements GcraStore {
  readonly #maxKeys: number;
  readonly #maxSlots: number;
  readonly #clock: () => number;
  #keys: (string | undefined)[] = [];
  #hashes = new Uint32Array(0);
  #tats = new Float64Array(0);
  #mask = 0;
  #size = 0;
  #hand = 0;
  /** Insertions since the table was last swept whole (see {@link MemoryStore.#makeRoom}). */
  #sinceSweep = Number.POSITIVE_INFINITY;

  constructor(options: MemoryStoreOptions = {}) {
    const maxKeys = options.maxKeys ?? 1_000_000;
    if (!Number.isSafeInteger(maxKeys) || maxKeys < 1 || maxKeys > MAX_KEYS) {
      throw new GcraOptionError(`maxKeys must be an integer in [1, 2^24], got ${maxKeys}`);
    }
    this.#maxKeys = maxKeys;
    // At most half the slots are ever occupied, which keeps probe sequences short.
    this.#maxSlots = 2 ** Math.ceil(Math.log2(2 * maxKeys));
    this.#clock = options.clock ?? monotonicMicros;
    this.#allocate(Math.min(INITIAL_SLOTS, this.#maxSlots));
  }

  /** Keys currently held (including expired ones not yet swept). */
  get size(): number {
    return this.#size;
  }

  /** Decides one request synchronously. Same contract as {@link MemoryStore.check}. */
  decide(key: string, limit: GcraLimit, cost = 1): GcraDecision {
    requireKey(key);
    requireCost(cost, limit);
    const now = this.#clock();
    const hash = hashOf(key);
    let slot = this.#find(key, hash);
    let tat = slot < 0 ? now : (this.#tats[slot] as number);
    if (tat < now) tat = now;
    const next = tat + cost * limit.emissionIntervalUs;
    if (next - now <= limit.burstToleranceUs) {
      if (slot < 0) slot = this.#insert(key, hash, now);
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

  /**
   * Decides one request against several limits synchronously, all or nothing (see
   * {@link GcraStore.checkAll}): atomic, as every call in this process is.
   *
   * @throws GcraInputError for an empty list, an empty key or a bad cost.
   */
  decideAll(requests: readonly GcraRequest[]): LocalMultiOutcome {
    const invalid = invalidRequests(requests);
    if (invalid) throw invalid;
    const now = this.#clock();
    const outcome = decideAll(
      requests,
      now,
      (key) => {
        const slot = this.#find(key, hashOf(key));
        return slot < 0 ? undefined : this.#tats[slot];
      },
      "store",
    );
    if (outcome.allowed) {
      for (const [key, tat] of outcome.writes) {
        const hash = hashOf(key);
        let slot = this.#find(key, hash);
        if (slot < 0) slot = this.#insert(key, hash, now);
        this.#tats[slot] = tat;
      }
    }
    return outcome;
  }

  /** {@inheritDoc GcraStore.checkAll} */
  checkAll(requests: readonly GcraRequest[]): Promise<LocalMultiOutcome> {
    try {
      return Promise.resolve(this.decideAll(requests));
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /** Forgets `key` (as if its TAT had passed). Returns whether it was held. */
  delete(key: string): boolean {
    const slot = this.#find(key, hashOf(key));
    if (slot < 0) return false;
    this.#remove(slot);
    return true;
  }

  /** Forgets every key and gives the table's memory back. */
  clear(): void {
    this.#allocate(Math.min(INITIAL_SLOTS, this.#maxSlots));
  }

  /** Drops every key whose TAT has passed; returns how many. O(slots): for idle moments, not the hot path. */
  sweep(): number {
    return this.#sweep(this.#clock());
  }

  /** Nothing to release; present for the {@link GcraStore} interface. */
  close(): Promise<void> {
    return Promise.resolve();
  }

  #sweep(now: number): number {
    this.#sinceSweep = 0;
    let dropped = 0;
    for (let slot = 0; slot < this.#keys.length; ) {
      if (this.#keys[slot] !== undefined && (this.#tats[slot] as number) <= now) {
        // The backward shift may move a key not yet examined into this slot: look again.
        this.#remove(slot);
        dropped++;
      } else {
        slot++;
      }
    }
    return dropped;
  }

  #allocate(slots: number): void {
    this.#keys = new Array<string | undefined>(slots).fill(undefined);
    this.#hashes = new Uint32Array(slots);
    this.#tats = new Float64Array(slots);
    this.#mask = slots - 1;
    this.#size = 0;
    this.#hand = 0;
  }

  /** The slot holding `key`, or -1. */
  #find(key: string, hash: number): number {
    const keys = this.#keys;
    const mask = this.#mask;
    for (let slot = hash & mask; ; slot = (slot + 1) & mask) {
      const held = keys[slot];
      if (held === undefined) return -1;
      if (this.#hashes[slot] === hash && held === key) return slot;
    }
  }

  /** Puts `key` (not held) into its first free slot, which it returns. */
  #place(key: string, hash: number, tat: number): number {
    const keys = this.#keys;
    const mask = this.#mask;
    let slot = hash & mask;
    while (keys[slot] !== undefined) slot = (slot + 1) & mask;
    keys[slot] = key;
    this.#hashes[slot] = hash;
    this.#tats[slot] = tat;
    this.#size++;
    return slot;
  }

  #insert(key: string, hash: number, now: number): number {
    this.#advance(now, SWEEP_STEP);
    this.#sinceSweep++;
    if (this.#size >= this.#maxKeys) this.#makeRoom(now);
    if (2 * (this.#size + 1) > this.#keys.length && this.#keys.length < this.#maxSlots) this.#grow();
    return this.#place(key, hash, now);
  }

  #grow(): void {
    const keys = this.#keys;
    const hashes = this.#hashes;
    const tats = this.#tats;
    this.#allocate(keys.length * 2);
    for (let slot = 0; slot < keys.length; slot++) {
      const key = keys[slot];
      if (key !== undefined) this.#place(key, hashes[slot] as number, tats[slot] as number);
    }
  }

  /** Moves the clock hand over `steps` slots, dropping the keys whose TAT has passed. */
  #advance(now: number, steps: number): void {
    for (let i = 0; i < steps && this.#size > 0; i++) {
      const slot = this.#hand;
      if (this.#keys[slot] !== undefined && (this.#tats[slot] as number) <= now) this.#remove(slot);
      else this.#hand = (slot + 1) & this.#mask;
    }
  }

  /**
   * Makes room in a full store. Expired keys go first: the whole table is swept, at most once
   * per `maxKeys / 8` insertions (so a store full of live keys pays at most 16 slot checks per
   * insertion for it). If that frees nothing, of the next `EVICTION_SCAN` keys after the clock
   * hand the first expired one is dropped or, if none has expired, the one closest to expiry.
   */
  #makeRoom(now: number): void {
    if (this.#sinceSweep >= this.#maxKeys / 8 && this.#sweep(now) > 0) return;
    let oldestSlot = -1;
    let oldestTat = Number.POSITIVE_INFINITY;
    let slot = this.#hand;
    const scan = Math.min(EVICTION_SCAN, this.#size);
    for (let seen = 0; seen < scan; slot = (slot + 1) & this.#mask) {
      if (this.#keys[slot] === undefined) continue;
      const tat = this.#tats[slot] as number;
      if (tat <= now) {
        this.#remove(slot);
        return;
      }
      if (tat < oldestTat) {
        oldestTat = tat;
        oldestSlot = slot;
      }
      seen++;
    }
    this.#hand = slot;
    this.#remove(oldestSlot);
  }

  /**
   * Empties `slot` and shifts back the keys after it whose probe sequence passes through it, so
   * that every key stays reachable from its home slot without tombstones.
   */
  #remove(slot: number): void {
    const keys = this.#keys;
    const hashes = this.#hashes;
    const tats = this.#tats;
    const mask = this.#mask;
    let hole = slot;
    for (let next = (hole + 1) & mask; keys[next] !== undefined; next = (next + 1) & mask) {
      const home = (hashes[next] as number) & mask;
      // The key at `next` may fill the hole unless its home lies cyclically in (hole, next].
      if (((next - home) & mask) >= ((next - hole) & mask)) {
        keys[hole] = keys[next];
        hashes[hole] = hashes[next] as number;
        tats[hole] = tats[next] as number;
        hole = next;
      }
    }
    keys[hole] = undefined;
    this.#size--;
  }
}
