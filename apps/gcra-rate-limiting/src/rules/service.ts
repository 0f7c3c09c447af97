import type { MessageHandler } from "@spoekit/spoe-agent";
import type { Logger } from "pino";
import type { Config } from "../config.ts";
import type { AppLimiter } from "../limiter.ts";
import type { AppMetrics } from "../metrics.ts";
import { rulesHandler } from "./handler.ts";
import { createRuleMetrics } from "./metrics.ts";
import { RulesFile } from "./source.ts";

/** The rules file of one serving process: its handler, watched for changes. */
export interface RulesService {
  readonly file: RulesFile;
  readonly handler: MessageHandler;
  /** Stops watching the file. */
  close(): void;
}

/**
 * Loads `path` (throws `RulesError` when invalid: `main` has checked it already), registers the
 * per-rule metrics, logs every reload (one error line naming file:line for a refused file), and
 * starts watching.
 */
export function rulesService(
  path: string,
  limiter: AppLimiter,
  metrics: AppMetrics,
  config: Pick<Config, "ipv6Prefix">,
  log: Logger,
): RulesService {
  const file = new RulesFile(path);
  const ruleMetrics = createRuleMetrics(metrics.registry);
  file.on("applied", (rules) => {
    ruleMetrics.reloaded(true);
    log.info({ file: path, rules: rules.rules.map((rule) => rule.name) }, "rules reloaded");
  });
  file.on("refused", (error) => {
    ruleMetrics.reloaded(false);
    log.error({ file: path, code: error.code }, `rules not reloaded, the old ones stay: ${error.message}`);
  });
  file.watch();
  const handler = rulesHandler({
    limiter,
    metrics,
    ruleMetrics,
    ipv6Prefix: config.ipv6Prefix,
    rules: () => file.current,
  });
  return { file, handler, close: () => file.close() };
}
