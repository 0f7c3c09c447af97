import { readFileSync } from "node:fs";
import { isAbsolute } from "node:path";
import { MAX_DURATION_US } from "@spoekit/gcra";
import { type ListenOptions, parseListenAddress } from "@spoekit/spoe-agent";
import {
  type CircuitConfig,
  type ConnectionLimits,
  circuitConfig,
  connectionLimits,
  deadlines,
  drainTimes,
} from "./config-groups.ts";
import { allowedCpus } from "./cpus.ts";
import { deprecatedAliases, type SettingName, settings } from "./settings.ts";
import { type Alias, ConfigError, fail, parseChoice, parseInteger, type Source } from "./values.ts";

export type { CircuitConfig, ConnectionLimits } from "./config-groups.ts";
export { answerMarginMs, DEADLINE_SHARE, deadlineConflict } from "./config-groups.ts";
export { ConfigError } from "./values.ts";

/**
 * The agent's configuration, read from the environment and checked against {@link settings}
 * (settings.ts: the one source of truth for variable names, defaults and accepted forms).
 */

export type ValkeyMode = "auto" | "standalone" | "replication" | "cluster" | "sentinel";
export type FailurePolicy = "open" | "closed" | "fallback";
export type LogLevel = "trace" | "debug" | "info" | "warn" | "error" | "fatal" | "silent";

export interface Config {
  /** As spoe-agent parses `host:port` or `unix:/path`; always with a host, a port from 1, an absolute path. */
  spoeAddress: ListenOptions;
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
  /** HAProxy's `timeout processing`, ms, as HAPROXY_PROCESSING_TIMEOUT says it is. */
  processingTimeoutMs: number;
  /** Per-call deadline for the store, ms; past it the failure policy answers. */
  valkeyTimeoutMs: number;
  /** True when VALKEY_TIMEOUT was unset and derived from the processing timeout. */
  valkeyTimeoutDerived: boolean;
  /** When a shard's circuit opens and how it probes (VALKEY_CIRCUIT_*, VALKEY_PROBE_*). */
  circuit: CircuitConfig;
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
  /** What one process holds at most (SPOA_MAX_*, SPOA_*_TIMEOUT). */
  connections: ConnectionLimits;
  adminAddress: ListenOptions;
  drainTimeoutMs: number;
  /** After SIGTERM, how long the agent serves on with `/readyz` at 503, ms. */
  drainDelayMs: number;
  logLevel: LogLevel;
  /** One line per deprecated variable name read (the seed's), for the banner. */
  deprecations: string[];
  /** The rules file (YAML or JSON); undefined: one per-IP rule from SPOA_RATE_INTERVAL/BURST. */
  rulesFile: string | undefined;
}

const rustLogLevels = ["off", "error", "warn", "info", "debug", "trace"] as const;
const RUST_LOG_ACCEPTED = "off, error, warn, info, debug or trace, or target=level directives";

/** The pino level for a RUST_LOG value (`warn`, `haproxy_spoe=debug`, `info,hyper=warn`). */
function parseRustLog(raw: string): LogLevel {
  let most = -1;
  for (const directive of raw.split(",")) {
    const text = directive.trim();
    if (text === "") continue;
    const level = text.slice(text.indexOf("=") + 1).toLowerCase();
    const index = (rustLogLevels as readonly string[]).indexOf(level);
    if (index < 0) throw new ConfigError("RUST_LOG", raw, RUST_LOG_ACCEPTED);
    most = Math.max(most, index);
  }
  if (most < 0) throw new ConfigError("RUST_LOG", raw, RUST_LOG_ACCEPTED);
  const level = rustLogLevels[most] ?? "off";
  return level === "off" ? "silent" : level;
}

/**
 * spoe-agent's listen-address parser, stricter: a host always (the banner and the probes say
 * where), a port from 1, an absolute socket path.
 */
function parseAddress(name: SettingName, raw: string): ListenOptions {
  let options: ListenOptions;
  try {
    options = parseListenAddress(raw.trim());
  } catch (error) {
    throw new ConfigError(name, raw, settings[name].accepted, { cause: error });
  }
  const usable =
    "path" in options ? isAbsolute(options.path) : options.host !== undefined && options.port >= 1;
  if (!usable) fail(name, raw);
  return options;
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
  const read = (name: Source): string | undefined => {
    const value = env[name];
    return value === undefined || value.trim() === "" ? undefined : value;
  };
  const value = (name: SettingName): string => read(name) ?? settings[name].default ?? "";
  const deprecations: string[] = [];
  /** Where a setting comes from: its own name, else a deprecated alias that is set. */
  const sourceOf = (name: SettingName): Source => {
    for (const [alias, setting] of Object.entries(deprecatedAliases) as [Alias, SettingName][]) {
      if (setting !== name || read(alias) === undefined) continue;
      if (read(name) !== undefined) {
        deprecations.push(`${alias} is ignored: ${name} is set (the seed's name; remove it)`);
        return name;
      }
      deprecations.push(`${alias}=${read(alias)} is read as ${name} (the seed's name; rename it)`);
      return alias;
    }
    return name;
  };

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
  const workersSource = sourceOf("SPOA_WORKERS");
  const workersRaw = read(workersSource);
  const workers =
    workersRaw !== undefined
      ? parseInteger(workersSource, workersRaw, 1, 1024)
      : valkeyNodes.length === 0
        ? 1
        : cpus();
  if (workers > 1 && valkeyNodes.length === 0) {
    // Each process would hold limits of its own: a client would get `workers` times its limit.
    throw new ConfigError(
      workersSource,
      workersRaw ?? String(workers),
      "1 with the embedded store (set VALKEY_NODES to share limits across workers)",
    );
  }
  const logLevel =
    sourceOf("LOG_LEVEL") === "RUST_LOG"
      ? parseRustLog(read("RUST_LOG") ?? "")
      : parseChoice("LOG_LEVEL", value("LOG_LEVEL"), [
          "trace",
          "debug",
          "info",
          "warn",
          "error",
          "fatal",
          "silent",
        ]);
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
      "replication",
      "cluster",
      "sentinel",
    ]),
    valkeyUsername: read("VALKEY_USERNAME"),
    valkeyPassword: read("VALKEY_PASSWORD"),
    valkeyCaFile: caFile,
    valkeySentinelName: sentinelName,
    valkeyKeyPrefix: keyPrefix,
    ...deadlines(value, read),
    circuit: circuitConfig(value),
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
    connections: connectionLimits(value),
    adminAddress: parseAddress("ADMIN_ADDR", value("ADMIN_ADDR")),
    ...drainTimes(value, read),
    logLevel,
    deprecations,
    rulesFile,
  };
}
