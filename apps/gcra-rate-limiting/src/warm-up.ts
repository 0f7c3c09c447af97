import type { Logger } from "pino";
import { redacted } from "./banner.ts";
import type { Config } from "./config.ts";

/** How the store's warm-up went: whether every partition answered, and how long it took. */
export interface WarmUp {
  readonly warm: boolean;
  readonly ms: number;
}

/**
 * The one start-up line about the store: it answers, or where it was asked and what answers
 * meanwhile. Logged by the process that prints the banner (the primary for all its workers).
 */
export function logWarmUp(log: Logger, config: Config, { warm, ms }: WarmUp): void {
  if (warm) log.info({ ms }, "Valkey answers on every partition");
  else log.warn({ ms, nodes: nodeList(config), policy: config.failurePolicy }, unreachableAtStart(config));
}

/** The Valkey nodes as the banner shows them: passwords hidden. */
const nodeList = (config: Config): string => config.valkeyNodes.map(redacted).join(",");

/** The warning when Valkey does not answer at start: where it was asked, and what answers meanwhile. */
export function unreachableAtStart(config: Config): string {
  const meanwhile = {
    open: "every request is allowed unchecked (SPOA_FAILURE_POLICY=open)",
    closed: "/readyz answers 503 and every request is denied (SPOA_FAILURE_POLICY=closed)",
    fallback: "each process limits in memory on its own (SPOA_FAILURE_POLICY=fallback)",
  }[config.failurePolicy];
  return `Valkey at ${nodeList(config)} does not answer: ${meanwhile} until it does`;
}
