import { describe, expect, it } from "vitest";
import { answerMarginMs, ConfigError, deadlineConflict, loadConfig } from "./config.ts";
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
    expect(config.drainDelayMs).toBe(5000);
    expect(config.processingTimeoutMs).toBe(100);
    expect(config.valkeyTimeoutMs).toBe(60);
    expect(config.valkeyTimeoutDerived).toBe(true);
    expect(config.logLevel).toBe("info");
    expect(config.circuit).toEqual({
      failureThreshold: 5,
      failureRatio: 0.5,
      ratioWindowMs: 10_000,
      ratioMinCalls: 20,
      probeDelayMs: 50,
      maxProbeDelayMs: 2000,
    });
    expect(config.connections).toEqual({
      maxConnections: 1024,
      maxBufferedBytes: 96 * 1024,
      maxTotalBufferedBytes: 16 * 1024 * 1024,
      helloTimeoutMs: 5000,
      idleTimeoutMs: 120_000,
    });
  });

  it("reads the circuit, the connection bounds and the timeouts in their units", () => {
    const config = loadConfig({
      VALKEY_NODES: "redis://v:6379",
      VALKEY_MODE: "replication",
      VALKEY_CIRCUIT_FAILURES: "3",
      VALKEY_CIRCUIT_RATIO: ".25",
      VALKEY_CIRCUIT_WINDOW: "2s",
      VALKEY_CIRCUIT_MIN_CALLS: "8",
      VALKEY_PROBE_DELAY: "20ms",
      VALKEY_PROBE_MAX_DELAY: "1s",
      SPOA_MAX_CONNECTIONS: "300",
      SPOA_MAX_BUFFERED_BYTES: "20000",
      SPOA_MAX_TOTAL_BUFFERED_BYTES: "1MiB",
      SPOA_HELLO_TIMEOUT: "250ms",
      SPOA_IDLE_TIMEOUT: "1m",
    });
    expect(config.valkeyMode).toBe("replication");
    expect(config.circuit).toEqual({
      failureThreshold: 3,
      failureRatio: 0.25,
      ratioWindowMs: 2000,
      ratioMinCalls: 8,
      probeDelayMs: 20,
      maxProbeDelayMs: 1000,
    });
    expect(config.connections).toEqual({
      maxConnections: 300,
      maxBufferedBytes: 20_000,
      maxTotalBufferedBytes: 1024 * 1024,
      helloTimeoutMs: 250,
      idleTimeoutMs: 60_000,
    });
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
    ["DRAIN_DELAY", "-5s"],
    ["LOG_LEVEL", "verbose"],
    ["HAPROXY_PROCESSING_TIMEOUT", "1ms"],
    ["HAPROXY_PROCESSING_TIMEOUT", "fast"],
    ["VALKEY_CIRCUIT_FAILURES", "0"],
    ["VALKEY_CIRCUIT_RATIO", "0"],
    ["VALKEY_CIRCUIT_RATIO", "1.5"],
    ["VALKEY_CIRCUIT_RATIO", "50%"],
    ["VALKEY_CIRCUIT_WINDOW", "5ms"],
    ["VALKEY_CIRCUIT_MIN_CALLS", "1.5"],
    ["VALKEY_PROBE_DELAY", "0ms"],
    ["VALKEY_PROBE_MAX_DELAY", "11m"],
    ["SPOA_MAX_CONNECTIONS", "0"],
    ["SPOA_MAX_CONNECTIONS", "1e3"],
    ["SPOA_MAX_BUFFERED_BYTES", "16383"],
    ["SPOA_MAX_BUFFERED_BYTES", "2GiB"],
    ["SPOA_MAX_BUFFERED_BYTES", "1.5MiB"],
    ["SPOA_MAX_TOTAL_BUFFERED_BYTES", "lots"],
    ["SPOA_HELLO_TIMEOUT", "0"],
    ["SPOA_IDLE_TIMEOUT", "500ms"],
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

  it("refuses a probe delay above the longest probe delay", () => {
    const error = fails({ VALKEY_PROBE_DELAY: "3s", VALKEY_PROBE_MAX_DELAY: "2s" });
    expect(error.variable).toBe("VALKEY_PROBE_DELAY");
  });

  it("refuses a total buffer bound below the per-connection one", () => {
    const error = fails({ SPOA_MAX_BUFFERED_BYTES: "1MiB", SPOA_MAX_TOTAL_BUFFERED_BYTES: "512KiB" });
    expect(error.variable).toBe("SPOA_MAX_TOTAL_BUFFERED_BYTES");
    expect(error.message).toBe(
      `SPOA_MAX_TOTAL_BUFFERED_BYTES="512KiB" is invalid: expected ${settings.SPOA_MAX_TOTAL_BUFFERED_BYTES.accepted}`,
    );
  });

  it("refuses a DRAIN_DELAY that is not below DRAIN_TIMEOUT, and shortens the default to half of it", () => {
    expect(fails({ DRAIN_DELAY: "30s" }).variable).toBe("DRAIN_DELAY");
    expect(fails({ DRAIN_DELAY: "2s", DRAIN_TIMEOUT: "1s" }).variable).toBe("DRAIN_DELAY");
    expect(loadConfig({ DRAIN_DELAY: "29s" }).drainDelayMs).toBe(29_000);
    expect(loadConfig({ DRAIN_DELAY: "0", DRAIN_TIMEOUT: "0" }).drainDelayMs).toBe(0);
    expect(loadConfig({ DRAIN_TIMEOUT: "5s" }).drainDelayMs).toBe(2500);
    expect(loadConfig({ DRAIN_TIMEOUT: "0" }).drainDelayMs).toBe(0);
  });

  it("derives VALKEY_TIMEOUT from HAPROXY_PROCESSING_TIMEOUT unless it is set", () => {
    expect(loadConfig({ HAPROXY_PROCESSING_TIMEOUT: "250ms" })).toMatchObject({
      processingTimeoutMs: 250,
      valkeyTimeoutMs: 150,
      valkeyTimeoutDerived: true,
    });
    expect(loadConfig({ HAPROXY_PROCESSING_TIMEOUT: "2ms" }).valkeyTimeoutMs).toBe(1);
    expect(loadConfig({ VALKEY_TIMEOUT: "40ms" })).toMatchObject({
      processingTimeoutMs: 100,
      valkeyTimeoutMs: 40,
      valkeyTimeoutDerived: false,
    });
  });

  it("says when VALKEY_TIMEOUT leaves HAProxy too little of its processing timeout", () => {
    const conflict = (env: Record<string, string>) => deadlineConflict(loadConfig(env));
    expect(conflict({})).toBeUndefined();
    expect(conflict({ VALKEY_TIMEOUT: "80ms" })).toBeUndefined();
    expect(conflict({ VALKEY_TIMEOUT: "81ms" })).toBe(
      "VALKEY_TIMEOUT (81 ms) leaves less than 20 ms of HAPROXY_PROCESSING_TIMEOUT (100 ms) to answer: a late Valkey call lets the request pass unchecked",
    );
    // The seed's pair: 10 ms of 15 ms.
    expect(conflict({ VALKEY_TIMEOUT: "10ms", HAPROXY_PROCESSING_TIMEOUT: "15ms" })).toContain(
      "less than 10 ms",
    );
    // Derived, a short processing timeout still leaves 40 %, but not the 10 ms the answer needs.
    expect(conflict({ HAPROXY_PROCESSING_TIMEOUT: "20ms" })).toContain("(12 ms) leaves less than 10 ms");
    expect(answerMarginMs(1000)).toBe(200);
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
