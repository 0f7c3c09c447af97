import type { Logger } from "pino";
import { Counter, type Registry } from "prom-client";
import { HotCounter } from "../hot-metrics.ts";
import type { Rule } from "./parse.ts";

/** A rule's verdict, as the `outcome` label of `gcra_rule_decisions_total`. */
export type RuleOutcome = "allowed" | "denied" | "shadow_denied";

/** The verdict counters of one rule, resolved once per rule set (see {@link RuleMetrics.counters}). */
export interface RuleCounters {
  /**
   * Counts the rule's verdict on one request (`shadow_denied`: a shadow rule that would have
   * denied, which is also logged, at most once a second per rule).
   */
  decided(allowed: boolean, log: Logger): void;
}

/** Per-rule metrics (labels: rule name and outcome only) and the rules file's reload counters. */
export interface RuleMetrics {
  /**
   * The counters of `rule`: each outcome's series is found on first use and kept, so that
   * counting a verdict on the request path is one call (a rule reloaded under the same name
   * counts on the same series).
   */
  counters(rule: Rule): RuleCounters;
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
  // Per rule name, the increment of each outcome's series, made on first use.
  type Increment = (by?: number) => void;
  const byRule = new Map<string, Partial<Record<RuleOutcome, Increment>>>();
  const seriesOf = (rule: string, outcome: RuleOutcome): Increment => {
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
    return inc;
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
    counters(rule) {
      const { name, shadow } = rule;
      let allowed: Increment | undefined;
      let denied: Increment | undefined;
      return {
        decided(ok, log) {
          if (ok) {
            allowed ??= seriesOf(name, "allowed");
            return allowed();
          }
          denied ??= seriesOf(name, shadow ? "shadow_denied" : "denied");
          denied();
          if (!shadow) return;
          const now = performance.now() * 1000;
          if (now - (lastShadowLog.get(name) ?? Number.NEGATIVE_INFINITY) >= SHADOW_LOG_INTERVAL_US) {
            lastShadowLog.set(name, now);
            log.info({ rule: name }, "a shadow rule would have denied a request");
          }
        },
      };
    },
    listed: (list) => seriesOf(list, list === "allow" ? "allowed" : "denied")(),
    reloaded: (ok) => reloads.labels({ result: ok ? "applied" : "failed" }).inc(),
  };
}
