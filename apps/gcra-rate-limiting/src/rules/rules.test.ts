import {
  mkdirSync,
  mkdtempSync,
  readFileSync,
  renameSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type GcraRequest, MemoryStore } from "@spoekit/gcra";
import { type MessageContext, TypedValue } from "@spoekit/spoe-agent";
import { pino } from "pino";
import { afterAll, describe, expect, it } from "vitest";
import type { AppLimiter } from "../limiter.ts";
import { createMetrics } from "../metrics.ts";
import { parseCidr } from "./cidr.ts";
import { applicable, rulesHandler } from "./handler.ts";
import { createRuleMetrics } from "./metrics.ts";
import { parseRules, type RuleSet, RulesError } from "./parse.ts";
import { RulesFile } from "./source.ts";

/** The example. */
const EXAMPLE = `allow: [192.0.2.0/24]              # never limited
deny: [198.51.100.0/24]            # always denied
rules:
  - name: login
    match: { path: { prefix: /login }, method: POST }
    key: [client_ip]
    rate: 5/m                      # N/s, N/m, N/h
    burst: 3                       # requests allowed at once from an idle key
  - name: tenant
    match: { tenant: { present: true } }
    key: [tenant]
    rate: 1000/s
    burst: 200
    shadow: true                   # evaluated, counted, logged; never denies
  - name: per-ip
    key: [client_ip]
    rate: 100/s
    burst: 20
`;

type Args = Record<string, TypedValue>;

/** A message as the handler sees it: arguments by name (absent: NULL, as HAProxy sends them), and the variables set. */
function message(args: Args) {
  const vars: Record<string, string | number> = {};
  const context = {
    arg: (name: string) => args[name] ?? TypedValue.null,
    setVar: (_scope: number, name: string, value: TypedValue) => {
      vars[name] =
        "value" in value ? (typeof value.value === "string" ? value.value : Number(value.value)) : 0;
    },
    log: pino({ level: "silent" }),
    streamId: 1,
    frameId: 1,
  };
  return { context: context as unknown as MessageContext, vars };
}

const src = (ip: string): Args => ({ ip_src: ip.includes(":") ? TypedValue.ipv6(ip) : TypedValue.ipv4(ip) });

const errorOf = (text: string): string => {
  try {
    parseRules(text, "/etc/rules.yaml");
  } catch (error) {
    expect(error).toBeInstanceOf(RulesError);
    expect((error as RulesError).code).toBe("RULES_INVALID");
    return (error as Error).message;
  }
  throw new Error("no error");
};

describe("parseRules", () => {
  it("compiles the example: lists, three rules, rates per second, minute and hour", () => {
    const set = parseRules(EXAMPLE, "rules.yaml");
    expect(set.allow).toHaveLength(1);
    expect(set.deny).toHaveLength(1);
    expect(set.rules.map((r) => [r.name, r.limit.burst, r.limit.emissionIntervalUs, r.shadow])).toEqual([
      ["login", 3, 12_000_000, false],
      ["tenant", 200, 1_000, true],
      ["per-ip", 20, 10_000, false],
    ]);
    expect(
      parseRules("rules: [{name: a, key: [x], rate: 2/h, burst: 1}]", "f").rules[0]?.limit.emissionIntervalUs,
    ).toBe(1_800_000_000);
  });

  it("accepts the deployment's example file, the README's example", () => {
    const path = join(import.meta.dirname, "../../../../deploy/base/agent/rules.yaml");
    const text = readFileSync(path, "utf8");
    expect(parseRules(text, path).rules.map((rule) => rule.name)).toEqual(["login", "tenant", "per-ip"]);
    const readme = readFileSync(join(import.meta.dirname, "../../README.md"), "utf8");
    // The formatter aligns comments its own way.
    const spaced = (t: string) => t.replace(/ +#/g, " #");
    expect(spaced(text)).toContain(spaced(EXAMPLE));
    expect(spaced(readme)).toContain(spaced(EXAMPLE));
  });

  it("accepts JSON", () => {
    const json = JSON.stringify({
      deny: ["2001:db8::/32"],
      rules: [{ name: "a", key: ["client_ip"], rate: "1/s", burst: 2 }],
    });
    expect(parseRules(json, "rules.json").rules[0]?.name).toBe("a");
  });

  it("names file:line and the problem, on one line", () => {
    const cases: [string, string][] = [
      [
        "rules:\n  - name: a\n    key: [x]\n    rate: 5 per minute\n    burst: 1\n",
        "/etc/rules.yaml:4: rate of rule a must look like",
      ],
      [
        "rules:\n  - name: a\n    key: [x]\n    rate: 5/s\n    burst: 0\n",
        "/etc/rules.yaml:5: burst of rule a",
      ],
      ["rules:\n  - name: a\n    key: [x]\n    rate: 5/s\n", "/etc/rules.yaml:2: a rule needs a burst"],
      [
        "rules:\n  - {name: a, key: [x], rate: 1/s, burst: 1}\n  - {name: a, key: [x], rate: 1/s, burst: 1}\n",
        ':3: rule name "a" is used twice',
      ],
      ["allow: [10.0.0.0/33]\n", ':1: allow: "10.0.0.0/33" is not an address or CIDR block'],
      [
        "rules:\n  - name: a\n    match: {path: {glob: x}}\n    key: [x]\n    rate: 1/s\n    burst: 1\n",
        ':3: unknown field "glob" in match: path',
      ],
      [
        "rules:\n  - name: a\n    match: {path: {prefix: a, suffix: b}}\n    key: [x]\n    rate: 1/s\n    burst: 1\n",
        ":3: match: path takes exactly one of",
      ],
      [
        "rules:\n  - name: a\n    match: {client_ip: {prefix: '10.'}}\n    key: [x]\n    rate: 1/s\n    burst: 1\n",
        ':3: unknown field "prefix" in match: client_ip',
      ],
      [
        "rules:\n  - name: a\n    key: []\n    rate: 1/s\n    burst: 1\n",
        ":3: key of rule a must be a non-empty list",
      ],
      [
        "rules:\n  - name: a\n    key: [x]\n    rate: 1/s\n    burst: 1\n    shadow: yes please\n",
        ":6: shadow of rule a must be true or false",
      ],
      [
        "rules:\n  - name: allow\n    key: [x]\n    rate: 1/s\n    burst: 1\n",
        ":2: rule name allow is reserved",
      ],
      ["limits: []\n", ':1: unknown field "limits" in the file'],
      ["rules: [\n", "/etc/rules.yaml:"],
      ["", ":1: the file is empty"],
    ];
    for (const [text, expected] of cases) {
      const error = errorOf(text);
      expect(error, text).toContain(expected);
      expect(error.includes("\n"), error).toBe(false);
    }
  });
});

describe("matchers and keys", () => {
  const rulesOf = (match: string, key = "[client_ip]") =>
    parseRules(`rules:\n  - {name: r, match: ${match}, key: ${key}, rate: 1/s, burst: 1}\n`, "f");
  const applies = (set: RuleSet, args: Args) => {
    const { context } = message(args);
    const address =
      args.ip_src?.type === undefined ? undefined : (args.ip_src as { value: Uint8Array }).value;
    return applicable(set, context, address, 64).map((r) => r.key);
  };

  it("plain value: equality with the argument's text (strings, integers)", () => {
    const set = rulesOf("{method: POST, port: 443}");
    expect(
      applies(set, { ...src("10.0.0.1"), method: TypedValue.string("POST"), port: TypedValue.int32(443) }),
    ).toEqual(["r:10.0.0.1"]);
    expect(
      applies(set, { ...src("10.0.0.1"), method: TypedValue.string("GET"), port: TypedValue.int32(443) }),
    ).toEqual([]);
    expect(applies(set, { ...src("10.0.0.1"), port: TypedValue.int32(443) })).toEqual([]);
  });

  it("prefix, suffix, in", () => {
    expect(
      applies(rulesOf("{path: {prefix: /login}}"), {
        ...src("10.0.0.1"),
        path: TypedValue.string("/login/x"),
      }),
    ).toHaveLength(1);
    expect(
      applies(rulesOf("{path: {prefix: /login}}"), { ...src("10.0.0.1"), path: TypedValue.string("/log") }),
    ).toHaveLength(0);
    expect(
      applies(rulesOf("{path: {suffix: .php}}"), { ...src("10.0.0.1"), path: TypedValue.string("/a.php") }),
    ).toHaveLength(1);
    expect(
      applies(rulesOf("{path: {suffix: .php}}"), { ...src("10.0.0.1"), path: TypedValue.string("/a.html") }),
    ).toHaveLength(0);
    const methods = rulesOf("{method: {in: [PUT, DELETE]}}");
    expect(applies(methods, { ...src("10.0.0.1"), method: TypedValue.string("DELETE") })).toHaveLength(1);
    expect(applies(methods, { ...src("10.0.0.1"), method: TypedValue.string("GET") })).toHaveLength(0);
    expect(applies(methods, src("10.0.0.1"))).toHaveLength(0);
  });

  it("present: absent and NULL count as not present; an empty string is present", () => {
    const present = rulesOf("{tenant: {present: true}}", "[tenant]");
    const absent = rulesOf("{tenant: {present: false}}");
    expect(applies(present, { tenant: TypedValue.string("acme") })).toEqual(["r:acme"]);
    expect(applies(present, { tenant: TypedValue.null })).toEqual([]);
    expect(applies(present, {})).toEqual([]);
    expect(applies(present, { tenant: TypedValue.string("") })).toEqual(["r:"]);
    expect(applies(absent, src("10.0.0.1"))).toEqual(["r:10.0.0.1"]);
    expect(applies(absent, { ...src("10.0.0.1"), tenant: TypedValue.string("acme") })).toEqual([]);
  });

  it("client_ip: cidr (IPv4, IPv6, IPv4-mapped) and present", () => {
    const cidr = rulesOf("{client_ip: {cidr: [10.0.0.0/8, '2001:db8::/32']}}");
    expect(applies(cidr, src("10.9.8.7"))).toEqual(["r:10.9.8.7"]);
    expect(applies(cidr, src("::ffff:10.9.8.7"))).toEqual(["r:10.9.8.7"]);
    expect(applies(cidr, src("2001:db8:1:2::5"))).toEqual(["r:2001:db8:1:2::/64"]);
    expect(applies(cidr, src("11.0.0.1"))).toEqual([]);
    expect(
      applies(rulesOf("{client_ip: {present: false}}", "[tenant]"), { tenant: TypedValue.string("t") }),
    ).toEqual(["r:t"]);
  });

  it("keys of several arguments; a request lacking a key argument is not counted by the rule", () => {
    const set = parseRules("rules:\n  - {name: r, key: [tenant, client_ip], rate: 1/s, burst: 1}\n", "f");
    expect(applies(set, { ...src("10.0.0.1"), tenant: TypedValue.string("acme") })).toEqual([
      "r:acme\u001f10.0.0.1",
    ]);
    expect(applies(set, src("10.0.0.1"))).toEqual([]);
    expect(applies(set, { tenant: TypedValue.string("acme") })).toEqual([]);
  });

  it("parses CIDR blocks and single addresses", () => {
    expect(parseCidr("10.1.2.3")).toMatchObject({ prefix: 32 });
    expect(parseCidr("::1")).toMatchObject({ prefix: 128 });
    expect(parseCidr("10.0.0.0/8/1")).toBeUndefined();
    expect(parseCidr("nope/8")).toBeUndefined();
  });
});

describe("the rules handler", () => {
  function setup(text: string) {
    let now = 0;
    const memory = new MemoryStore({ clock: () => now });
    const limiter = {
      decideAll: (requests: readonly GcraRequest[]) => memory.decideAll(requests),
    } as unknown as AppLimiter;
    const metrics = createMetrics("embedded");
    const ruleMetrics = createRuleMetrics(metrics.registry);
    const set = parseRules(text, "f");
    const handler = rulesHandler({ limiter, metrics, ruleMetrics, ipv6Prefix: 64, rules: () => set });
    const send = (args: Args) => {
      const { context, vars } = message(args);
      void handler(context);
      return vars;
    };
    const count = async (rule: string, outcome: string) => {
      const json = await metrics.registry.getMetricsAsJSON();
      const metric = json.find((m) => m.name === "gcra_rule_decisions_total");
      return metric?.values.find((v) => v.labels.rule === rule && v.labels.outcome === outcome)?.value ?? 0;
    };
    return { send, count, advance: (us: number) => (now += us), memory };
  }

  it("allow list: ip_score 0, no state; deny list: ip_score 100", async () => {
    const { send, count, memory } = setup(EXAMPLE);
    for (let i = 0; i < 30; i++) expect(send(src("192.0.2.9"))).toEqual({ ip_score: 0, rule: "allow" });
    expect(memory.size).toBe(0);
    expect(send(src("198.51.100.1"))).toEqual({ ip_score: 100, rule: "deny" });
    expect(await count("allow", "allowed")).toBe(30);
    expect(await count("deny", "denied")).toBe(1);
  });

  it("per-route rule: denies with its name and retry_after; the other rules consume nothing", async () => {
    const { send, count } = setup(EXAMPLE);
    const login = {
      ...src("10.0.0.1"),
      path: TypedValue.string("/login"),
      method: TypedValue.string("POST"),
    };
    const acks = [];
    for (let i = 0; i < 4; i++) acks.push(send(login));
    expect(acks).toEqual([
      { ip_score: 0, retry_after: 0, remaining: 2, limit: 3, rule: "login" },
      { ip_score: 0, retry_after: 0, remaining: 1, limit: 3, rule: "login" },
      { ip_score: 0, retry_after: 0, remaining: 0, limit: 3, rule: "login" },
      { ip_score: 100, retry_after: 12, remaining: 0, limit: 3, rule: "login" },
    ]);
    // per-ip was consumed 3 times (not 4): 17 of 20 left.
    expect(send(src("10.0.0.1"))).toEqual({
      ip_score: 0,
      retry_after: 0,
      remaining: 16,
      limit: 20,
      rule: "per-ip",
    });
    expect(await count("login", "denied")).toBe(1);
    expect(await count("per-ip", "allowed")).toBe(5);
  });

  it("shadow rule: counted and reported, never denies; consumed only when the request passes", async () => {
    const { send, count } = setup(
      "rules:\n  - {name: tenant, key: [tenant], rate: 1/m, burst: 1, shadow: true}\n  - {name: per-ip, key: [client_ip], rate: 1/m, burst: 2}\n",
    );
    const request = { ...src("10.0.0.2"), tenant: TypedValue.string("acme") };
    expect(send(request)).toMatchObject({ ip_score: 0, rule: "per-ip", remaining: 1 });
    expect(send(request)).toMatchObject({ ip_score: 0, rule: "per-ip", remaining: 0 });
    expect(send(request)).toMatchObject({ ip_score: 100, rule: "per-ip" });
    expect(await count("tenant", "allowed")).toBe(1);
    expect(await count("tenant", "shadow_denied")).toBe(2);
    // Another client of the same tenant: the shadow rule only counts (its state was consumed once).
    expect(send({ ...src("10.0.0.3"), tenant: TypedValue.string("acme") })).toMatchObject({ ip_score: 0 });
    expect(await count("tenant", "shadow_denied")).toBe(3);
  });

  it("the tightest enforcing rule gives remaining, limit and rule; retry_after is the largest among denying rules", () => {
    const { send } = setup(
      "rules:\n  - {name: wide, key: [client_ip], rate: 1/s, burst: 10}\n  - {name: narrow, key: [client_ip], rate: 1/h, burst: 2}\n  - {name: other, key: [client_ip], rate: 1/m, burst: 2}\n",
    );
    expect(send(src("10.0.0.4"))).toEqual({
      ip_score: 0,
      retry_after: 0,
      remaining: 1,
      limit: 2,
      rule: "narrow",
    });
    send(src("10.0.0.4"));
    expect(send(src("10.0.0.4"))).toEqual({
      ip_score: 100,
      retry_after: 3600,
      remaining: 0,
      limit: 2,
      rule: "narrow",
    });
  });

  it("no applicable rule: ip_score 0 and nothing else", () => {
    const { send } = setup("rules:\n  - {name: t, key: [tenant], rate: 1/s, burst: 1}\n");
    expect(send(src("10.0.0.5"))).toEqual({ ip_score: 0 });
  });
});

describe("RulesFile: reload", () => {
  const dir = mkdtempSync(join(tmpdir(), "rules-"));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const one = (rate: string, name = "per-ip") =>
    `rules:\n  - {name: ${name}, key: [client_ip], rate: ${rate}, burst: 5}\n`;

  it("applies a valid change, keeps unchanged rules' limits, refuses an invalid file and keeps the old rules", () => {
    const path = join(dir, "plain.yaml");
    writeFileSync(path, `${one("1/s")}  - {name: other, key: [client_ip], rate: 1/m, burst: 1}\n`);
    const file = new RulesFile(path);
    const events: string[] = [];
    file.on("applied", () => events.push("applied"));
    file.on("refused", (error) => events.push(error.message));
    const before = file.current.rules[0]?.limit;
    expect(file.reload()).toBe("unchanged");
    writeFileSync(path, `${one("1/s")}  - {name: other, key: [client_ip], rate: 2/m, burst: 1}\n`);
    expect(file.reload()).toBe("applied");
    expect(file.current.rules[0]?.limit).toBe(before);
    expect(file.current.rules[1]?.limit.emissionIntervalUs).toBe(30_000_000);
    writeFileSync(path, "rules:\n  - {name: x, key: [client_ip], rate: fast, burst: 5}\n");
    expect(file.reload()).toBe("refused");
    expect(file.reload()).toBe("unchanged");
    expect(file.current.rules.map((r) => r.name)).toEqual(["per-ip", "other"]);
    expect(events).toEqual(["applied", `${path}:2: rate of rule x must look like 100/s, 5/m or 1000/h`]);
  });

  it("follows a ConfigMap-style swap of the ..data symlink, and is told by the file system", async () => {
    // The kubelet's layout: rules.yaml -> ..data/rules.yaml, ..data -> ..<timestamp>/
    const volume = join(dir, "volume");
    mkdirSync(join(volume, "..v1"), { recursive: true });
    writeFileSync(join(volume, "..v1", "rules.yaml"), one("1/s"));
    symlinkSync("..v1", join(volume, "..data"));
    symlinkSync("..data/rules.yaml", join(volume, "rules.yaml"));
    const file = new RulesFile(join(volume, "rules.yaml"));
    file.watch();
    try {
      const applied = new Promise<RuleSet>((resolve) => file.once("applied", resolve));
      mkdirSync(join(volume, "..v2"));
      writeFileSync(join(volume, "..v2", "rules.yaml"), one("10/s", "swapped"));
      symlinkSync("..v2", join(volume, "..data_tmp"));
      renameSync(join(volume, "..data_tmp"), join(volume, "..data"));
      expect((await applied).rules[0]?.name).toBe("swapped");
      expect(file.current.rules[0]?.limit.emissionIntervalUs).toBe(100_000);
    } finally {
      file.close();
    }
  });
});
