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
    "auto, standalone, replication, cluster or sentinel",
    "topology (auto: asks the first node that answers; replication: a primary and replicas without sentinels)",
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
  HAPROXY_PROCESSING_TIMEOUT: setting(
    "HAPROXY_PROCESSING_TIMEOUT",
    "100ms",
    "a duration such as 100ms or 0.1s (2ms to 60s)",
    "the `timeout processing` of HAProxy's spoe-agent section: how long HAProxy waits for a verdict",
  ),
  VALKEY_TIMEOUT: setting(
    "VALKEY_TIMEOUT",
    undefined,
    "a duration such as 60ms or 0.06s (1ms to 60s)",
    "deadline of one store call; past it the failure policy answers (unset: 60 % of HAPROXY_PROCESSING_TIMEOUT)",
  ),
  VALKEY_CIRCUIT_FAILURES: setting(
    "VALKEY_CIRCUIT_FAILURES",
    "5",
    "a whole number from 1 to 1000000",
    "consecutive failed calls that open a shard's circuit (the failure policy answers for it); calls late in one event-loop turn count once",
  ),
  VALKEY_CIRCUIT_RATIO: setting(
    "VALKEY_CIRCUIT_RATIO",
    "0.5",
    "a number above 0 and at most 1",
    "share of failed calls over VALKEY_CIRCUIT_WINDOW that opens a shard's circuit",
  ),
  VALKEY_CIRCUIT_WINDOW: setting(
    "VALKEY_CIRCUIT_WINDOW",
    "10s",
    "a duration such as 10s or 500ms (10ms to 1h)",
    "the sliding window of VALKEY_CIRCUIT_RATIO",
  ),
  VALKEY_CIRCUIT_MIN_CALLS: setting(
    "VALKEY_CIRCUIT_MIN_CALLS",
    "20",
    "a whole number from 1 to 1000000",
    "least calls in the window before VALKEY_CIRCUIT_RATIO counts",
  ),
  VALKEY_PROBE_DELAY: setting(
    "VALKEY_PROBE_DELAY",
    "50ms",
    "a duration such as 50ms (1ms to VALKEY_PROBE_MAX_DELAY)",
    "first half-open probe after a circuit opens; doubles (±20 % jitter) while probes fail",
  ),
  VALKEY_PROBE_MAX_DELAY: setting(
    "VALKEY_PROBE_MAX_DELAY",
    "2s",
    "a duration such as 2s (1ms to 10m)",
    "longest delay between half-open probes: Valkey decides again at most this long after it is back",
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
  SPOA_MAX_CONNECTIONS: setting(
    "SPOA_MAX_CONNECTIONS",
    "1024",
    "a whole number from 1 to 1000000",
    "SPOP connections held at once per process; one more is refused (AGENT-DISCONNECT status 13)",
  ),
  SPOA_MAX_BUFFERED_BYTES: setting(
    "SPOA_MAX_BUFFERED_BYTES",
    "96KiB",
    "a size such as 98304, 96KiB or 1MiB (16KiB to 1GiB)",
    "bytes received and not yet decoded one connection may hold; beyond it: AGENT-DISCONNECT status 13",
  ),
  SPOA_MAX_TOTAL_BUFFERED_BYTES: setting(
    "SPOA_MAX_TOTAL_BUFFERED_BYTES",
    "16MiB",
    "a size such as 16MiB (SPOA_MAX_BUFFERED_BYTES to 1GiB)",
    "the same, all connections of a process together; the connection going beyond it is closed",
  ),
  SPOA_HELLO_TIMEOUT: setting(
    "SPOA_HELLO_TIMEOUT",
    "5s",
    "a duration such as 5s or 500ms (1ms to 10m)",
    "idle before HELLO: a connection without HAPROXY-HELLO this long after accept is closed",
  ),
  SPOA_IDLE_TIMEOUT: setting(
    "SPOA_IDLE_TIMEOUT",
    "120s",
    "a duration such as 120s or 2m (1s to 1h)",
    "idle after HELLO: a connection without a byte either way and nothing in flight this long is closed",
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
    "graceful shutdown deadline, DRAIN_DELAY included",
  ),
  DRAIN_DELAY: setting(
    "DRAIN_DELAY",
    "5s",
    "a duration such as 5s or 500ms, 0 or less than DRAIN_TIMEOUT",
    "after SIGTERM, how long the agent keeps serving with /readyz at 503 before it stops accepting",
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
