import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { deadlineConflict, loadConfig, settings } from "@spoekit/gcra-rate-limiting";
import { canonicalHaproxy, requireBinary } from "@spoekit/harness";
import { describe, expect, it } from "vitest";
import { processingTimeoutMs } from "./haproxy-config.ts";
import { fromRoot } from "./paths.ts";

const unitPath = fromRoot("deploy/systemd/gcra-rate-limiting.service");
const unit = readFileSync(unitPath, "utf8");
const envFile = readFileSync(fromRoot("deploy/systemd/gcra-rate-limiting.env"), "utf8");

/** The directives of a unit's [Service] section (repeated keys in order). */
function serviceDirectives(text: string): Map<string, string[]> {
  const section = /^\[Service\]\n([\s\S]*?)(?=^\[|(?![\s\S]))/m.exec(text)?.[1] ?? "";
  const directives = new Map<string, string[]>();
  for (const line of section.split("\n")) {
    const match = /^([A-Za-z]+)=(.*)$/.exec(line.trim());
    if (match?.[1]) directives.set(match[1], [...(directives.get(match[1]) ?? []), match[2] ?? ""]);
  }
  return directives;
}

const directives = serviceDirectives(unit);
const one = (key: string) => directives.get(key)?.at(-1);

const environment = Object.fromEntries(
  envFile
    .split("\n")
    .filter((line) => /^[A-Z_]+=/.test(line))
    .map((line) => [line.slice(0, line.indexOf("=")), line.slice(line.indexOf("=") + 1)]),
);

describe("deploy/systemd/gcra-rate-limiting.service", () => {
  it("passes systemd-analyze verify without a word", () => {
    const result = spawnSync(requireBinary("systemd-analyze"), ["verify", unitPath], { encoding: "utf8" });
    expect(`${result.stdout}${result.stderr}`).toBe("");
    expect(result.status).toBe(0);
  });

  it("is sandboxed well enough for systemd-analyze security to call it OK (exposure ≤ 2.0)", () => {
    const result = spawnSync(requireBinary("systemd-analyze"), ["security", "--offline=yes", unitPath], {
      encoding: "utf8",
    });
    const exposure = Number(/Overall exposure level for \S+: ([\d.]+)/.exec(result.stdout)?.[1]);
    expect(exposure).toBeLessThanOrEqual(2);
  });

  it("runs as a throwaway user on a read-only system without privileges", () => {
    expect(one("DynamicUser")).toBe("yes");
    expect(one("ProtectSystem")).toBe("strict");
    expect(one("ProtectHome")).toBe("yes");
    expect(one("NoNewPrivileges")).toBe("yes");
    expect(one("CapabilityBoundingSet")).toBe("");
    expect(one("PrivateTmp")).toBe("yes");
  });

  it("stops with SIGTERM and waits longer than the agent's drain", () => {
    const config = loadConfig(environment, () => 1);
    expect(one("KillSignal")).toBe("SIGTERM");
    expect(Number.parseInt(one("TimeoutStopSec") ?? "0", 10)).toBeGreaterThan(config.drainTimeoutMs / 1000);
  });

  it("tells the agent the local HAProxy's processing timeout, with a Valkey deadline that leaves room", () => {
    const config = loadConfig(environment, () => 1);
    expect(config.processingTimeoutMs).toBe(processingTimeoutMs(canonicalHaproxy().spoeConf));
    expect(deadlineConflict(config)).toBeUndefined();
  });

  it("reads its settings from the environment file, whose names and values the app accepts", () => {
    expect(directives.get("EnvironmentFile")).toEqual([
      "/etc/gcra-rate-limiting/gcra-rate-limiting.env",
      "-/etc/gcra-rate-limiting/secrets.env",
    ]);
    for (const name of Object.keys(environment)) expect(Object.keys(settings), name).toContain(name);
    expect(environment).not.toHaveProperty("VALKEY_PASSWORD");
    expect(() => loadConfig(environment, () => 1)).not.toThrow();
  });
});
