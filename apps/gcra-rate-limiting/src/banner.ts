import { readFileSync } from "node:fs";
import type { ListenOptions } from "@spoekit/spoe-agent";
import { type Config, DEADLINE_SHARE } from "./config.ts";
import { type SettingName, settings } from "./settings.ts";

/** The app's version, from its package.json (beside `src/` and `dist/` alike). */
export const version: string = (() => {
  try {
    const manifest = JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8"));
    return typeof manifest.version === "string" ? manifest.version : "unknown";
  } catch {
    return "unknown";
  }
})();

/** `host:port`, `[v6]:port` or `unix:/path`: as SPOE_ADDR and ADMIN_ADDR are written. */
export function formatAddress(address: ListenOptions): string {
  if ("path" in address) return `unix:${address.path}`;
  const host = address.host ?? "";
  return host.includes(":") ? `[${host}]:${address.port}` : `${host}:${address.port}`;
}

function formatDuration(ms: number): string {
  if (ms !== 0 && ms % 60_000 === 0) return `${ms / 60_000}m`;
  if (ms % 1000 === 0) return `${ms / 1000}s`;
  return `${ms}ms`;
}

/** Bytes in the largest binary unit that divides them: `16MiB`, `96KiB`, `1000`. */
function formatBytes(bytes: number): string {
  for (const [unit, size] of [
    ["GiB", 1024 ** 3],
    ["MiB", 1024 ** 2],
    ["KiB", 1024],
  ] as const) {
    if (bytes % size === 0) return `${bytes / size}${unit}`;
  }
  return String(bytes);
}

/** A number with at most three decimals, without trailing zeros. */
function decimal(value: number): string {
  return String(Math.round(value * 1000) / 1000);
}

/** Why the worker count is what it is. */
export function workersReason(config: Config): string {
  if (!config.workersFromCpus) return "SPOA_WORKERS";
  return config.valkeyNodes.length === 0 ? "embedded store" : "CPUs allowed";
}

/** A node URL with its password hidden. */
export function redacted(url: URL): string {
  if (!url.password) return url.href;
  const copy = new URL(url.href);
  copy.password = "***";
  return copy.href;
}

/**
 * The start-up banner: where the agent listens and every effective setting, one per line, with
 * the rate in requests per second and the burst in requests (as the seed's agent prints them).
 * Secrets are shown as set or unset only.
 */
export function banner(config: Config): string {
  const embedded = config.valkeyNodes.length === 0;
  const intervalUs = config.rateIntervalUs;
  const { circuit } = config;
  const values: Partial<Record<SettingName, string>> = {
    SPOE_ADDR: formatAddress(config.spoeAddress),
    VALKEY_NODES: embedded ? "(unset: embedded in-memory store)" : config.valkeyNodes.map(redacted).join(","),
    SPOA_RATE_INTERVAL: `${intervalUs}µs (= ${decimal(1_000_000 / intervalUs)} req/s)`,
    SPOA_RATE_BURST: `${config.rateBurstUs}µs (= ${Math.floor(config.rateBurstUs / intervalUs)} req burst)`,
    SPOA_RATE_TTL:
      config.rateTtlSeconds === undefined ? "(unset: keys expire at their TAT)" : `${config.rateTtlSeconds}s`,
    SPOA_FAILURE_POLICY: embedded ? `${config.failurePolicy} (unused: embedded store)` : config.failurePolicy,
    SPOA_IPV6_PREFIX: `/${config.ipv6Prefix}`,
    SPOA_WORKERS: `${config.workers} (${workersReason(config)})`,
    SPOA_MAX_CONNECTIONS: String(config.connections.maxConnections),
    SPOA_MAX_BUFFERED_BYTES: formatBytes(config.connections.maxBufferedBytes),
    SPOA_MAX_TOTAL_BUFFERED_BYTES: formatBytes(config.connections.maxTotalBufferedBytes),
    SPOA_HELLO_TIMEOUT: formatDuration(config.connections.helloTimeoutMs),
    SPOA_IDLE_TIMEOUT: formatDuration(config.connections.idleTimeoutMs),
    ADMIN_ADDR: formatAddress(config.adminAddress),
    DRAIN_TIMEOUT: formatDuration(config.drainTimeoutMs),
    DRAIN_DELAY: formatDuration(config.drainDelayMs),
    LOG_LEVEL: config.logLevel,
  };
  if (config.rulesFile !== undefined) values.SPOA_RULES_FILE = config.rulesFile;
  if (!embedded) {
    Object.assign(values, {
      VALKEY_MODE: config.valkeyMode,
      VALKEY_USERNAME: config.valkeyUsername ?? "(unset)",
      VALKEY_PASSWORD: config.valkeyPassword === undefined ? "(unset)" : "(set)",
      VALKEY_CA_FILE: config.valkeyCaFile ?? "(unset: Node's CAs)",
      ...(config.valkeyMode === "sentinel" || config.valkeyMode === "auto"
        ? { VALKEY_SENTINEL_NAME: config.valkeySentinelName }
        : {}),
      VALKEY_KEY_PREFIX: config.valkeyKeyPrefix,
      HAPROXY_PROCESSING_TIMEOUT: formatDuration(config.processingTimeoutMs),
      VALKEY_TIMEOUT: config.valkeyTimeoutDerived
        ? `${formatDuration(config.valkeyTimeoutMs)} (${DEADLINE_SHARE * 100} % of HAPROXY_PROCESSING_TIMEOUT)`
        : formatDuration(config.valkeyTimeoutMs),
      VALKEY_CIRCUIT_FAILURES: `${circuit.failureThreshold} in a row`,
      VALKEY_CIRCUIT_RATIO: String(circuit.failureRatio),
      VALKEY_CIRCUIT_WINDOW: formatDuration(circuit.ratioWindowMs),
      VALKEY_CIRCUIT_MIN_CALLS: String(circuit.ratioMinCalls),
      VALKEY_PROBE_DELAY: formatDuration(circuit.probeDelayMs),
      VALKEY_PROBE_MAX_DELAY: formatDuration(circuit.maxProbeDelayMs),
    } satisfies Partial<Record<SettingName, string>>);
  }
  const names = (Object.keys(settings) as SettingName[]).filter((name) => values[name] !== undefined);
  const width = Math.max(...names.map((name) => name.length));
  const store = embedded
    ? "embedded in-memory (limits are per process)"
    : `Valkey (${config.valkeyMode}), failure policy ${config.failurePolicy}`;
  return [
    `gcra-rate-limiting ${version} listening on ${formatAddress(config.spoeAddress)} (SPOP), admin on ${formatAddress(config.adminAddress)}`,
    ...names.map((name) => `  ${name.padEnd(width)} : ${values[name]}`),
    `  ${"store".padEnd(width)} : ${store}`,
    ...config.deprecations.map((line) => `  ${"deprecated".padEnd(width)} : ${line}`),
  ].join("\n");
}
