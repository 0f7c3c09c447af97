/**
 * Every environment variable the agent reads: names, defaults, accepted forms and meaning. The
 * one source of truth that the app, its README and the deployment tests all read.
 */

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

/**
 * The seed agent's variable names, still read when the new name is unset, each with a deprecation
 * line in the banner. `RUST_LOG`'s levels map to pino's (`off` is `silent`); of a directive list
 * such as `warn,haproxy_spoe=debug` the most verbose level counts.
 */
export const deprecatedAliases = {
  TOKIO_WORKER_THREADS: "SPOA_WORKERS",
  RUST_LOG: "LOG_LEVEL",
} as const satisfies Record<string, SettingName>;

/** The admin server's paths, for the app and for probes in manifests. */
export const adminPaths = {
  startup: "/startz",
  liveness: "/healthz",
  readiness: "/readyz",
  metrics: "/metrics",
} as const;

/** Default ports, as exposed by the container. */
export const defaultPorts = { spop: 9000, admin: 9090 } as const;
