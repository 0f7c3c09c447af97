import type { GcraMultiDecision, GcraRequest } from "@spoekit/gcra";
import { DataType, type MessageContext, type MessageHandler, Scope, TypedValue } from "@spoekit/spoe-agent";
import { formatIp } from "@spoekit/spop-codec";
import { clientKey } from "../client-ip.ts";
import { clientAddress, integers } from "../handler.ts";
import type { AppLimiter } from "../limiter.ts";
import type { AppMetrics } from "../metrics.ts";
import { inAny, unmapped } from "./cidr.ts";
import type { RuleMetrics } from "./metrics.ts";
import { CLIENT_IP, type Rule, type RuleSet } from "./parse.ts";

/** The string form of an argument; `undefined` when absent or NULL. */
export function argText(value: TypedValue | undefined): string | undefined {
  if (value === undefined) return undefined;
  switch (value.type) {
    case DataType.NULL:
      return undefined;
    case DataType.STRING:
      return value.value;
    case DataType.IPV4:
    case DataType.IPV6:
      return formatIp(value.value);
    case DataType.BINARY:
      return Buffer.from(value.value).toString("utf8");
    default:
      return String(value.value);
  }
}

/** Separates the values of a key of several arguments (HAProxy never passes it in a header). */
const SEPARATOR = "\u001f";

/** The rules that apply to a message and their requests to the store. */
interface Applied {
  readonly rules: Rule[];
  readonly requests: GcraRequest[];
}

/** Which rules apply to `message`, and the key of each (a rule whose key argument is missing does not count). */
export function applicable(
  set: RuleSet,
  message: Pick<MessageContext, "arg">,
  address: Uint8Array | undefined,
  ipv6Prefix: number,
): Applied {
  const applied: Applied = { rules: [], requests: [] };
  let ip: string | undefined;
  for (const rule of set.rules) {
    let matches = true;
    for (const condition of rule.conditions) {
      const value = condition.arg === CLIENT_IP ? undefined : argText(message.arg(condition.arg));
      if (!condition.test(value, address)) {
        matches = false;
        break;
      }
    }
    if (!matches) continue;
    let key = `${rule.name}:`;
    for (let i = 0; i < rule.key.length; i++) {
      const arg = rule.key[i] as string;
      let value: string | undefined;
      if (arg === CLIENT_IP) {
        if (address !== undefined) ip ??= clientKey(address, ipv6Prefix);
        value = ip;
      } else {
        value = argText(message.arg(arg));
      }
      if (value === undefined) {
        key = "";
        break;
      }
      key += i === 0 ? value : SEPARATOR + value;
    }
    if (key === "") continue;
    applied.rules.push(rule);
    applied.requests.push({ key, limit: rule.limit, enforce: !rule.shadow });
  }
  return applied;
}

const ALLOWED = TypedValue.int32(0);
const DENIED = TypedValue.int32(100);
const ALLOW_RULE = TypedValue.string("allow");
const DENY_RULE = TypedValue.string("deny");

/**
 * The `check-rate` handler with a rules file (`SPOA_RULES_FILE`): `deny` CIDRs get ip_score 100,
 * `allow` CIDRs ip_score 0 (no state touched); otherwise every applicable rule is decided in one
 * all-or-nothing store call. Sets in scope `sess`: `ip_score` (0/100), `retry_after` (the
 * largest among denying rules, whole seconds), `remaining` and `limit` (of the tightest
 * enforcing rule), and `rule` (the denying rule, or the tightest when allowed). `rules()` gives
 * the rule set in force now, read once per message: a reload never splits a message.
 */
export function rulesHandler(options: {
  limiter: AppLimiter;
  metrics: AppMetrics;
  ruleMetrics: RuleMetrics;
  ipv6Prefix: number;
  rules: () => RuleSet;
}): MessageHandler {
  const { limiter, metrics, ruleMetrics, ipv6Prefix, rules } = options;
  // The ACK's values, made once: `remaining` and `limit` up to 4095, `retry_after` up to an
  // hour, and each rule's name (a reload adds its new names).
  const counts = integers(4096);
  const seconds = integers(3600);
  const names = new Map<string, TypedValue>();
  const nameValue = (name: string): TypedValue => {
    let value = names.get(name);
    if (value === undefined) {
      value = TypedValue.string(name);
      names.set(name, value);
    }
    return value;
  };

  const answer = (message: MessageContext, applied: Applied, result: GcraMultiDecision): void => {
    metrics.decided(result.source, result.allowed);
    let denying = -1;
    let tightest = -1;
    let retryAfter = 0;
    for (let i = 0; i < applied.rules.length; i++) {
      const rule = applied.rules[i] as Rule;
      const decision = result.decisions[i];
      if (decision === undefined) continue;
      ruleMetrics.decided(rule, decision.allowed, message.log);
      if (rule.shadow) continue;
      if (!decision.allowed && decision.retryAfter >= retryAfter) {
        retryAfter = decision.retryAfter;
        denying = i;
      }
      if (tightest < 0 || decision.remaining < (result.decisions[tightest]?.remaining ?? 0)) tightest = i;
    }
    message.setVar(Scope.SESS, "ip_score", result.allowed ? ALLOWED : DENIED);
    message.setVar(Scope.SESS, "retry_after", seconds(Math.ceil(retryAfter / 1_000_000)));
    const named = result.allowed ? tightest : denying;
    if (tightest >= 0) {
      const decision = result.decisions[tightest];
      message.setVar(Scope.SESS, "remaining", counts(decision?.remaining ?? 0));
      message.setVar(Scope.SESS, "limit", counts(decision?.limit ?? 0));
    }
    if (named >= 0) message.setVar(Scope.SESS, "rule", nameValue((applied.rules[named] as Rule).name));
    if (message.log.isLevelEnabled("debug")) {
      message.log.debug(
        {
          stream: message.streamId,
          frame: message.frameId,
          outcome: result.allowed ? "allowed" : "denied",
          source: result.source,
          rule: named >= 0 ? (applied.rules[named] as Rule).name : undefined,
          rules: applied.rules.map((rule, i) => ({
            rule: rule.name,
            shadow: rule.shadow,
            key: applied.requests[i]?.key,
            allowed: result.decisions[i]?.allowed,
          })),
          retryAfterMs: retryAfter / 1000,
        },
        "decision",
      );
    }
  };

  return (message) => {
    const set = rules();
    const address = clientAddress(message);
    const plain = address === undefined ? undefined : unmapped(address);
    if (plain !== undefined && set.deny.length > 0 && inAny(set.deny, plain)) {
      ruleMetrics.listed("deny");
      message.setVar(Scope.SESS, "ip_score", DENIED);
      message.setVar(Scope.SESS, "rule", DENY_RULE);
      return;
    }
    if (plain !== undefined && set.allow.length > 0 && inAny(set.allow, plain)) {
      ruleMetrics.listed("allow");
      message.setVar(Scope.SESS, "ip_score", ALLOWED);
      message.setVar(Scope.SESS, "rule", ALLOW_RULE);
      return;
    }
    const applied = applicable(set, message, address, ipv6Prefix);
    if (applied.requests.length === 0) {
      message.setVar(Scope.SESS, "ip_score", ALLOWED);
      return;
    }
    const result = limiter.decideAll(applied.requests);
    if (result instanceof Promise) return result.then((r) => answer(message, applied, r));
    answer(message, applied, result);
    return undefined;
  };
}
