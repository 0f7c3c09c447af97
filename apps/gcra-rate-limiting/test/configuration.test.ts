/**
 * The app as operators start it: a bad environment value is one line on stderr and exit code 2,
 * before anything listens; good ones give the start-up banner.
 */
import { spawn } from "node:child_process";
import { freePort, waitFor } from "@spoekit/harness";
import { describe, expect, it } from "vitest";
import { type SettingName, settings } from "../src/settings.ts";
import { appDir, appEnvironment, spawnApp } from "./stack.ts";

interface Exit {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs the app until it exits on its own, with stdout and stderr apart (50 s: a hang guard, below the suite's 60 s test timeout). */
function runToExit(env: Record<string, string>): Promise<Exit> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ["--conditions=@spoekit/source", "src/main.ts"], {
      cwd: appDir,
      env: appEnvironment(env),
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (chunk: Buffer) => {
      stdout += chunk;
    });
    child.stderr.on("data", (chunk: Buffer) => {
      stderr += chunk;
    });
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`the app did not exit within 50 s:\n${stdout}${stderr}`));
    }, 50_000);
    child.on("error", reject);
    child.on("exit", (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

/** One bad value per variable (several for some), with the variable the error must name. */
const badValues: [SettingName, string, Record<string, string>?][] = [
  ["SPOE_ADDR", "9000"],
  ["SPOE_ADDR", "[::1]:0"],
  ["VALKEY_NODES", "http://valkey:6379"],
  ["VALKEY_MODE", "replicated", { VALKEY_NODES: "redis://127.0.0.1:1" }],
  ["VALKEY_CA_FILE", "/nonexistent/ca.pem", { VALKEY_NODES: "rediss://127.0.0.1:1" }],
  ["VALKEY_KEY_PREFIX", "k".repeat(65)],
  ["VALKEY_TIMEOUT", "61s"],
  ["HAPROXY_PROCESSING_TIMEOUT", "0.5ms"],
  ["VALKEY_CIRCUIT_FAILURES", "none"],
  ["VALKEY_CIRCUIT_RATIO", "2"],
  ["VALKEY_CIRCUIT_WINDOW", "1d"],
  ["VALKEY_CIRCUIT_MIN_CALLS", "0"],
  ["VALKEY_PROBE_DELAY", "5s"],
  ["VALKEY_PROBE_MAX_DELAY", "0s"],
  ["SPOA_MAX_CONNECTIONS", "unlimited"],
  ["SPOA_MAX_BUFFERED_BYTES", "4KiB"],
  ["SPOA_MAX_TOTAL_BUFFERED_BYTES", "64KiB"],
  ["SPOA_HELLO_TIMEOUT", "never"],
  ["SPOA_IDLE_TIMEOUT", "2h"],
  ["SPOA_RATE_INTERVAL", "0"],
  ["SPOA_RATE_BURST", "-1"],
  ["SPOA_RATE_BURST", "5000", { SPOA_RATE_INTERVAL: "10000" }],
  ["SPOA_RATE_TTL", "1h"],
  ["SPOA_RULES_FILE", "rules.yaml"],
  ["SPOA_FAILURE_POLICY", "ignore"],
  ["SPOA_IPV6_PREFIX", "/64"],
  ["SPOA_WORKERS", "many"],
  ["SPOA_WORKERS", "2"],
  ["ADMIN_ADDR", "localhost:http"],
  ["DRAIN_TIMEOUT", "-1s"],
  ["DRAIN_DELAY", "30s"],
  ["LOG_LEVEL", "loud"],
];
/** Variables any text is good for. */
const freeText: SettingName[] = ["VALKEY_USERNAME", "VALKEY_PASSWORD", "VALKEY_SENTINEL_NAME"];

describe("configuration from the environment", () => {
  it("has a bad value to try for every variable that can be wrong", () => {
    const tried = new Set(badValues.map(([name]) => name));
    for (const name of Object.keys(settings) as SettingName[]) {
      expect(tried.has(name) || freeText.includes(name), name).toBe(true);
    }
  });

  it("exits with code 2 and one line naming the variable and what it accepts, for every bad value", async () => {
    const results: [SettingName, string, Exit][] = [];
    // Four at a time: each is a Node process of its own.
    for (let i = 0; i < badValues.length; i += 4) {
      const batch = badValues.slice(i, i + 4);
      const exits = await Promise.all(
        batch.map(([name, value, others]) =>
          runToExit({ SPOE_ADDR: "127.0.0.1:1", ADMIN_ADDR: "127.0.0.1:2", ...others, [name]: value }),
        ),
      );
      batch.forEach(([name, value], j) => {
        results.push([name, value, exits[j] as Exit]);
      });
    }
    for (const [name, value, exit] of results) {
      const context = `${name}=${value}: ${exit.stderr}${exit.stdout}`;
      expect(exit.code, context).toBe(2);
      expect(exit.stdout, context).toBe("");
      const lines = exit.stderr.split("\n").filter(Boolean);
      expect(lines, context).toHaveLength(1);
      expect(lines[0], context).toContain(`${name}=${JSON.stringify(value)} is invalid: expected `);
      if (name === "SPOA_WORKERS" && value === "2") {
        expect(lines[0]).toContain(
          "1 with the embedded store (set VALKEY_NODES to share limits across workers)",
        );
      } else {
        expect(lines[0], context).toContain(settings[name].accepted);
      }
    }
  }, 60_000);

  it("prints the effective settings at start: rate in req/s, burst in requests, store and worker count", async () => {
    const spop = await freePort();
    const admin = await freePort();
    const app = spawnApp({
      SPOE_ADDR: `127.0.0.1:${spop}`,
      ADMIN_ADDR: `127.0.0.1:${admin}`,
      SPOA_RATE_INTERVAL: "20000",
      SPOA_RATE_BURST: "200000",
      SPOA_IPV6_PREFIX: "56",
      // The seed's names, read as aliases.
      TOKIO_WORKER_THREADS: "1",
      RUST_LOG: "warn",
    });
    try {
      await waitFor(
        () => app.output().includes("  store "),
        { timeoutMs: 15_000, what: "the banner" },
        () => app.output(),
      );
      const output = app.output();
      expect(output).toContain(`gcra-rate-limiting `);
      expect(output).toContain(`listening on 127.0.0.1:${spop} (SPOP), admin on 127.0.0.1:${admin}`);
      const line = (name: string) => output.split("\n").find((l) => l.trimStart().startsWith(`${name} `));
      expect(line("SPOA_RATE_INTERVAL")).toMatch(/: 20000µs \(= 50 req\/s\)$/);
      expect(line("SPOA_RATE_BURST")).toMatch(/: 200000µs \(= 10 req burst\)$/);
      expect(line("SPOA_WORKERS")).toMatch(/: 1 \(SPOA_WORKERS\)$/);
      expect(line("SPOA_IPV6_PREFIX")).toMatch(/: \/56$/);
      expect(line("VALKEY_NODES")).toMatch(/embedded in-memory store/);
      expect(line("store")).toMatch(/: embedded in-memory \(limits are per process\)$/);
      expect(line("DRAIN_TIMEOUT")).toMatch(/: 30s$/);
      expect(line("LOG_LEVEL")).toMatch(/: warn$/);
      expect(line("DRAIN_DELAY")).toMatch(/: 5s$/);
      expect(line("SPOA_MAX_CONNECTIONS")).toMatch(/: 1024$/);
      expect(line("SPOA_MAX_BUFFERED_BYTES")).toMatch(/: 96KiB$/);
      expect(line("SPOA_MAX_TOTAL_BUFFERED_BYTES")).toMatch(/: 16MiB$/);
      // The Valkey settings only with Valkey.
      expect(line("VALKEY_TIMEOUT")).toBeUndefined();
      expect(line("HAPROXY_PROCESSING_TIMEOUT")).toBeUndefined();
      expect(
        output
          .split("\n")
          .filter((l) => l.trimStart().startsWith("deprecated "))
          .map((l) => l.replace(/ +: /, " : ")),
      ).toEqual([
        "  deprecated : TOKIO_WORKER_THREADS=1 is read as SPOA_WORKERS (the seed's name; rename it)",
        "  deprecated : RUST_LOG=warn is read as LOG_LEVEL (the seed's name; rename it)",
      ]);
    } finally {
      await app.stop("SIGTERM");
    }
  });
});
