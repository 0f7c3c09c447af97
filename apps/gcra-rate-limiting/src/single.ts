import { type AdminServer, startAdmin } from "./admin.ts";
import { banner } from "./banner.ts";
import type { Config } from "./config.ts";
import {
  createLogger,
  drainAfterDelay,
  drainDeadline,
  drainDelayFor,
  fatal,
  logStartWarnings,
  onStopSignals,
  readiness,
  startup,
} from "./lifecycle.ts";
import { createService } from "./service.ts";
import { logWarmUp, type WarmUp } from "./warm-up.ts";

/**
 * One process does everything: the SPOE agent, the store and the admin server. The mode of the
 * embedded store (whose limits live in this process) and of SPOA_WORKERS=1.
 */
export async function runSingle(config: Config): Promise<void> {
  const log = createLogger(config);
  const service = createService(config, log);
  logStartWarnings(log, config);
  const { registry } = service.metrics;
  let started = false;
  let draining = false;
  let admin: AdminServer | undefined;

  onStopSignals(log, (signal) => {
    draining = true;
    service.metrics.draining.set(1);
    const delayMs = drainDelayFor(signal, config.drainDelayMs);
    log.info({ delayMs, signal }, "draining");
    const deadline = drainDeadline(log, config.drainTimeoutMs);
    void drainAfterDelay(log, delayMs, () => service.close())
      .then(() => admin?.close())
      .then(() => {
        clearTimeout(deadline);
        log.info("stopped");
        process.exit(0);
      });
  });

  admin = await startAdmin(
    config.adminAddress,
    {
      started: () => startup(started),
      ready: () => readiness({ draining, listening: service.listening, storeReady: service.storeReady() }),
      metrics: async () => ({ contentType: registry.contentType, body: await registry.metrics() }),
    },
    log,
  ).catch((error: unknown) => fatal(`cannot listen on ADMIN_ADDR: ${String(error)}`, 1));
  if (draining) return;
  let warmUp: WarmUp | undefined;
  try {
    warmUp = await service.listen({ reusePort: false });
  } catch (error) {
    if (draining) return;
    fatal(`cannot listen on SPOE_ADDR: ${String(error)}`, 1);
  }
  started = true;
  process.stdout.write(`${banner(config)}\n`);
  if (warmUp) logWarmUp(log, config, warmUp);
  log.info({ spop: service.agent.addresses.map((a) => a.url), admin: admin.address }, "started");
}
