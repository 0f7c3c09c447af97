import { mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { settings } from "@spoekit/gcra-rate-limiting";
import { rawCommands, startRedis } from "@spoekit/harness";
import { Ajv2020 } from "ajv/dist/2020.js";
import { afterAll, describe, expect, it } from "vitest";
import { parse } from "yaml";
import { coalesce, entriesDeep, unknownKeys } from "./helm-values.ts";
import { kustomize, type Plain } from "./kustomize.ts";
import { fromRoot } from "./paths.ts";
import { writeAcl } from "./valkey-acl.ts";
import { container, workload } from "./workloads.ts";

const chart = "deploy/tests/fixtures/valkey-helm-0.11.0";
const readYaml = (path: string) => parse(readFileSync(fromRoot(path), "utf8")) as Plain;
const defaults = readYaml(`${chart}/values.yaml`);
const schema = JSON.parse(readFileSync(fromRoot(`${chart}/values.schema.json`), "utf8")) as object;
const values = readYaml("deploy/valkey/values.yaml");
const openshift = readYaml("deploy/valkey/values-openshift.yaml");
const validate = new Ajv2020({ allErrors: true, strict: false }).compile(schema);

interface ValkeyValues {
  replica: { enabled: boolean; replicas: number; replicationUser: string; persistence: { size: string } };
  valkeyConfig: string;
  auth: { enabled: boolean; usersExistingSecret: string; aclUsers: Record<string, { permissions: string }> };
  podDisruptionBudget: { enabled: boolean };
  metrics: { enabled: boolean };
  resources: { requests?: object; limits?: object };
}
const typed = values as unknown as ValkeyValues;

const agent = workload(
  kustomize("kubernetes", fromRoot("deploy/overlays/kubernetes")).objects,
  "Deployment",
  "gcra-rate-limiting",
);
const agentEnv = container(agent.pod, "agent").env ?? [];

describe.each([
  { name: "values.yaml", files: [values] },
  { name: "values.yaml + values-openshift.yaml", files: [values, openshift] },
])("the valkey chart with $name", ({ files }) => {
  const merged = files.reduce(coalesce, defaults);

  it("validates against the chart's values.schema.json after Helm's merge", () => {
    expect(validate(merged), JSON.stringify(validate.errors)).toBe(true);
  });

  it("sets only keys the chart's default values have", () => {
    expect(files.flatMap((file) => unknownKeys(file, defaults))).toEqual([]);
  });
});

describe("deploy/valkey/values.yaml", () => {
  it("runs a primary with replicas, each on a persistent volume", () => {
    expect(typed.replica.enabled).toBe(true);
    expect(typed.replica.replicas).toBeGreaterThanOrEqual(1);
    expect(typed.replica.persistence.size).toMatch(/^\d+[GM]i$/);
  });

  it("persists with an append-only file fsynced every second", () => {
    expect(typed.valkeyConfig).toMatch(/^appendonly yes$/m);
    expect(typed.valkeyConfig).toMatch(/^appendfsync everysec$/m);
  });

  it("takes the ACL passwords from the Secret the agents read, for every user it defines", () => {
    const password = agentEnv.find((v) => v.name === "VALKEY_PASSWORD")?.valueFrom?.secretKeyRef;
    const username = agentEnv.find((v) => v.name === "VALKEY_USERNAME")?.value ?? "";
    expect(typed.auth.enabled).toBe(true);
    expect(typed.auth.usersExistingSecret).toBe(password?.name);
    expect(Object.keys(typed.auth.aclUsers)).toEqual(expect.arrayContaining(["default", username]));
    expect(password?.key).toBe(username);
    expect(Object.keys(typed.auth.aclUsers)).toContain(typed.replica.replicationUser);
    for (const user of Object.values(typed.auth.aclUsers)) expect(user).not.toHaveProperty("password");
  });

  it("grants the agent's user the keys under the agent's default key prefix", () => {
    const rules = typed.auth.aclUsers.gcra?.permissions ?? "";
    expect(rules.split(" ")).toContain(`~${settings.VALKEY_KEY_PREFIX.default}*`);
  });

  it("gives the same rules to the agent's user in the Valkey Cluster component", () => {
    const statefulset = readYaml("deploy/valkey-cluster/statefulset.yaml") as {
      spec: { template: { spec: { initContainers: { env: { name: string; value: string }[] }[] } } };
    };
    const env = statefulset.spec.template.spec.initContainers.flatMap((c) => c.env);
    expect(env.find((v) => v.name === "GCRA_PERMISSIONS")?.value).toBe(typed.auth.aclUsers.gcra?.permissions);
  });

  it("sizes the nodes, keeps a disruption budget and exports metrics", () => {
    expect(typed.resources.requests).toBeDefined();
    expect(typed.resources.limits).toBeDefined();
    expect(typed.podDisruptionBudget.enabled).toBe(true);
    expect(typed.metrics.enabled).toBe(true);
  });

  it("leaves no fixed UID or fsGroup on OpenShift", () => {
    const merged = [values, openshift].reduce(coalesce, defaults);
    const fixed = entriesDeep(merged).filter(([path]) => /(^|\.)(runAsUser|runAsGroup|fsGroup)$/.test(path));
    expect(fixed).toEqual([]);
  });
});

describe("the Valkey ACL", () => {
  const cleanup: (() => Promise<void> | void)[] = [];
  afterAll(async () => {
    for (const step of cleanup.reverse()) await step();
  });

  it("lets the agent's user run its script on its keys and nothing beyond them", async () => {
    const dir = mkdtempSync(join(tmpdir(), "spoekit-acl-"));
    cleanup.push(() => rmSync(dir, { recursive: true, force: true }));
    writeAcl(
      dir,
      { default: "admin-password", gcra: "agent-password" },
      typed.auth.aclUsers.gcra?.permissions ?? "",
    );
    const acl = readFileSync(join(dir, "users.acl"), "utf8");
    expect(acl).not.toContain("password");
    // Replicas authenticate to their primary as "default": that file needs the password itself.
    expect(readFileSync(join(dir, "replication.conf"), "utf8")).toBe(
      'masteruser default\nmasterauth "admin-password"\n',
    );
    expect(statSync(join(dir, "replication.conf")).mode & 0o077).toBe(0);

    const redis = await startRedis();
    cleanup.push(() => redis.stop());
    // The agent's user first: once "default" has a password, unauthenticated commands stop.
    const lines = acl.trim().split("\n").reverse();
    for (const line of lines) {
      const [, user, ...rules] = line.split(" ");
      expect(await redis.command("ACL", "SETUSER", user ?? "", "reset", ...rules)).toBe("OK");
    }
    const script = [
      "local now = redis.call('TIME')",
      "redis.call('SET', KEYS[1], now[1], 'PX', 60000)",
      "redis.call('PEXPIRE', KEYS[1], 60000)",
      "return redis.call('GET', KEYS[1])",
    ].join("\n");
    const asAgent = await rawCommands(redis.port, [
      ["AUTH", "gcra", "agent-password"],
      ["EVAL", script, "1", "gcra:192.0.2.1"],
      ["SCRIPT", "LOAD", script],
      ["INFO", "cluster"],
      ["SET", "other:key", "1"],
      ["FLUSHALL"],
      ["KEYS", "*"],
    ]);
    expect(asAgent[0]).toBe("OK");
    expect(typeof asAgent[1]).toBe("string");
    expect(asAgent[2]).toMatch(/^[0-9a-f]{40}$/);
    expect(String(asAgent[3])).toContain("cluster_enabled");
    expect(asAgent[4]).toBeInstanceOf(Error);
    expect(String(asAgent[4])).toMatch(/NOPERM/);
    expect(String(asAgent[5])).toMatch(/NOPERM/);
    expect(String(asAgent[6])).toMatch(/NOPERM/);
    const asAdmin = await rawCommands(redis.port, [["AUTH", "default", "admin-password"], ["DBSIZE"]]);
    expect(asAdmin).toEqual(["OK", 1]);
  });
});
