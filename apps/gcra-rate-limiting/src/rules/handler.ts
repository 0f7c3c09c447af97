import type { GcraDecision, GcraLimit, GcraMultiDecision, GcraRequest } from "@spoekit/gcra";
import { DataType, type MessageContext, type MessageHandler, Scope, TypedValue } from "@spoekit/spoe-agent";
import { formatIp } from "@spoekit/spop-codec";
import { clientKey } from "../client-ip.ts";
import { clientAddress, integers } from "../handler.ts";
import type { AppLimiter } from "../limiter.ts";
import type { AppMetrics } from "../metrics.ts";
import { inAny, unmapped } from "./cidr.ts";
import type { RuleCounters, RuleMetrics } from "./metrics.ts";
import { CLIENT_IP, type Condition, type Rule, type RuleSet } from "./parse.ts";

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

/** The request of one applicable rule to the store: the rule's key and limit, and which rule it is. */
export class RuleRequest implements GcraRequest {
  readonly key: string;
  readonly limit: GcraLimit;
  readonly enforce: boolean;
  /** The rule's position in its set's `rules`. */
  readonly index: number;

  constructor(rule: Rule, key: string, index: number) {
    this.key = key;
    this.limit = rule.limit;
    this.enforce = !rule.shadow;
    this.index = index;
  }
}

/**
 * The requests of the rules of `set` that apply to `message`, in the set's order, each with its
 * key (a rule whose key argument is missing does not count).
 */
export function applicable(
  set: RuleSet,
  message: Pick<MessageContext, "arg">,
  address: Uint8Array | undefined,
  ipv6Prefix: number,
): RuleRequest[] {
  const requests: RuleRequest[] = [];
  let ip: string | undefined;
  const rules = set.rules;
  next: for (let r = 0; r < rules.length; r++) {
    const rule = rules[r] as Rule;
    const conditions = rule.conditions;
    for (let c = 0; c < conditions.length; c++) {
      const condition = conditions[c] as Condition;
      const value = condition.arg === CLIENT_IP ? undefined : argText(message.arg(condition.arg));
      if (!condition.test(value, address)) continue next;
    }
    const args = rule.key;
    let key = rule.keyPrefix;
    for (let i = 0; i < args.length; i++) {
      const arg = args[i] as string;
      let value: string | undefined;
      if (arg !== CLIENT_IP) value = argText(message.arg(arg));
      else if (address !== undefined) value = ip ??= clientKey(address, ipv6Prefix);
      if (value === undefined) continue next;
      key = i === 0 ? key + value : key + SEPARATOR + value;
    }
    requests.push(new RuleRequest(rule, key, r));
  }
  return requests;
}

/** What the answer needs of each rule of a set, made once per set: its name as a value, its counters. */
interface RuleAnswer {
  readonly rule: Rule;
  readonly name: TypedValue;
  readonly counters: RuleCounters;
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
  // What the answer needs of each rule, made when a set comes into force (not per message).
  let current: RuleSet | undefined;
  let answers: readonly RuleAnswer[] = [];
  const answersOf = (set: RuleSet): readonly RuleAnswer[] => {
    if (set !== current) {
      current = set;
      answers = set.rules.map((rule) => ({
        rule,
        name: nameValue(rule.name),
        counters: ruleMetrics.counters(rule),
      }));
    }
    return answers;
  };

  const answer = (
    message: MessageContext,
    requests: readonly RuleRequest[],
    answers: readonly RuleAnswer[],
    result: GcraMultiDecision,
  ): void => {
    metrics.decided(result.source, result.allowed);
    const log = message.log;
    let denying = -1;
    let tightest = -1;
    let tightestRemaining = 0;
    let retryAfter = 0;
    for (let i = 0; i < requests.length; i++) {
      const decision = result.decisions[i];
      if (decision === undefined) continue;
      const request = requests[i] as RuleRequest;
      (answers[request.index] as RuleAnswer).counters.decided(decision.allowed, log);
      if (!request.enforce) continue;
      if (!decision.allowed && decision.retryAfter >= retryAfter) {
        retryAfter = decision.retryAfter;
        denying = i;
      }
      if (tightest < 0 || decision.remaining < tightestRemaining) {
        tightest = i;
        tightestRemaining = decision.remaining;
      }
    }
    message.setVar(Scope.SESS, "ip_score", result.allowed ? ALLOWED : DENIED);
    message.setVar(Scope.SESS, "retry_after", seconds(Math.ceil(retryAfter / 1_000_000)));
    const named = result.allowed ? tightest : denying;
    if (tightest >= 0) {
      const decision = result.decisions[tightest] as GcraDecision;
      message.setVar(Scope.SESS, "remaining", counts(decision.remaining));
      message.setVar(Scope.SESS, "limit", counts(decision.limit));
    }
    const namedRule = named < 0 ? undefined : answers[(requests[named] as RuleRequest).index];
    if (namedRule !== undefined) message.setVar(Scope.SESS, "rule", namedRule.name);
    if (log.isLevelEnabled("debug")) {
      log.debug(
        {
          stream: message.streamId,
          frame: message.frameId,
          outcome: result.allowed ? "allowed" : "denied",
          source: result.source,
          rule: namedRule?.rule.name,
          rules: requests.map((request, i) => {
            const { rule } = answers[request.index] as RuleAnswer;
            return {
              rule: rule.name,
              shadow: rule.shadow,
              key: request.key,
              allowed: result.decisions[i]?.allowed,
            };
          }),
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
    const requests = applicable(set, message, address, ipv6Prefix);
    if (requests.length === 0) {
      message.setVar(Scope.SESS, "ip_score", ALLOWED);
      return;
    }
    const ruleAnswers = answersOf(set);
    const result = limiter.decideAll(requests);
    if (result instanceof Promise) return result.then((r) => answer(message, requests, ruleAnswers, r));
    answer(message, requests, ruleAnswers, result);
    return undefined;
  };
}
