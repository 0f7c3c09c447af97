#!/usr/bin/env node
/**
 * gcra-rate-limiting: the HAProxy SPOE agent that rate-limits each client IP with GCRA.
 * Configuration comes from the environment (see config.ts and the README); a bad value is one
 * line on stderr and exit code 2.
 */
import cluster from "node:cluster";
import { type Config, ConfigError, loadConfig } from "./config.ts";
import { fatal } from "./lifecycle.ts";
import { runPrimary } from "./primary.ts";
import { RulesError } from "./rules/parse.ts";
import { loadRules } from "./rules/source.ts";
import { runSingle } from "./single.ts";
import { runWorker } from "./worker.ts";

let config: Config;
try {
  config = loadConfig(process.env);
} catch (error) {
  if (error instanceof ConfigError) fatal(`configuration error: ${error.message}`, 2);
  throw error;
}
// Every process loads the rules file again; checked here first so that a bad file stops the start.
try {
  if (config.rulesFile !== undefined) loadRules(config.rulesFile);
} catch (error) {
  if (error instanceof RulesError) fatal(`SPOA_RULES_FILE: ${error.message}`, 2);
  throw error;
}

if (cluster.isWorker) await runWorker(config);
else if (config.workers > 1) await runPrimary(config);
else await runSingle(config);
