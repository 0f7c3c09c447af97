import { subscribe, unsubscribe } from "node:diagnostics_channel";
import type { DecisionSource, FailureKind, ValkeyLimiter } from "@spoekit/gcra";
import { DECISION_SOURCES, FAILURE_KINDS, POLICY_MODES } from "@spoekit/gcra";
import {
  type ConnectionCloseMessage,
  channels,
  type DisconnectMessage,
  type ErrorMessage,
  type FrameMessage,
  type NotifyMessage,
} from "@spoekit/spoe-agent";
import { FrameType, frameTypeNames } from "@spoekit/spop-codec";
import { Counter, collectDefaultMetrics, Gauge, Registry } from "prom-client";
import { HotCounter, HotHistogram } from "./hot-metrics.ts";

/**
 * The Prometheus metrics of one process. Every process (each worker, and the cluster primary)
 * has its own registry; the admin server serves them summed over the processes.
 */

/** Seconds; from 50 µs (a decision in memory) to 1 s (a stalled store). */
const latencyBuckets = [
  0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.015, 0.025, 0.05, 0.1, 0.25, 1,
];

/** Lower-case frame names as label values: `notify`, `ack`, `haproxy-hello`, … */
const frameLabel = Object.fromEntries(
  Object.entries(frameTypeNames).map(([code, name]) => [code, name.toLowerCase()]),
) as Record<number, string>;

/** The metrics the request path updates directly, with their series resolved once. */
export interface AppMetrics {
  readonly registry: Registry;
  /** Counts one decision by who made it and its outcome. */
  decided(source: DecisionSource, allowed: boolean): void;
  /** Counts a `check-rate` message without a usable client address. */
  unresolved(): void;
  /** 1 while this process drains. */
  readonly draining: Gauge;
}

/** Creates the registry of one process with every metric, and the process metrics. */
export function createMetrics(store: "embedded" | "valkey"): AppMetrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });

  const decisions = new HotCounter(
    registry,
    "gcra_decisions_total",
    "Rate-limit decisions by outcome (allowed, denied) and by who decided (store, deny-cache, or the failure policy: fallback, open, closed)",
  );
  // Only the sources this store can produce: the embedded store decides everything itself.
  const sources = store === "valkey" ? DECISION_SOURCES : (["store"] as const);
  const bySource = new Map<DecisionSource, [allowed: () => void, denied: () => void]>(
    sources.map((source) => [
      source,
      [decisions.series({ outcome: "allowed", source }), decisions.series({ outcome: "denied", source })],
    ]),
  );
  const unresolved = new HotCounter(
    registry,
    "gcra_unresolved_messages_total",
    "check-rate messages without a usable client address in ip_fwd, ip_xff or ip_src: answered without a decision",
  ).series();
  const draining = new Gauge({
    name: "gcra_rate_limiting_draining",
    help: "1 while the agent drains after SIGTERM/SIGINT (readyz answers 503)",
    aggregator: "max",
    registers: [registry],
  });
  const info = new Gauge({
    name: "gcra_rate_limiting_info",
    help: "Constant 1, labelled with the store kind",
    labelNames: ["store"],
    aggregator: "max",
    registers: [registry],
  });
  info.labels({ store }).set(1);

  return {
    registry,
    decided(source, allowed) {
      bySource.get(source)?.[allowed ? 0 : 1]();
    },
    unresolved: () => unresolved(),
    draining,
  };
}

/**
 * The cluster primary's own registry: its process metrics and the number of workers listening
 * (`listening()`, read at each scrape). The workers' registries are summed with it.
 */
export function createPrimaryMetrics(listening: () => number): Registry {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  new Gauge({
    name: "gcra_rate_limiting_workers",
    help: "Worker processes listening on the SPOP port",
    registers: [registry],
    collect() {
      this.set(listening());
    },
  });
  return registry;
}

/**
 * Exports what the SPOE agent publishes on `node:diagnostics_channel`: connections, frames,
 * handler latency, errors and disconnects. Returns a function that unsubscribes.
 */
export function observeAgent(registry: Registry): () => void {
  const opened = new Counter({
    name: "spoa_connections_opened_total",
    help: "SPOP connections accepted",
    registers: [registry],
  });
  const open = new Gauge({
    name: "spoa_connections",
    help: "SPOP connections open now",
    registers: [registry],
  });
  const closed = new Counter({
    name: "spoa_connections_closed_total",
    help: "SPOP connections closed, by cause (haproxy-disconnect, agent-disconnect, healthcheck, peer-closed, reset, destroyed)",
    labelNames: ["cause"],
    registers: [registry],
  });
  const framesIn = new HotCounter(registry, "spoa_frames_received_total", "SPOP frames received, by type");
  const framesOut = new HotCounter(registry, "spoa_frames_sent_total", "SPOP frames sent, by type");
  const disconnects = new Counter({
    name: "spoa_disconnects_total",
    help: "DISCONNECT frames, by direction (sent: AGENT-DISCONNECT, received: HAPROXY-DISCONNECT) and SPOP status code",
    labelNames: ["direction", "status"],
    registers: [registry],
  });
  const errors = new Counter({
    name: "spoa_errors_total",
    help: "Agent errors, by kind (handler, timeout, protocol, encoding, socket, hook)",
    labelNames: ["kind"],
    registers: [registry],
  });
  const handlerSeconds = new HotHistogram(
    registry,
    "spoa_notify_duration_seconds",
    "Time from receiving a NOTIFY to its answer (handler latency), by outcome (ok, error, timeout, cancelled)",
    latencyBuckets,
  );
  const byOutcome = new Map(
    (["ok", "error", "timeout", "cancelled"] as const).map((outcome) => [
      outcome,
      handlerSeconds.series({ outcome }),
    ]),
  );

  /** Frame counters by type code: HAProxy's and the agent's types up front, any other on first sight. */
  const frameCounter = (counter: HotCounter, types: readonly number[]) => {
    const byType = new Map(
      types.map((code) => [code, counter.series({ type: frameLabel[code] ?? String(code) })]),
    );
    return (type: number, count: number) => {
      let inc = byType.get(type);
      if (inc === undefined) {
        inc = counter.series({ type: frameLabel[type] ?? String(type) });
        byType.set(type, inc);
      }
      inc(count);
    };
  };
  const frameIn = frameCounter(framesIn, [
    FrameType.HAPROXY_HELLO,
    FrameType.NOTIFY,
    FrameType.HAPROXY_DISCONNECT,
  ]);
  const frameOut = frameCounter(framesOut, [
    FrameType.AGENT_HELLO,
    FrameType.ACK,
    FrameType.AGENT_DISCONNECT,
  ]);

  const handlers: [string, (message: unknown) => void][] = [
    [
      channels.connectionOpen,
      () => {
        opened.inc();
        open.inc();
      },
    ],
    [
      channels.connectionClose,
      (message) => {
        open.dec();
        closed.inc({ cause: (message as ConnectionCloseMessage).cause });
      },
    ],
    [
      channels.frameIn,
      (message) => {
        const { type, count } = message as FrameMessage;
        frameIn(type, count);
      },
    ],
    [
      channels.frameOut,
      (message) => {
        const { type, count } = message as FrameMessage;
        frameOut(type, count);
      },
    ],
    [
      channels.notify,
      (message) => {
        const { duration, outcome } = message as NotifyMessage;
        byOutcome.get(outcome)?.(duration / 1000);
      },
    ],
    [
      channels.disconnect,
      (message) => {
        const { direction, status } = message as DisconnectMessage;
        disconnects.inc({ direction, status: String(status) });
      },
    ],
    [channels.error, (message) => errors.inc({ kind: (message as ErrorMessage).kind })],
  ];
  for (const [name, handler] of handlers) subscribe(name, handler);
  return () => {
    for (const [name, handler] of handlers) unsubscribe(name, handler);
  };
}

/** Exports the Valkey limiter's latency, failures by kind, and who answers (store or policy). */
export function observeValkey(registry: Registry, limiter: ValkeyLimiter): void {
  const storeSeconds = new HotHistogram(
    registry,
    "gcra_store_duration_seconds",
    "Valkey calls (decisions and probes) from issue to answer or failure, by result (ok, error)",
    latencyBuckets,
  );
  const ok = storeSeconds.series({ result: "ok" });
  const failed = storeSeconds.series({ result: "error" });
  const errors = new Counter({
    name: "gcra_store_errors_total",
    help: "Failed Valkey calls, by kind (timeout, connection, tls, cluster, readonly, auth, script, reply, other)",
    labelNames: ["kind"],
    registers: [registry],
  });
  for (const kind of FAILURE_KINDS) errors.labels({ kind }).inc(0);
  limiter.valkey.on("latency", (durationUs, success) => (success ? ok : failed)(durationUs / 1e6));
  limiter.valkey.on("failure", (error) => errors.inc({ kind: error.kind satisfies FailureKind }));

  new Gauge({
    name: "gcra_store_mode",
    help: "1 for who answers now: store (Valkey decides for every key) or the failure policy (open, closed, fallback) while any partition fails; summed over workers",
    labelNames: ["mode"],
    registers: [registry],
    collect() {
      const { mode } = limiter.stats();
      for (const each of POLICY_MODES) this.set({ mode: each }, each === mode ? 1 : 0);
    },
  });
  new Gauge({
    name: "gcra_store_failing_partitions",
    help: "Valkey partitions (cluster shards, or the one standalone/sentinel partition) the failure policy answers for now",
    aggregator: "max",
    registers: [registry],
    collect() {
      this.set(limiter.stats().failing.length);
    },
  });
  new Gauge({
    name: "gcra_store_connected",
    help: "1 while the Valkey client is connected; the minimum over workers",
    aggregator: "min",
    registers: [registry],
    collect() {
      this.set(limiter.stats().connected ? 1 : 0);
    },
  });
}
