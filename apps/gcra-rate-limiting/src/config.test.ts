import { describe, expect, it } from "vitest";
import { ConfigError, loadConfig } from "./config.ts";
import { allowedCpus } from "./cpus.ts";
import { settings } from "./settings.ts";

describe("loadConfig", () => {
  it("gives the seed's defaults and the embedded store with one worker when nothing is set", () => {
    const config = loadConfig({}, () => 8);
    expect(config.spoeAddress).toEqual({ host: "0.0.0.0", port: 9000 });
    expect(config.adminAddress).toEqual({ host: "0.0.0.0", port: 9090 });
    expect(config.valkeyNodes).toEqual([]);
    expect(config.rateIntervalUs).toBe(10_000);
    expect(config.rateBurstUs).toBe(200_000);
    expect(config.rateTtlSeconds).toBeUndefined();
    expect(config.failurePolicy).toBe("open");
    expect(config.ipv6Prefix).toBe(64);
    expect(config.workers).toBe(1);
    expect(config.drainTimeoutMs).toBe(30_000);
    expect(config.valkeyTimeoutMs).toBe(10);
    expect(config.logLevel).toBe("info");
  });

  it("defaults the worker count to the allowed CPUs when Valkey is configured", () => {
    const config = loadConfig({ VALKEY_NODES: "redis://a:6379, rediss://b:6380" }, () => 3);
    expect(config.workers).toBe(3);
    expect(config.valkeyNodes.map((u) => u.host)).toEqual(["a:6379", "b:6380"]);
  });

  it("accepts unix sockets, bracketed IPv6 hosts and durations in several units", () => {
    const config = loadConfig({
      SPOE_ADDR: "unix:/tmp/spoa.sock",
      ADMIN_ADDR: "[::1]:9191",
      DRAIN_TIMEOUT: "1500ms",
    });
    expect(config.spoeAddress).toEqual({ path: "/tmp/spoa.sock" });
    expect(config.adminAddress).toEqual({ host: "::1", port: 9191 });
    expect(config.drainTimeoutMs).toBe(1500);
    expect(loadConfig({ DRAIN_TIMEOUT: "1m" }).drainTimeoutMs).toBe(60_000);
    expect(loadConfig({ DRAIN_TIMEOUT: "45" }).drainTimeoutMs).toBe(45_000);
  });

  it.each([
    ["SPOE_ADDR", "9000"],
    ["SPOE_ADDR", "0.0.0.0:70000"],
    ["SPOE_ADDR", "unix:relative.sock"],
    ["VALKEY_NODES", "http://valkey:6379"],
    ["VALKEY_NODES", "not a url"],
    ["VALKEY_MODE", "replicated"],
    ["VALKEY_TIMEOUT", "0ms"],
    ["VALKEY_KEY_PREFIX", "x".repeat(65)],
    ["SPOA_RATE_INTERVAL", "0"],
    ["SPOA_RATE_INTERVAL", "10ms"],
    ["SPOA_RATE_INTERVAL", "-5"],
    ["SPOA_RATE_BURST", "1.5"],
    ["SPOA_RATE_BURST", "9999"],
    ["SPOA_RATE_INTERVAL", String(2 ** 46 + 1)],
    ["SPOA_RATE_TTL", "31536001"],
    ["VALKEY_CA_FILE", "relative/ca.pem"],
    ["SPOA_RATE_TTL", "forever"],
    ["SPOA_FAILURE_POLICY", "maybe"],
    ["SPOA_IPV6_PREFIX", "129"],
    ["SPOA_IPV6_PREFIX", "0"],
    ["SPOA_WORKERS", "0"],
    ["ADMIN_ADDR", "localhost"],
    ["DRAIN_TIMEOUT", "soon"],
    ["LOG_LEVEL", "verbose"],
  ])("rejects %s=%j with a one-line error naming the variable and the accepted form", (name, value) => {
    let error: unknown;
    try {
      loadConfig({ [name]: value });
    } catch (caught) {
      error = caught;
    }
    expect(error).toBeInstanceOf(ConfigError);
    const configError = error as ConfigError;
    expect(configError.variable).toBe(name);
    expect(configError.message).toContain(name);
    expect(configError.message).toContain(settings[name as keyof typeof settings].accepted);
    expect(configError.message).not.toContain("\n");
  });
});

describe("loadConfig's cross-checks", () => {
  const fails = (env: Record<string, string>, readFile?: (path: string) => string) => {
    try {
      loadConfig(env, () => 4, readFile);
    } catch (error) {
      return error as ConfigError;
    }
    throw new Error("loadConfig accepted it");
  };

  it("refuses several workers with the embedded store: each would keep limits of its own", () => {
    const error = fails({ SPOA_WORKERS: "2" });
    expect(error).toBeInstanceOf(ConfigError);
    expect(error.message).toBe(
      'SPOA_WORKERS="2" is invalid: expected 1 with the embedded store (set VALKEY_NODES to share limits across workers)',
    );
    expect(loadConfig({ SPOA_WORKERS: "1" }).workers).toBe(1);
    expect(loadConfig({ SPOA_WORKERS: "2", VALKEY_NODES: "redis://v:6379" }).workers).toBe(2);
  });

  it("refuses a burst tolerance below the emission interval, which would deny every request", () => {
    expect(fails({ SPOA_RATE_INTERVAL: "20000", SPOA_RATE_BURST: "19999" }).variable).toBe("SPOA_RATE_BURST");
    expect(loadConfig({ SPOA_RATE_INTERVAL: "20000", SPOA_RATE_BURST: "20000" }).rateBurstUs).toBe(20_000);
  });

  it("reads VALKEY_CA_FILE at start and wants a certificate in it", () => {
    const pem = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
    const files: Record<string, string> = { "/etc/valkey/ca.pem": pem, "/etc/valkey/key.pem": "secret" };
    const readFile = (path: string) => {
      const text = files[path];
      if (text === undefined) throw new Error(`ENOENT: ${path}`);
      return text;
    };
    const env = { VALKEY_NODES: "rediss://v:6380" };
    expect(loadConfig({ ...env, VALKEY_CA_FILE: "/etc/valkey/ca.pem" }, () => 1, readFile).valkeyCaFile).toBe(
      "/etc/valkey/ca.pem",
    );
    for (const path of ["/etc/valkey/missing.pem", "/etc/valkey/key.pem"]) {
      const error = fails({ ...env, VALKEY_CA_FILE: path }, readFile);
      expect(error.variable).toBe("VALKEY_CA_FILE");
      expect(error.message).toContain(settings.VALKEY_CA_FILE.accepted);
    }
  });
});

describe("the seed's variable names", () => {
  const valkey = { VALKEY_NODES: "redis://v:6379" };

  it("reads TOKIO_WORKER_THREADS as SPOA_WORKERS, with a deprecation line", () => {
    const config = loadConfig({ ...valkey, TOKIO_WORKER_THREADS: "3" }, () => 8);
    expect(config.workers).toBe(3);
    expect(config.workersFromCpus).toBe(false);
    expect(config.deprecations).toEqual([
      "TOKIO_WORKER_THREADS=3 is read as SPOA_WORKERS (the seed's name; rename it)",
    ]);
  });

  it("lets the new name win and says the old one is ignored", () => {
    const config = loadConfig({
      ...valkey,
      TOKIO_WORKER_THREADS: "3",
      SPOA_WORKERS: "2",
      LOG_LEVEL: "debug",
      RUST_LOG: "off",
    });
    expect(config.workers).toBe(2);
    expect(config.logLevel).toBe("debug");
    expect(config.deprecations).toEqual([
      "TOKIO_WORKER_THREADS is ignored: SPOA_WORKERS is set (the seed's name; remove it)",
      "RUST_LOG is ignored: LOG_LEVEL is set (the seed's name; remove it)",
    ]);
    expect(loadConfig({}).deprecations).toEqual([]);
  });

  it("names the old variable when its value is refused", () => {
    let error: unknown;
    try {
      loadConfig({ TOKIO_WORKER_THREADS: "4" });
    } catch (caught) {
      error = caught;
    }
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).variable).toBe("TOKIO_WORKER_THREADS");
    expect((error as ConfigError).message).toContain("1 with the embedded store");
  });

  it.each([
    ["off", "silent"],
    ["error", "error"],
    ["WARN", "warn"],
    ["info", "info"],
    ["haproxy_spoe=debug", "debug"],
    ["warn,haproxy_spoe=trace", "trace"],
    ["info, hyper=warn", "info"],
  ])("maps RUST_LOG=%s to LOG_LEVEL %s (the most verbose directive)", (value, level) => {
    const config = loadConfig({ RUST_LOG: value });
    expect(config.logLevel).toBe(level);
    expect(config.deprecations).toEqual([
      `RUST_LOG=${value} is read as LOG_LEVEL (the seed's name; rename it)`,
    ]);
  });

  it.each(["loud", "haproxy_spoe=chatty", ",", "="])("refuses RUST_LOG=%j in one line naming it", (value) => {
    let error: unknown;
    try {
      loadConfig({ RUST_LOG: value });
    } catch (caught) {
      error = caught;
    }
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).variable).toBe("RUST_LOG");
    expect((error as ConfigError).message).toContain("off, error, warn, info, debug or trace");
  });
});

describe("allowedCpus", () => {
  it("rounds a cgroup v2 quota up and never exceeds the CPU count", () => {
    expect(allowedCpus(() => "150000 100000\n")).toBe(2);
    expect(allowedCpus(() => "50000 100000\n")).toBe(1);
    expect(allowedCpus(() => "100000000 100000\n")).toBeLessThanOrEqual(
      allowedCpus(() => {
        throw new Error("no cgroup");
      }),
    );
  });
});
