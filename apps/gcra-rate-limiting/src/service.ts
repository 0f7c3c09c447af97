import { createAgent, type ListenOptions, type SpoeAgent } from "@spoekit/spoe-agent";
import type { Logger } from "pino";
import { answerMarginMs, type Config } from "./config.ts";
import { checkRateHandler, MESSAGE } from "./handler.ts";
import { type AppLimiter, createLimiter } from "./limiter.ts";
import { type AppMetrics, createMetrics, observeAgent, observeValkey } from "./metrics.ts";
import { rulesService } from "./rules/service.ts";
import type { WarmUp } from "./warm-up.ts";

/**
 * One serving process: the limiter, its metrics, and the SPOE agent answering `check-rate` on
 * SPOE_ADDR. The single-process mode and every cluster worker run one.
 */
export interface Service {
  readonly limiter: AppLimiter;
  readonly metrics: AppMetrics;
  readonly agent: SpoeAgent;
  /** Whether the SPOP port is listening (and not closed yet). */
  readonly listening: boolean;
  /**
   * Warms the store up (see {@link AppLimiter.warmUp}), then listens; `reusePort` lets cluster
   * workers bind the same TCP port. Resolves with the warm-up's outcome (undefined for the
   * embedded store), for {@link logWarmUp}.
   */
  listen(options: { reusePort: boolean }): Promise<WarmUp | undefined>;
  /** See {@link AppLimiter.ready}. */
  storeReady(): boolean;
  /**
   * Drains: stops accepting, answers every NOTIFY received (each connection then gets
   * AGENT-DISCONNECT status 0), then closes the store. Resolves when all is closed.
   */
  close(): Promise<void>;
}

/**
 * How long start-up waits for Valkey to answer on every partition before listening anyway
 * (with the failure policy answering until it does).
 */
const WARM_UP_MS = 3000;

/** The time `close()` may spend on the store after the agent drained, at most. */
const STORE_CLOSE_MS = 1000;

/**
 * How the drain budget splits: after DRAIN_DELAY, the agent's in-flight NOTIFYs get what is left
 * of DRAIN_TIMEOUT minus a reserve for closing the store and exiting (a quarter of it, at most 2 s).
 */
export function drainBudget(
  drainTimeoutMs: number,
  drainDelayMs: number,
): { agentMs: number; storeMs: number } {
  const rest = Math.max(0, drainTimeoutMs - drainDelayMs);
  const reserve = Math.min(2000, Math.floor(rest / 4));
  return { agentMs: rest - reserve, storeMs: Math.min(STORE_CLOSE_MS, Math.floor(reserve / 2)) };
}

/**
 * The agent's own deadline per NOTIFY, a backstop: the store answers (or its failure policy
 * does) within VALKEY_TIMEOUT, and past HAProxy's processing timeout nobody waits for the answer.
 */
export function handlerTimeoutOf(config: Config): number {
  return Math.max(
    config.processingTimeoutMs,
    config.valkeyTimeoutMs + answerMarginMs(config.processingTimeoutMs),
  );
}

function listenOptions(address: ListenOptions, reusePort: boolean): ListenOptions {
  return "path" in address || !reusePort ? address : { ...address, reusePort };
}

export function createService(config: Config, log: Logger): Service {
  const limiter = createLimiter(config, log);
  const metrics = createMetrics(limiter.kind);
  observeAgent(metrics.registry);
  if (limiter.valkey) observeValkey(metrics.registry, limiter.valkey);
  const budget = drainBudget(config.drainTimeoutMs, config.drainDelayMs);
  const { connections } = config;
  const agent = createAgent({
    logger: log,
    // HAProxy 3.1.0–3.2-dev6 hold an empty ACK until `timeout processing`.
    noEmptyAck: true,
    handlerTimeout: handlerTimeoutOf(config),
    closeTimeout: budget.agentMs,
    maxConnections: connections.maxConnections,
    maxBufferedBytes: connections.maxBufferedBytes,
    maxTotalBufferedBytes: connections.maxTotalBufferedBytes,
    helloTimeout: connections.helloTimeoutMs,
    idleTimeout: connections.idleTimeoutMs,
  });
  const rules =
    config.rulesFile === undefined
      ? undefined
      : rulesService(config.rulesFile, limiter, metrics, config, log);
  agent.message(
    MESSAGE,
    rules?.handler ?? checkRateHandler({ limiter, metrics, ipv6Prefix: config.ipv6Prefix }),
  );

  let listening = false;
  let closing: Promise<void> | undefined;
  return {
    limiter,
    metrics,
    agent,
    get listening() {
      return listening;
    },
    async listen({ reusePort }) {
      let warmUp: WarmUp | undefined;
      if (limiter.kind === "valkey") {
        const started = performance.now();
        const warm = await limiter.warmUp(WARM_UP_MS);
        warmUp = { warm, ms: Math.round(performance.now() - started) };
      }
      await agent.listen(listenOptions(config.spoeAddress, reusePort));
      listening = true;
      return warmUp;
    },
    storeReady: () => limiter.ready(),
    close() {
      closing ??= (async () => {
        metrics.draining.set(1);
        rules?.close();
        await agent.close();
        listening = false;
        let timer: NodeJS.Timeout | undefined;
        await Promise.race([
          limiter.close().catch((error: unknown) => log.warn({ err: error }, "closing the store failed")),
          new Promise<void>((resolve) => {
            timer = setTimeout(() => {
              log.warn("the store did not close in time");
              resolve();
            }, budget.storeMs);
          }),
        ]);
        clearTimeout(timer);
      })();
      return closing;
    },
  };
}
