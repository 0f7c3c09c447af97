import cluster from "node:cluster";
import type { Config } from "./config.ts";
import {
  type DrainRequest,
  isMessage,
  type MetricsRequest,
  type ToPrimary,
  type WorkerState,
} from "./ipc.ts";
import {
  createLogger,
  drainAfterDelay,
  drainDeadline,
  drainDelayFor,
  fatal,
  onStopSignals,
} from "./lifecycle.ts";
import { createService } from "./service.ts";
import type { WarmUp } from "./warm-up.ts";

/**
 * A cluster worker: serves SPOP on the shared port (TCP: its own socket with SO_REUSEPORT, so
 * the kernel spreads HAProxy's connections; a unix socket: through the primary), reports its
 * state to the primary, answers its metrics requests, drains when told or signalled.
 */
export async function runWorker(config: Config): Promise<void> {
  const log = createLogger(config, { worker: cluster.worker?.id });
  const service = createService(config, log);
  let draining = false;
  const send = (message: ToPrimary) => {
    if (process.connected) process.send?.(message);
  };
  let last = "";
  let warmUp: WarmUp | undefined;
  const report = () => {
    const state: WorkerState = {
      type: "gcra:state",
      listening: service.listening,
      storeReady: service.storeReady(),
      draining,
      ...(warmUp ? { warmUp } : {}),
    };
    const text = JSON.stringify(state);
    if (text !== last) {
      last = text;
      send(state);
    }
  };
  const reporter = setInterval(report, 250);
  reporter.unref();

  const drain = (why: string, delayMs = 0) => {
    if (draining) return;
    draining = true;
    service.metrics.draining.set(1);
    report();
    log.info({ delayMs, why }, "draining");
    const deadline = drainDeadline(log, config.drainTimeoutMs);
    void drainAfterDelay(log, delayMs, () => service.close()).then(() => {
      clearTimeout(deadline);
      log.info("stopped");
      process.exit(0);
    });
  };
  process.on("message", (message: unknown) => {
    if (isMessage<MetricsRequest>(message, "gcra:metrics")) {
      void service.metrics.registry
        .getMetricsAsJSON()
        .then((metrics) => send({ type: "gcra:metrics", id: message.id, metrics }));
    } else if (isMessage<DrainRequest>(message, "gcra:drain")) {
      drain("asked by the primary", message.delayMs);
    }
  });
  // The primary is gone: nobody would stop this process.
  process.on("disconnect", () => drain("the primary exited"));
  // Signalled itself (the primary's signal reaches it as a drain message).
  onStopSignals(log, (signal) => drain(signal, drainDelayFor(signal, config.drainDelayMs)));

  try {
    warmUp = await service.listen({ reusePort: "port" in config.spoeAddress });
  } catch (error) {
    if (draining) return;
    fatal(`worker ${cluster.worker?.id}: cannot listen on SPOE_ADDR: ${String(error)}`, 1);
  }
  report();
}
