import { readFileSync } from "node:fs";
import { availableParallelism } from "node:os";
import { isAbsolute } from "node:path";
import { MAX_DURATION_US } from "@spoekit/gcra";

/**
 * The agent's configuration, read from the environment. This module is the one source of truth
 * for variable names, defaults and accepted forms: the app, its README and the deployment tests
 * all read {@link settings}.
 */

/** Where a server listens: TCP `host:port` or a unix socket path. */
export type ListenAddress = { kind: "tcp"; host: string; port: number } | { kind: "unix"; path: string };

export type ValkeyMode = "auto" | "standalone" | "cluster" | "sentinel";
export type FailurePolicy = "open" | "closed" | "fallback";
export type LogLevel = "trace" | "debug" | "info" | "warn" | "error" | "fatal" | "silent";

export interface Config {
  spoeAddress: ListenAddress;
  /** Empty: the embedded in-memory store. */
  valkeyNodes: URL[];
  valkeyMode: ValkeyMode;
  valkeyUsername: string | undefined;
  valkeyPassword: string | undefined;
  /** PEM file of the CA certificates to trust for `rediss://` instead of Node's bundled ones. */
  valkeyCaFile: string | undefined;
  /** The primary's name the sentinels monitor (sentinel mode). */
  valkeySentinelName: string;
  /** Prefix of every rate-limit key (`gcra:` as the seed; put a `{hash tag}` in it to pin one slot). */
  valkeyKeyPrefix: string;
  /** Per-call deadline for the store, ms; past it the failure policy answers. */
  valkeyTimeoutMs: number;
  /** Emission interval T, µs. */
  rateIntervalUs: number;
  /** Burst tolerance τ, µs. */
  rateBurstUs: number;
  /** Extra retention after the TAT, s; undefined: keys expire exactly at their TAT. */
  rateTtlSeconds: number | undefined;
  failurePolicy: FailurePolicy;
  ipv6Prefix: number;
  workers: number;
  /** True when SPOA_WORKERS came from the CPU count rather than the environment. */
  workersFromCpus: boolean;
  adminAddress: ListenAddress;
  drainTimeoutMs: number;
  logLevel: LogLevel;
  /** The rules file (YAML or JSON); undefined: one per-IP rule from SPOA_RATE_INTERVAL/BURST. */
  rulesFile: string | undefined;
}

/** A configuration value that cannot be used; the message is one line naming the variable. */
export class ConfigError extends Error {
  override readonly name = "ConfigError";
  readonly variable: string;
  constructor(variable: string, value: string, accepted: string) {
    super(`${variable}=${JSON.stringify(value)} is invalid: expected ${accepted}`);
    this.variable = variable;
  }
}

/** One environment variable: its name, default, the form it accepts, and what it means. */
export interface Setting {
  readonly name: string;
  /** The default as an operator would write it; undefined when unset has a meaning of its own. */
  readonly default: string | undefined;
  readonly accepted: string;
  readonly description: string;
}

const setting = (
  name: string,
  defaultValue: string | undefined,
  accepted: string,
  description: string,
): Setting => ({
  name,
  default: defaultValue,
  accepted,
  description,
});

/** Every variable the agent reads, in the order the banner and the README list them. */
export const settings = {
  SPOE_ADDR: setting("SPOE_ADDR", "0.0.0.0:9000", "host:port or unix:/path", "SPOP listen address"),
  VALKEY_NODES: setting(
    "VALKEY_NODES",
    undefined,
    "comma-separated redis:// or rediss:// URLs",
    "Valkey nodes (sentinels in sentinel mode); unset: embedded in-memory store",
  ),
  VALKEY_MODE: setting(
    "VALKEY_MODE",
    "auto",
    "auto, standalone, cluster or sentinel",
    "topology (auto: cluster when the node reports cluster_enabled)",
  ),
  VALKEY_USERNAME: setting("VALKEY_USERNAME", undefined, "an ACL user name", "ACL user (from a Secret)"),
  VALKEY_PASSWORD: setting("VALKEY_PASSWORD", undefined, "a password", "ACL password (from a Secret)"),
  VALKEY_CA_FILE: setting(
    "VALKEY_CA_FILE",
    undefined,
    "an absolute path of a readable PEM file holding CA certificates",
    "CA certificates to trust for TLS to Valkey instead of the public ones (turns TLS on)",
  ),
  VALKEY_SENTINEL_NAME: setting(
    "VALKEY_SENTINEL_NAME",
    "mymaster",
    "the monitored primary's name",
    "primary name the sentinels monitor (sentinel mode)",
  ),
  VALKEY_KEY_PREFIX: setting(
    "VALKEY_KEY_PREFIX",
    "gcra:",
    "a key prefix of at most 64 bytes",
    "prefix of every rate-limit key",
  ),
  VALKEY_TIMEOUT: setting(
    "VALKEY_TIMEOUT",
    "10ms",
    "a duration such as 10ms or 0.01s (1ms to 60s)",
    "deadline of one store call; past it the failure policy answers",
  ),
  SPOA_RATE_INTERVAL: setting(
    "SPOA_RATE_INTERVAL",
    "10000",
    "a whole number of microseconds from 1 to 2^46",
    "emission interval T in µs (1e6 / requests per second)",
  ),
  SPOA_RATE_BURST: setting(
    "SPOA_RATE_BURST",
    "200000",
    "a whole number of microseconds from SPOA_RATE_INTERVAL to 2^46",
    "burst tolerance τ in µs (burst size × interval)",
  ),
  SPOA_RATE_TTL: setting(
    "SPOA_RATE_TTL",
    undefined,
    "a whole number of seconds from 0 to 31536000 (a year)",
    "retention after the last request in s (unset: keys expire at their TAT)",
  ),
  SPOA_RULES_FILE: setting(
    "SPOA_RULES_FILE",
    undefined,
    "an absolute path of a YAML or JSON rules file",
    "rules per route, method, tenant or key, CIDR lists, shadow rules; reloaded live (unset: one per-IP rule)",
  ),
  SPOA_FAILURE_POLICY: setting(
    "SPOA_FAILURE_POLICY",
    "open",
    "open, closed or fallback",
    "what to answer while the store fails",
  ),
  SPOA_IPV6_PREFIX: setting(
    "SPOA_IPV6_PREFIX",
    "64",
    "an integer prefix length from 1 to 128",
    "IPv6 clients are limited per prefix of this length",
  ),
  SPOA_WORKERS: setting(
    "SPOA_WORKERS",
    undefined,
    "a whole number from 1 to 1024 (1 with the embedded store)",
    "worker processes sharing the SPOP port (default: CPUs allowed, 1 with the embedded store)",
  ),
  ADMIN_ADDR: setting(
    "ADMIN_ADDR",
    "0.0.0.0:9090",
    "host:port or unix:/path",
    "admin HTTP server: /startz /healthz /readyz /metrics",
  ),
  DRAIN_TIMEOUT: setting(
    "DRAIN_TIMEOUT",
    "30s",
    "a duration such as 30s, 1500ms or 1m",
    "graceful shutdown deadline",
  ),
  LOG_LEVEL: setting(
    "LOG_LEVEL",
    "info",
    "trace, debug, info, warn, error, fatal or silent",
    "pino log level (JSON to stdout)",
  ),
} as const satisfies Record<string, Setting>;

export type SettingName = keyof typeof settings;

/** The admin server's paths, for the app and for probes in manifests. */
export const adminPaths = {
  startup: "/startz",
  liveness: "/healthz",
  readiness: "/readyz",
  metrics: "/metrics",
} as const;

/** Default ports, as exposed by the container. */
export const defaultPorts = { spop: 9000, admin: 9090 } as const;

function fail(name: SettingName, raw: string): never {
  throw new ConfigError(name, raw, settings[name].accepted);
}

function parseInteger(name: SettingName, raw: string, min: number, max = Number.MAX_SAFE_INTEGER): number {
  if (!/^\d+$/.test(raw.trim())) fail(name, raw);
  const value = Number(raw.trim());
  if (!Number.isSafeInteger(value) || value < min || value > max) fail(name, raw);
  return value;
}

function parseChoice<T extends string>(name: SettingName, raw: string, choices: readonly T[]): T {
  const value = raw.trim().toLowerCase();
  if (!(choices as readonly string[]).includes(value)) fail(name, raw);
  return value as T;
}

function parseAddress(name: SettingName, raw: string): ListenAddress {
  const value = raw.trim();
  if (value.startsWith("unix:")) {
    const path = value.slice("unix:".length);
    if (!path.startsWith("/")) fail(name, raw);
    return { kind: "unix", path };
  }
  const match = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]]+)):(\d{1,5})$/.exec(value);
  const port = Number(match?.[3]);
  if (!match || port < 1 || port > 65535) fail(name, raw);
  return { kind: "tcp", host: match[1] ?? match[2] ?? "", port };
}

const MAX_TTL_SECONDS = 365 * 24 * 3600;

function checkCaFile(path: string, readFile: (path: string) => string): void {
  if (!isAbsolute(path)) fail("VALKEY_CA_FILE", path);
  let text: string;
  try {
    text = readFile(path);
  } catch {
    fail("VALKEY_CA_FILE", path);
  }
  if (!text.includes("-----BEGIN CERTIFICATE-----")) fail("VALKEY_CA_FILE", path);
}

const durationUnits: Record<string, number> = { ms: 1, s: 1000, m: 60_000 };

/** `30s`, `1500ms`, `1m`, `0.5s`; a bare number is seconds. */
function parseDuration(name: SettingName, raw: string, minMs: number, maxMs: number): number {
  const match = /^(\d+(?:\.\d+)?)(ms|s|m)?$/.exec(raw.trim());
  if (!match) fail(name, raw);
  const ms = Math.round(Number(match[1]) * (durationUnits[match[2] ?? "s"] ?? 1000));
  if (ms < minMs || ms > maxMs) fail(name, raw);
  return ms;
}

function parseNodes(name: SettingName, raw: string): URL[] {
  const parts = raw
    .split(",")
    .map((part) => part.trim())
    .filter(Boolean);
  if (parts.length === 0) fail(name, raw);
  return parts.map((part) => {
    let url: URL;
    try {
      url = new URL(part);
    } catch {
      fail(name, raw);
    }
    if ((url.protocol !== "redis:" && url.protocol !== "rediss:") || !url.hostname) fail(name, raw);
    return url;
  });
}

/** The number of CPUs this process may use: the cgroup CPU quota when there is one, else the CPU count. */
export function allowedCpus(
  readFile: (path: string) => string = (path) => readFileSync(path, "utf8"),
): number {
  const cpus = availableParallelism();
  const quota = (() => {
    try {
      // cgroup v2: "max 100000" or "<quota> <period>"
      const [max, period] = readFile("/sys/fs/cgroup/cpu.max").trim().split(/\s+/);
      if (max && max !== "max" && period) return Number(max) / Number(period);
    } catch {
      try {
        const max = Number(readFile("/sys/fs/cgroup/cpu/cpu.cfs_quota_us").trim());
        const period = Number(readFile("/sys/fs/cgroup/cpu/cpu.cfs_period_us").trim());
        if (max > 0 && period > 0) return max / period;
      } catch {
        // no cgroup CPU controller visible: fall back to the CPU count
      }
    }
    return undefined;
  })();
  return quota === undefined ? cpus : Math.max(1, Math.min(cpus, Math.ceil(quota)));
}

/**
 * Reads and validates the configuration. Throws {@link ConfigError} on the first bad value.
 * Empty variables count as unset. `readFile` reads VALKEY_CA_FILE (checked here, so that a
 * missing certificate is a configuration error at start rather than a failure at the first
 * decision).
 */
export function loadConfig(
  env: Record<string, string | undefined>,
  cpus: () => number = allowedCpus,
  readFile: (path: string) => string = (path) => readFileSync(path, "utf8"),
): Config {
  const read = (name: SettingName): string | undefined => {
    const value = env[name];
    return value === undefined || value.trim() === "" ? undefined : value;
  };
  const value = (name: SettingName): string => read(name) ?? settings[name].default ?? "";

  const valkeyNodes =
    read("VALKEY_NODES") === undefined ? [] : parseNodes("VALKEY_NODES", value("VALKEY_NODES"));
  const rateIntervalUs = parseInteger("SPOA_RATE_INTERVAL", value("SPOA_RATE_INTERVAL"), 1, MAX_DURATION_US);
  // τ < T would deny every request: GCRA admits floor(τ / T) at once.
  const rateBurstUs = parseInteger(
    "SPOA_RATE_BURST",
    value("SPOA_RATE_BURST"),
    rateIntervalUs,
    MAX_DURATION_US,
  );
  const ttl = read("SPOA_RATE_TTL");
  const workersRaw = read("SPOA_WORKERS");
  const workers =
    workersRaw !== undefined
      ? parseInteger("SPOA_WORKERS", workersRaw, 1, 1024)
      : valkeyNodes.length === 0
        ? 1
        : cpus();
  if (workers > 1 && valkeyNodes.length === 0) {
    // Each process would hold limits of its own: a client would get `workers` times its limit.
    throw new ConfigError(
      "SPOA_WORKERS",
      workersRaw ?? String(workers),
      "1 with the embedded store (set VALKEY_NODES to share limits across workers)",
    );
  }
  const caFile = read("VALKEY_CA_FILE")?.trim();
  if (caFile !== undefined) checkCaFile(caFile, readFile);
  const keyPrefix = value("VALKEY_KEY_PREFIX");
  if (Buffer.byteLength(keyPrefix) > 64) fail("VALKEY_KEY_PREFIX", keyPrefix);
  const sentinelName = value("VALKEY_SENTINEL_NAME").trim();
  const rulesFile = read("SPOA_RULES_FILE")?.trim();
  if (rulesFile !== undefined && !isAbsolute(rulesFile)) fail("SPOA_RULES_FILE", rulesFile);
  return {
    spoeAddress: parseAddress("SPOE_ADDR", value("SPOE_ADDR")),
    valkeyNodes,
    valkeyMode: parseChoice("VALKEY_MODE", value("VALKEY_MODE"), [
      "auto",
      "standalone",
      "cluster",
      "sentinel",
    ]),
    valkeyUsername: read("VALKEY_USERNAME"),
    valkeyPassword: read("VALKEY_PASSWORD"),
    valkeyCaFile: caFile,
    valkeySentinelName: sentinelName,
    valkeyKeyPrefix: keyPrefix,
    valkeyTimeoutMs: parseDuration("VALKEY_TIMEOUT", value("VALKEY_TIMEOUT"), 1, 60_000),
    rateIntervalUs,
    rateBurstUs,
    rateTtlSeconds: ttl === undefined ? undefined : parseInteger("SPOA_RATE_TTL", ttl, 0, MAX_TTL_SECONDS),
    failurePolicy: parseChoice("SPOA_FAILURE_POLICY", value("SPOA_FAILURE_POLICY"), [
      "open",
      "closed",
      "fallback",
    ]),
    ipv6Prefix: parseInteger("SPOA_IPV6_PREFIX", value("SPOA_IPV6_PREFIX"), 1, 128),
    workers,
    workersFromCpus: workersRaw === undefined,
    adminAddress: parseAddress("ADMIN_ADDR", value("ADMIN_ADDR")),
    drainTimeoutMs: parseDuration("DRAIN_TIMEOUT", value("DRAIN_TIMEOUT"), 0, 3_600_000),
    logLevel: parseChoice("LOG_LEVEL", value("LOG_LEVEL"), [
      "trace",
      "debug",
      "info",
      "warn",
      "error",
      "fatal",
      "silent",
    ]),
    rulesFile,
  };
}
