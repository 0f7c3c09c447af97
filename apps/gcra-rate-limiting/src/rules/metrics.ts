import type { Logger } from "pino";
import { Counter, type Registry } from "prom-client";
import { HotCounter } from "../hot-metrics.ts";
import type { Rule } from "./parse.ts";

/** A rule's verdict, as the `outcome` label of `gcra_rule_decisions_total`. */
export type RuleOutcome = "allowed" | "denied" | "shadow_denied";

/** Per-rule metrics (labels: rule name and outcome only) and the rules file's reload counters. */
export interface RuleMetrics {
  /**
   * Counts one rule's verdict (`shadow_denied`: a shadow rule that would have denied, which is
   * also logged, at most once a second per rule).
   */
  decided(rule: Rule, allowed: boolean, log: Logger): void;
  /** Counts a request answered by the `allow` or `deny` list (as rule `allow` / `deny`). */
  listed(list: "allow" | "deny"): void;
  /** Counts a reload of the rules file: applied, or refused (invalid). */
  reloaded(ok: boolean): void;
}

const SHADOW_LOG_INTERVAL_US = 1_000_000;

export function createRuleMetrics(registry: Registry): RuleMetrics {
  const decisions = new HotCounter(
    registry,
    "gcra_rule_decisions_total",
    "Verdicts per rule of the rules file (outcome allowed, denied, or shadow_denied for a shadow rule that would have denied); rule allow/deny: the CIDR lists",
  );
  // Per rule name, the increment of each outcome's series, made on first use: counting is two
  // lookups and a call, without building a string per request.
  const byRule = new Map<string, Partial<Record<RuleOutcome, (by?: number) => void>>>();
  const count = (rule: string, outcome: RuleOutcome) => {
    let series = byRule.get(rule);
    if (series === undefined) {
      series = {};
      byRule.set(rule, series);
    }
    let inc = series[outcome];
    if (inc === undefined) {
      inc = decisions.series({ rule, outcome });
      series[outcome] = inc;
    }
    inc();
  };
  // Every worker reads the same file: the cluster's view is the largest count, not the sum.
  const reloads = new Counter({
    name: "gcra_rules_reloads_total",
    help: "Reloads of SPOA_RULES_FILE by result: applied, or failed (invalid file, old rules kept)",
    labelNames: ["result"],
    aggregator: "max",
    registers: [registry],
  });
  reloads.labels({ result: "applied" }).inc(0);
  reloads.labels({ result: "failed" }).inc(0);
  const lastShadowLog = new Map<string, number>();

  return {
    decided(rule, allowed, log) {
      if (allowed) return count(rule.name, "allowed");
      if (!rule.shadow) return count(rule.name, "denied");
      count(rule.name, "shadow_denied");
      const now = performance.now() * 1000;
      if (now - (lastShadowLog.get(rule.name) ?? Number.NEGATIVE_INFINITY) >= SHADOW_LOG_INTERVAL_US) {
        lastShadowLog.set(rule.name, now);
        log.info({ rule: rule.name }, "a shadow rule would have denied a request");
      }
    },
    listed: (list) => count(list, list === "allow" ? "allowed" : "denied"),
    reloaded: (ok) => reloads.labels({ result: ok ? "applied" : "failed" }).inc(),
  };
}
