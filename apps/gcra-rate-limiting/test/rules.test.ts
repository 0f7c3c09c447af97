/**
 * The app with SPOA_RULES_FILE, spoken to over SPOP by a client that plays HAProxy: rules by
 * route and tenant, a bad file at start (exit 2), and live reload — valid, invalid — of the
 * running process.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { waitFor } from "@spoekit/harness";
import { connectClient, type SpopClient, spoeMessage } from "@spoekit/spoe-agent/testing";
import { type AckFrame, ActionType, Scope, TypedValue } from "@spoekit/spop-codec";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type AppProcess, spawnApp, startApp, total } from "./stack.ts";

const dir = mkdtempSync(join(tmpdir(), "gcra-rules-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** The `sess` variables an ACK sets, by name (numbers, and the rule's name). */
function vars(ack: AckFrame): Record<string, number | string> {
  const out: Record<string, number | string> = {};
  for (const action of ack.actions) {
    if (action.type === ActionType.SET_VAR && action.scope === Scope.SESS && "value" in action.value) {
      const { value } = action.value;
      out[action.name] = typeof value === "string" ? value : Number(value);
    }
  }
  return out;
}

const request = (ip: string, args: { path?: string; method?: string; tenant?: string } = {}) =>
  spoeMessage("check-rate", {
    ip_fwd: TypedValue.null,
    ip_xff: TypedValue.null,
    ip_src: TypedValue.ipv4(ip),
    path: TypedValue.string(args.path ?? "/"),
    method: TypedValue.string(args.method ?? "GET"),
    host: TypedValue.string("example.com"),
    tenant: args.tenant === undefined ? TypedValue.null : TypedValue.string(args.tenant),
  });

const rules = (loginBurst: number) => `deny: [198.51.100.0/24]
rules:
  - name: login
    match: { path: { prefix: /login }, method: POST }
    key: [client_ip]
    rate: 1/m
    burst: ${loginBurst}
  - name: tenant
    match: { tenant: { present: true } }
    key: [tenant]
    rate: 1/m
    burst: 3
  - name: per-ip
    key: [client_ip]
    rate: 1/m
    burst: 50
`;

describe("SPOA_RULES_FILE", () => {
  const file = join(dir, "rules.yaml");
  let app: AppProcess;
  let haproxy: SpopClient;

  beforeAll(async () => {
    writeFileSync(file, rules(2));
    app = await startApp({ SPOA_RULES_FILE: file }, { outputLimit: 1 << 20 });
    haproxy = await connectClient({ port: app.spopPort });
    await haproxy.hello();
  }, 30_000);
  afterAll(async () => {
    await haproxy?.disconnect().catch(() => undefined);
    await app?.stop();
  });

  const send = async (ip: string, args?: Parameters<typeof request>[1]) =>
    vars(await haproxy.notify([request(ip, args)]));

  it("limits per route and per tenant, names the rule, and denies listed addresses", async () => {
    const login = { path: "/login", method: "POST" };
    expect(await send("10.0.0.1", login)).toMatchObject({
      ip_score: 0,
      rule: "login",
      remaining: 1,
      limit: 2,
    });
    expect(await send("10.0.0.1", login)).toMatchObject({ ip_score: 0, rule: "login", remaining: 0 });
    expect(await send("10.0.0.1", login)).toMatchObject({ ip_score: 100, rule: "login", retry_after: 60 });
    // Other routes of the same client pass (per-ip had 2 taken, not 3).
    expect(await send("10.0.0.1")).toMatchObject({ ip_score: 0, rule: "per-ip", remaining: 47 });
    // One tenant, three clients: the tenant's burst of 3 is shared.
    const tenant = { tenant: "acme" };
    for (const ip of ["10.0.1.1", "10.0.1.2", "10.0.1.3"]) {
      expect(await send(ip, tenant)).toMatchObject({ ip_score: 0, rule: "tenant" });
    }
    expect(await send("10.0.1.4", tenant)).toMatchObject({ ip_score: 100, rule: "tenant" });
    expect(await send("10.0.1.4", { tenant: "other" })).toMatchObject({ ip_score: 0 });
    expect(await send("198.51.100.7")).toEqual({ ip_score: 100, rule: "deny" });
    const metrics = await app.metrics();
    expect(total(metrics, "gcra_rule_decisions_total", { rule: "login", outcome: "denied" })).toBe(1);
    expect(total(metrics, "gcra_rule_decisions_total", { rule: "tenant", outcome: "denied" })).toBe(1);
  });

  it("refuses an invalid file: old rules stay, one error line with file:line, a metric, /readyz 200", async () => {
    writeFileSync(file, rules(2).replace("rate: 1/m\n    burst: 3", "rate: lots\n    burst: 3"));
    await waitFor(
      async () => total(await app.metrics(), "gcra_rules_reloads_total", { result: "failed" }) === 1,
      { what: "the refused reload" },
    );
    const errors = app
      .output()
      .split("\n")
      .filter((line) => line.includes("rules not reloaded"));
    expect(errors).toHaveLength(1);
    expect(errors[0]).toContain(`${file}:11: rate of rule tenant must look like`);
    expect((await app.admin("/readyz")).status).toBe(200);
    expect(await send("10.0.0.1", { path: "/login", method: "POST" })).toMatchObject({ ip_score: 100 });
  });

  it("applies a valid file live, keeping the state of unchanged rules, on the same connection", async () => {
    writeFileSync(file, rules(5));
    await waitFor(
      async () => total(await app.metrics(), "gcra_rules_reloads_total", { result: "applied" }) === 1,
      { what: "the applied reload" },
    );
    // login's burst changed: a new limit; per-ip's did not: its state continues (45 left after this).
    expect(await send("10.0.0.1", { path: "/login", method: "POST" })).toMatchObject({
      ip_score: 0,
      rule: "login",
    });
    expect(await send("10.0.0.1")).toMatchObject({ ip_score: 0, rule: "per-ip", remaining: 45 });
  });
});

it("exits with code 2 and one line naming file:line for an invalid rules file at start", async () => {
  const bad = join(dir, "bad.yaml");
  writeFileSync(bad, "rules:\n  - name: a\n    key: [client_ip]\n    rate: 5/s\n    burst: many\n");
  const app = spawnApp({ SPOE_ADDR: "127.0.0.1:1", ADMIN_ADDR: "127.0.0.1:2", SPOA_RULES_FILE: bad });
  expect(await app.exited).toBe(2);
  const lines = app.output().split("\n").filter(Boolean);
  expect(lines).toEqual([
    `gcra-rate-limiting: SPOA_RULES_FILE: ${bad}:5: burst of rule a must be a whole number ≥ 1`,
  ]);
});
