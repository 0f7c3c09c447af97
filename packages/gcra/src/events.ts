import type { GcraStoreError } from "./errors.ts";

/**
 * A change of the store's state, reported once per transition (an application logs one line
 * each) through the `onEvent` option of {@link ValkeyStore}, {@link PolicyStore} and
 * `createValkeyLimiter`:
 *
 * - `unreachable` — a connection to `node` failed (refused, reset, timed out); once until it recovers
 * - `auth-failure` — `node` refused the credentials (`WRONGPASS`, `NOAUTH`, `NOPERM`); once until it recovers
 * - `tls-failure` — the TLS handshake with `node` failed (certificate not vouched for, wrong name,
 *   client certificate refused); once until it recovers
 * - `recovered` — `node` is connected and ready again, after `downForUs`
 * - `circuit-open` — the failure policy answers for `partition` (a cluster shard's primary, or `*`)
 *   after sustained failure: `consecutive` failures in a row, or a failure `ratio` over the window
 * - `circuit-closed` — a probe succeeded: the store answers for `partition` again
 * - `script-reload` — `node` answered `NOSCRIPT` (flushed, restarted or failed over): the script is
 *   sent again; once per reload
 * - `error` — a store call failed; identical failures (same code and message) at most once per
 *   `repeatIntervalMs`, with `repeated` counting those left out since the last report
 */
export type StoreEvent =
  | { readonly type: "unreachable"; readonly node: string; readonly error: GcraStoreError }
  | { readonly type: "auth-failure"; readonly node: string; readonly error: GcraStoreError }
  | { readonly type: "tls-failure"; readonly node: string; readonly error: GcraStoreError }
  | { readonly type: "recovered"; readonly node: string; readonly downForUs: number }
  | {
      readonly type: "circuit-open";
      readonly partition: string;
      readonly reason: "consecutive" | "ratio";
      /** Failures that opened it: consecutive ones, or those in the window. */
      readonly failures: number;
      /** Calls in the window. */
      readonly calls: number;
      readonly error: GcraStoreError;
    }
  | {
      readonly type: "circuit-closed";
      readonly partition: string;
      readonly openForUs: number;
      readonly probes: number;
    }
  | { readonly type: "script-reload"; readonly node: string }
  | { readonly type: "error"; readonly error: GcraStoreError; readonly repeated: number };

/** Every {@link StoreEvent} type, e.g. for a metric's label values. */
export const STORE_EVENT_TYPES: readonly StoreEvent["type"][] = Object.freeze([
  "unreachable",
  "auth-failure",
  "tls-failure",
  "recovered",
  "circuit-open",
  "circuit-closed",
  "script-reload",
  "error",
]);

/** Receives {@link StoreEvent}s. It must not throw (what it throws is ignored). */
export type StoreEventListener = (event: StoreEvent) => void;

/** Default least time between two reports of identical failures. */
export const DEFAULT_REPEAT_INTERVAL_MS = 10_000;

/** Calls `listener`, ignoring what it throws: a logging mistake must not break decisions. */
export function notify(listener: StoreEventListener | undefined, event: StoreEvent): void {
  if (listener === undefined) return;
  try {
    listener(event);
  } catch {
    // The listener's own problem.
  }
}

/** Which state a node is in, for the once-per-transition events. */
type Down = { readonly type: "unreachable" | "auth-failure" | "tls-failure"; readonly since: number };

/**
 * Turns a stream of connection errors, readiness and call failures into {@link StoreEvent}s: one
 * event per transition of each node, and call failures rate-limited with a count.
 */
export class Incidents {
  readonly #listener: StoreEventListener | undefined;
  readonly #clock: () => number;
  readonly #repeatIntervalUs: number;
  readonly #down = new Map<string, Down>();
  /** Per failure (code and message): when it was last reported, and how many were left out since. */
  readonly #reported = new Map<string, { at: number; repeated: number }>();
  /** Nodes whose script is being sent again. */
  readonly #reloading = new Set<string>();
  /** Nodes that answered NOSCRIPT before. */
  readonly #loaded = new Set<string>();

  constructor(listener: StoreEventListener | undefined, clock: () => number, repeatIntervalMs: number) {
    this.#listener = listener;
    this.#clock = clock;
    this.#repeatIntervalUs = repeatIntervalMs * 1000;
  }

  /** A connection to `node` failed (or could not be made) with `error`. */
  connectionFailed(node: string, error: GcraStoreError): void {
    const type =
      error.kind === "auth" ? "auth-failure" : error.kind === "tls" ? "tls-failure" : "unreachable";
    const down = this.#down.get(node);
    if (down?.type === type) return;
    this.#down.set(node, { type, since: down?.since ?? this.#clock() });
    notify(this.#listener, { type, node, error });
  }

  /** The connection to `node` closed: unreachable, unless it is down for a reason already. */
  lost(node: string, error: GcraStoreError): void {
    if (!this.#down.has(node)) this.connectionFailed(node, error);
  }

  /** Whether any node is down now (cheap: for the hot path). */
  get anyDown(): boolean {
    return this.#down.size > 0;
  }

  /**
   * `node`'s connection is ready. That ends an `unreachable` state; a refused login or handshake
   * ends only with an answered call (a connection may look ready for a moment after its AUTH
   * was refused, as the default user, before it is dropped).
   */
  ready(node: string): void {
    if (this.#down.get(node)?.type === "unreachable") this.#recovered(node);
  }

  /** A call to `node` was answered: whatever was wrong with it is over. */
  answered(node: string): void {
    if (this.#down.has(node)) this.#recovered(node);
  }

  #recovered(node: string): void {
    const down = this.#down.get(node) as Down;
    this.#down.delete(node);
    notify(this.#listener, { type: "recovered", node, downForUs: this.#clock() - down.since });
  }

  /** A call failed: reported unless an identical failure was reported within the interval. */
  callFailed(error: GcraStoreError): void {
    if (this.#listener === undefined) return;
    const key = `${error.code} ${error.message}`;
    const now = this.#clock();
    const last = this.#reported.get(key);
    if (last !== undefined && now - last.at < this.#repeatIntervalUs) {
      last.repeated++;
      return;
    }
    if (this.#reported.size >= 1000) this.#reported.clear();
    this.#reported.set(key, { at: now, repeated: 0 });
    notify(this.#listener, { type: "error", error, repeated: last?.repeated ?? 0 });
  }

  /**
   * `node` answered NOSCRIPT: reported once until {@link reloaded} — unless it may be the script's
   * first load there (`firstLoad`: no call was answered on that node yet, as far as the caller
   * knows) and the node never answered NOSCRIPT before.
   */
  reloading(node: string, firstLoad: boolean): void {
    if (this.#reloading.has(node)) return;
    this.#reloading.add(node);
    const before = this.#loaded.has(node);
    this.#loaded.add(node);
    if (before || !firstLoad) notify(this.#listener, { type: "script-reload", node });
  }

  /** The script runs on `node` again. */
  reloaded(node: string): void {
    this.#reloading.delete(node);
  }
}
