import type { MetricObjectWithValues, MetricValue } from "prom-client";

/**
 * Messages between the cluster primary and its workers (over the cluster's IPC channel).
 * Worker → primary: `state` whenever it changes, `metrics` in answer to a request.
 * Primary → worker: `metrics` (send your registry), `drain` (stop serving and exit).
 */
export type WorkerState = {
  readonly type: "gcra:state";
  readonly listening: boolean;
  readonly storeReady: boolean;
  readonly draining: boolean;
  /** The store's warm-up, once listening with Valkey. */
  readonly warmUp?: { readonly warm: boolean; readonly ms: number };
};
export type MetricsRequest = { readonly type: "gcra:metrics"; readonly id: number };
export type MetricsReply = {
  readonly type: "gcra:metrics";
  readonly id: number;
  readonly metrics: MetricObjectWithValues<MetricValue<string>>[];
};
/** Drain: serve on for `delayMs` (DRAIN_DELAY, or 0), then close. */
export type DrainRequest = { readonly type: "gcra:drain"; readonly delayMs: number };

export type ToPrimary = WorkerState | MetricsReply;
export type ToWorker = MetricsRequest | DrainRequest;

export function isMessage<T extends { type: string }>(value: unknown, type: T["type"]): value is T {
  return typeof value === "object" && value !== null && (value as { type?: unknown }).type === type;
}
