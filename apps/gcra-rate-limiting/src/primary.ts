import cluster, { type Worker } from "node:cluster";
import { AggregatorRegistry } from "prom-client";
import { type AdminServer, startAdmin } from "./admin.ts";
import { banner } from "./banner.ts";
import type { Config } from "./config.ts";
import { isMessage, type MetricsReply, type ToWorker, type WorkerState } from "./ipc.ts";
import {
  createLogger,
  drainDeadline,
  drainDelayFor,
  fatal,
  logStartWarnings,
  onStopSignals,
  readiness,
  startup,
  workerExecArgv,
} from "./lifecycle.ts";
import { createPrimaryMetrics } from "./metrics.ts";
import { logWarmUp } from "./warm-up.ts";

/**
 * How long a scrape waits for a worker's metrics before using that worker's last reply instead
 * (Prometheus' default scrape timeout is 10 s).
 */
const METRICS_TIMEOUT_MS = 2000;
/** Pause before replacing a worker that died. */
const RESTART_DELAY_MS = 1000;

interface Tracked {
  readonly worker: Worker;
  state: WorkerState | undefined;
  listened: boolean;
  /** The worker's last metrics reply: a late worker is summed with it, so no total goes backwards. */
  lastMetrics: MetricsReply["metrics"] | undefined;
}

/**
 * The cluster primary (SPOA_WORKERS > 1): forks the workers, which serve SPOP; serves the admin
 * API itself — readiness from the workers' reported state, metrics gathered from every worker
 * and summed (prom-client's aggregation) with its own process metrics; replaces a worker that
 * dies; on SIGTERM/SIGINT tells every worker to drain and exits once they all have.
 */
export async function runPrimary(config: Config): Promise<void> {
  const log = createLogger(config, { role: "primary" });
  logStartWarnings(log, config);
  const tracked = new Map<number, Tracked>();
  const registry = createPrimaryMetrics(() => [...tracked.values()].filter((t) => t.state?.listening).length);

  let started = false;
  let draining = false;
  let admin: AdminServer | undefined;
  let nextRequest = 0;
  const pending = new Map<number, (reply: MetricsReply | undefined) => void>();

  const metricsOf = ({ worker, lastMetrics }: Tracked): Promise<MetricsReply["metrics"] | undefined> =>
    new Promise((resolve) => {
      if (!worker.isConnected()) return resolve(lastMetrics);
      const id = nextRequest++;
      const timer = setTimeout(() => {
        pending.delete(id);
        log.warn({ worker: worker.id }, "a worker did not send its metrics in time: its last ones are used");
        resolve(lastMetrics);
      }, METRICS_TIMEOUT_MS);
      pending.set(id, (reply) => {
        clearTimeout(timer);
        pending.delete(id);
        resolve(reply?.metrics);
      });
      worker.send({ type: "gcra:metrics", id } satisfies ToWorker);
    });

  const exitWhenDone = () => {
    if (!draining || tracked.size > 0) return;
    void Promise.resolve(admin?.close()).then(() => {
      log.info("stopped");
      process.exit(0);
    });
  };

  const fork = () => {
    const worker = cluster.fork();
    const entry: Tracked = { worker, state: undefined, listened: false, lastMetrics: undefined };
    tracked.set(worker.id, entry);
    worker.on("message", (message: unknown) => {
      if (isMessage<WorkerState>(message, "gcra:state")) {
        entry.state = message;
        if (message.listening && !entry.listened) {
          entry.listened = true;
          if (!started && [...tracked.values()].every((t) => t.listened)) {
            started = true;
            process.stdout.write(`${banner(config)}\n`);
            log.info({ workers: tracked.size, admin: admin?.address }, "started");
            const warmUps = [...tracked.values()].flatMap((t) => (t.state?.warmUp ? [t.state.warmUp] : []));
            if (warmUps.length > 0) {
              logWarmUp(log, config, {
                warm: warmUps.every((w) => w.warm),
                ms: Math.max(...warmUps.map((w) => w.ms)),
              });
            }
          }
        }
      } else if (isMessage<MetricsReply>(message, "gcra:metrics")) {
        entry.lastMetrics = message.metrics;
        pending.get(message.id)?.(message);
      }
    });
    worker.on("exit", (code, signal) => {
      tracked.delete(worker.id);
      if (draining) {
        log.info({ worker: worker.id, code, signal }, "worker exited");
        exitWhenDone();
        return;
      }
      if (!entry.listened) {
        // It could not start (a port in use, say): another would fail alike.
        log.fatal({ worker: worker.id, code, signal }, "a worker exited before it listened");
        for (const other of tracked.values()) other.worker.process.kill("SIGKILL");
        fatal(`worker ${worker.id} exited (code ${code}, signal ${signal}) before it listened`, 1);
      }
      log.error({ worker: worker.id, code, signal }, "worker died; starting another");
      setTimeout(() => {
        if (!draining) fork();
      }, RESTART_DELAY_MS).unref();
    });
  };

  onStopSignals(log, (signal) => {
    draining = true;
    const delayMs = drainDelayFor(signal, config.drainDelayMs);
    log.info({ delayMs, signal, workers: tracked.size }, "draining");
    drainDeadline(log, config.drainTimeoutMs).unref();
    // /readyz (answered here) says 503 from now on; each worker serves on for the delay, then closes.
    for (const { worker } of tracked.values()) {
      if (worker.isConnected()) worker.send({ type: "gcra:drain", delayMs } satisfies ToWorker);
    }
    exitWhenDone();
  });
  // A primary killed without a signal handler run leaves no worker behind either: each
  // worker drains when its IPC channel closes.

  admin = await startAdmin(
    config.adminAddress,
    {
      started: () => startup(started),
      ready: () => {
        const states = [...tracked.values()].map((t) => t.state).filter((s) => s?.listening);
        return readiness({
          draining,
          listening: states.length > 0,
          storeReady: states.every((s) => s?.storeReady),
        });
      },
      metrics: async () => {
        const replies = await Promise.all([...tracked.values()].map(metricsOf));
        const own = await registry.getMetricsAsJSON();
        const all = [own, ...replies.flatMap((metrics) => (metrics ? [metrics] : []))];
        const aggregated = AggregatorRegistry.aggregate(all);
        return { contentType: aggregated.contentType, body: await aggregated.metrics() };
      },
    },
    log,
  ).catch((error: unknown) => fatal(`cannot listen on ADMIN_ADDR: ${String(error)}`, 1));

  cluster.setupPrimary({ execArgv: workerExecArgv(process.execArgv, process.env.NODE_OPTIONS) });
  for (let i = 0; i < config.workers; i++) fork();
}
