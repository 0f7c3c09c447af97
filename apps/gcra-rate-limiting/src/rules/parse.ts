import { createRequire } from "node:module";
import { GcraLimit } from "@spoekit/gcra";
import type * as Yaml from "yaml";
import type { Node, Pair, YAMLMap } from "yaml";
import { type Cidr, inAny, parseCidr, unmapped } from "./cidr.ts";

/**
 * The rules file (`SPOA_RULES_FILE`): YAML, or JSON (which is YAML too). See the README for the
 * format; this module turns the text into a {@link RuleSet} or a {@link RulesError} naming the
 * file, the line and the problem.
 */

/** The argument name that stands for the client address (Forwarded → X-Forwarded-For → source). */
export const CLIENT_IP = "client_ip";

/** A rules file that cannot be used; the message is one line: `file:line: problem`. */
export class RulesError extends Error {
  override readonly name = "RulesError";
  /** Stable code of every rules-file error. */
  readonly code = "RULES_INVALID";
  readonly file: string;
  readonly line: number;
  constructor(file: string, line: number, problem: string, options?: { cause?: unknown }) {
    super(`${file}:${line}: ${problem.split("\n")[0]}`, options);
    this.file = file;
    this.line = line;
  }
}

/** One test of a rule's `match`: on a named argument (string form, `undefined` when absent or NULL), or on the client address. */
export interface Condition {
  readonly arg: string;
  test(value: string | undefined, address: Uint8Array | undefined): boolean;
}

/** One rule, compiled. */
export interface Rule {
  readonly name: string;
  /** `name:`, which begins the rule's rate-limit keys. */
  readonly keyPrefix: string;
  /** Every condition must hold for the rule to apply (none: every request). */
  readonly conditions: readonly Condition[];
  /** Argument names (or {@link CLIENT_IP}) whose values make the rate-limit key. */
  readonly key: readonly string[];
  readonly limit: GcraLimit;
  /** Evaluated, counted and logged, never denies. */
  readonly shadow: boolean;
}

/** A whole rules file, compiled. */
export interface RuleSet {
  /** Never limited: ip_score 0, no state touched. */
  readonly allow: readonly Cidr[];
  /** Always denied: ip_score 100. */
  readonly deny: readonly Cidr[];
  readonly rules: readonly Rule[];
}

const NAME = /^[A-Za-z0-9_.-]{1,64}$/;
const RATE = /^\s*(\d+(?:\.\d+)?)\s*\/\s*(s|m|h)\s*$/;
const PERIOD_MS: Record<string, number> = { s: 1000, m: 60_000, h: 3_600_000 };

/** The YAML parser, loaded on first use: an agent without a rules file never pays for it at start. */
let yaml: typeof Yaml | undefined;

/** Parses and validates the text of a rules file; `file` names it in errors. */
export function parseRules(text: string, file: string): RuleSet {
  yaml ??= createRequire(import.meta.url)("yaml") as typeof Yaml;
  const { isMap, isScalar, isSeq, LineCounter, parseDocument } = yaml;
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, uniqueKeys: true, prettyErrors: false });
  const first = doc.errors[0];
  if (first !== undefined) {
    throw new RulesError(file, first.linePos?.[0].line ?? 1, `not valid YAML or JSON: ${first.message}`);
  }
  const lineOf = (node: unknown): number => {
    const range = (node as Node | null)?.range;
    return range ? lines.linePos(range[0]).line : 1;
  };
  const fail = (node: unknown, problem: string): never => {
    throw new RulesError(file, lineOf(node), problem);
  };

  const entries = (node: unknown, what: string, known: readonly string[]): Map<string, Pair> => {
    if (!isMap(node)) fail(node, `${what} must be a mapping`);
    const map = new Map<string, Pair>();
    for (const pair of (node as YAMLMap).items) {
      const name = isScalar(pair.key) ? String(pair.key.value) : "";
      if (!known.includes(name))
        fail(pair.key, `unknown field ${JSON.stringify(name)} in ${what} (expected ${known.join(", ")})`);
      map.set(name, pair);
    }
    return map;
  };
  const scalar = (node: unknown, what: string): string | number | boolean => {
    if (!isScalar(node) || node.value === null || typeof node.value === "object") {
      return fail(node, `${what} must be a string, number or boolean`);
    }
    return node.value as string | number | boolean;
  };
  const list = (node: unknown, what: string): unknown[] => {
    if (!isSeq(node) || node.items.length === 0) fail(node, `${what} must be a non-empty list`);
    return (node as { items: unknown[] }).items;
  };
  const cidrs = (node: unknown, what: string): Cidr[] =>
    list(node, what).map((item) => {
      const cidr = parseCidr(String(scalar(item, `an entry of ${what}`)));
      return (
        cidr ??
        fail(
          item,
          `${what}: ${JSON.stringify(String((item as { value?: unknown }).value))} is not an address or CIDR block`,
        )
      );
    });

  const condition = (pair: Pair): Condition => {
    const arg = isScalar(pair.key) ? String(pair.key.value) : "";
    if (!NAME.test(arg)) fail(pair.key, `match: ${JSON.stringify(arg)} is not an argument name`);
    const node = pair.value;
    if (!isMap(node)) {
      if (arg === CLIENT_IP) fail(node, "match: client_ip takes {cidr: [...]} or {present: bool}");
      const expected = String(scalar(node, `match: ${arg}`));
      return { arg, test: (value) => value === expected };
    }
    const known = arg === CLIENT_IP ? ["cidr", "present"] : ["prefix", "suffix", "in", "present"];
    const ops = entries(node, `match: ${arg}`, known);
    if (ops.size !== 1) fail(node, `match: ${arg} takes exactly one of ${known.join(", ")}`);
    const [op, { value }] = [...ops][0] as [string, Pair];
    switch (op) {
      case "present": {
        const want = scalar(value, `match: ${arg}.present`);
        if (typeof want !== "boolean") fail(value, `match: ${arg}.present must be true or false`);
        return arg === CLIENT_IP
          ? { arg, test: (_, address) => (address !== undefined) === want }
          : { arg, test: (v) => (v !== undefined) === want };
      }
      case "cidr": {
        const blocks = cidrs(value, `match: ${arg}.cidr`);
        return { arg, test: (_, address) => address !== undefined && inAny(blocks, unmapped(address)) };
      }
      case "in": {
        const set = new Set(
          list(value, `match: ${arg}.in`).map((item) => String(scalar(item, `match: ${arg}.in`))),
        );
        return { arg, test: (v) => v !== undefined && set.has(v) };
      }
      default: {
        const text = String(scalar(value, `match: ${arg}.${op}`));
        return op === "prefix"
          ? { arg, test: (v) => v?.startsWith(text) === true }
          : { arg, test: (v) => v?.endsWith(text) === true };
      }
    }
  };

  const rule = (node: unknown, names: Set<string>): Rule => {
    const fields = entries(node, "a rule", ["name", "match", "key", "rate", "burst", "shadow"]);
    const need = (field: string): Pair => fields.get(field) ?? fail(node, `a rule needs a ${field}`);
    const nameNode = need("name").value;
    const name = String(scalar(nameNode, "name"));
    if (!NAME.test(name))
      fail(nameNode, `rule name ${JSON.stringify(name)}: use 1 to 64 of A-Z a-z 0-9 _ . -`);
    if (name === "allow" || name === "deny")
      fail(nameNode, `rule name ${name} is reserved for the CIDR list`);
    if (names.has(name)) fail(nameNode, `rule name ${JSON.stringify(name)} is used twice`);
    names.add(name);
    const matchNode = fields.get("match")?.value;
    const compiled: Condition[] = [];
    if (matchNode !== undefined) {
      if (!isMap(matchNode)) fail(matchNode, `match of rule ${name} must be a mapping`);
      for (const pair of (matchNode as YAMLMap).items) compiled.push(condition(pair as Pair));
    }
    const keyNode = need("key").value;
    const key = list(keyNode, `key of rule ${name}`).map((item) => {
      const arg = String(scalar(item, `key of rule ${name}`));
      return NAME.test(arg)
        ? arg
        : fail(item, `key of rule ${name}: ${JSON.stringify(arg)} is not an argument name`);
    });
    const rateNode = need("rate").value;
    const rate = RATE.exec(String(scalar(rateNode, "rate")));
    if (!rate) fail(rateNode, `rate of rule ${name} must look like 100/s, 5/m or 1000/h`);
    const burstNode = need("burst").value;
    const burst = scalar(burstNode, "burst");
    if (typeof burst !== "number" || !Number.isSafeInteger(burst) || burst < 1) {
      fail(burstNode, `burst of rule ${name} must be a whole number ≥ 1`);
    }
    const shadowNode = fields.get("shadow")?.value;
    const shadow = shadowNode === undefined ? false : scalar(shadowNode, "shadow");
    if (typeof shadow !== "boolean") fail(shadowNode, `shadow of rule ${name} must be true or false`);
    let limit: GcraLimit;
    try {
      limit = new GcraLimit({
        rate: Number(rate?.[1]),
        periodMs: PERIOD_MS[rate?.[2] ?? "s"] ?? 1000,
        burst: burst as number,
      });
    } catch (error) {
      return fail(rateNode, `rate of rule ${name}: ${(error as Error).message}`);
    }
    return { name, keyPrefix: `${name}:`, conditions: compiled, key, limit, shadow: shadow as boolean };
  };

  const root = doc.contents;
  if (root === null) fail(root, "the file is empty: expected allow, deny and rules");
  const top = entries(root, "the file", ["allow", "deny", "rules"]);
  const names = new Set<string>();
  const rulesNode = top.get("rules")?.value;
  const rules = rulesNode === undefined ? [] : list(rulesNode, "rules").map((item) => rule(item, names));
  const allowNode = top.get("allow")?.value;
  const denyNode = top.get("deny")?.value;
  return {
    allow: allowNode === undefined ? [] : cidrs(allowNode, "allow"),
    deny: denyNode === undefined ? [] : cidrs(denyNode, "deny"),
    rules,
  };
}
