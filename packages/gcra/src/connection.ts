import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import type { ConnectionOptions as TlsOptions } from "node:tls";
import type { Cluster, ClusterOptions, Redis, RedisOptions } from "iovalkey";
import { GcraOptionError, replyCode } from "./errors.ts";
import { replicationConnector } from "./replication.ts";
import type { Resolved, ValkeyMode, ValkeyNode } from "./valkey-types.ts";

/**
 * iovalkey, loaded on the first client made rather than with this package: a process that only
 * uses the in-memory store does not pay for it (about 9 MiB of resident memory).
 */
let iovalkey: typeof import("iovalkey") | undefined;
export function iovalkeyModule(): typeof import("iovalkey") {
  iovalkey ??= createRequire(import.meta.url)("iovalkey") as typeof import("iovalkey");
  return iovalkey;
}

/** Where Valkey is and how to log in. */
export interface ValkeyConnectionOptions {
  /**
   * `redis://[user[:password]@]host[:port]`, `rediss://…` (TLS) or `host:port`. Standalone: the
   * server (only the first is used). Cluster: any subset of the nodes, as seeds. Sentinel: the
   * sentinels. Replication: the primary and its replicas, in any order. The port defaults to 6379
   * (26379 for sentinels).
   */
  readonly nodes: readonly string[];
  /**
   * `auto` (default) asks the first reachable node: a sentinel (`redis_mode:sentinel`) →
   * `sentinel`, `cluster_enabled:1` → `cluster`, otherwise `standalone` for one node and
   * `replication` for several. Detection happens in the background: the store is usable (and
   * fails over to its policy) while Valkey is unreachable. `replication` finds the primary among
   * the nodes (`ROLE`) on every (re)connection, and reconnects on `READONLY` and connection loss,
   * so it follows a replica promoted by hand or by an operator.
   */
  readonly mode?: ValkeyMode | "auto";
  /** ACL user of the data nodes (overrides one in a URL). */
  readonly username?: string;
  /** Password of the data nodes (overrides one in a URL). */
  readonly password?: string;
  /**
   * TLS options for every connection (CA, client certificate, servername, …). `rediss://` URLs
   * turn TLS on with Node's defaults; `true` does the same for plain `host:port` nodes. Node's
   * defaults trust its bundled public CAs plus any in `NODE_EXTRA_CA_CERTS`.
   */
  readonly tls?: TlsOptions | boolean;
  /**
   * Path of a PEM file holding the CA certificate(s) to trust instead of Node's defaults — a
   * private CA mounted from a secret, say. Read when connections are made; an unreadable file is
   * a `GcraOptionError` at construction. Turns TLS on. Not together with `tls.ca`.
   */
  readonly tlsCaFile?: string;
  /** Sentinel mode: the monitored primary's name (`sentinel monitor <name> …`). Required there. */
  readonly sentinelName?: string;
  /** Sentinel mode: ACL user of the sentinels, when they require one. */
  readonly sentinelUsername?: string;
  /** Sentinel mode: password of the sentinels, when they require one. */
  readonly sentinelPassword?: string;
  /** Time to establish a connection, ms. Default 2000. */
  readonly connectTimeoutMs?: number;
  /**
   * Extra iovalkey options, merged last into every connection's options (for a cluster: into
   * `redisOptions`). The store relies on its own settings for queueing and retries; change
   * those only knowingly.
   */
  readonly redisOptions?: RedisOptions;
}

/** Parses `redis://`, `rediss://` and `host:port` node addresses; throws a `GcraOptionError` on anything else. */
export function parseNode(text: string, defaultPort = 6379): ValkeyNode {
  const withScheme = /^[a-z][a-z0-9+.-]*:\/\//i.test(text) ? text : `redis://${text}`;
  let url: URL;
  try {
    url = new URL(withScheme);
  } catch {
    throw new GcraOptionError(
      `not a Valkey address: ${JSON.stringify(text)} (expected redis://host:port, rediss://… or host:port)`,
    );
  }
  if (url.protocol !== "redis:" && url.protocol !== "rediss:") {
    throw new GcraOptionError(`unsupported scheme in ${JSON.stringify(text)}: use redis:// or rediss://`);
  }
  const host = url.hostname.replace(/^\[(.*)\]$/, "$1");
  if (!host) throw new GcraOptionError(`no host in ${JSON.stringify(text)}`);
  return {
    host,
    port: url.port ? Number(url.port) : defaultPort,
    tls: url.protocol === "rediss:",
    username: url.username ? decodeURIComponent(url.username) : undefined,
    password: url.password ? decodeURIComponent(url.password) : undefined,
  };
}

/** A reconnection delay: 25 ms doubling to 1 s. Never gives up: Valkey may come back any time. */
function reconnectDelay(attempt: number): number {
  return Math.min(25 * 2 ** Math.min(attempt, 6), 1000);
}

/** The nodes, credentials and TLS options of a configuration, for `mode`. */
export function resolve(options: ValkeyConnectionOptions, mode: ValkeyMode | "auto"): Resolved {
  if (options.nodes.length === 0) throw new GcraOptionError("at least one Valkey node is required");
  const nodes = options.nodes.map((node) => parseNode(node, mode === "sentinel" ? 26379 : 6379));
  const first = nodes[0] as ValkeyNode;
  const given = typeof options.tls === "object" && options.tls !== null ? options.tls : undefined;
  const wantsTls = options.tls === true || given !== undefined || nodes.some((node) => node.tls);
  const tls = wantsTls ? (given ?? {}) : undefined;
  return {
    nodes,
    username: options.username ?? first.username,
    password: options.password ?? first.password,
    tls,
  };
}

/**
 * Reads `tlsCaFile` once into `tls.ca` (which turns TLS on), so that connections made later never
 * touch the file system. A `GcraOptionError` when the file cannot be read, holds no PEM certificate,
 * or `tls.ca` is given too.
 */
export function loadCaFile<T extends ValkeyConnectionOptions>(options: T): T {
  const path = options.tlsCaFile;
  if (path === undefined) return options;
  if (typeof path !== "string" || path === "") throw new GcraOptionError("tlsCaFile must be a file path");
  const given = typeof options.tls === "object" && options.tls !== null ? options.tls : {};
  if (given.ca !== undefined) throw new GcraOptionError("give either tlsCaFile or tls.ca, not both");
  let ca: string;
  try {
    ca = readFileSync(path, "utf8");
  } catch (error) {
    throw new GcraOptionError(`tlsCaFile: cannot read ${path}: ${(error as Error).message}`);
  }
  if (!ca.includes("-----BEGIN CERTIFICATE-----")) {
    throw new GcraOptionError(`tlsCaFile: ${path} holds no PEM certificate`);
  }
  return { ...options, tls: { ...given, ca } };
}

/** Credentials, TLS and connect timeout: what every data-node connection shares. */
function nodeOptions(options: ValkeyConnectionOptions, resolved: Resolved): RedisOptions {
  return {
    ...(resolved.username !== undefined ? { username: resolved.username } : {}),
    ...(resolved.password !== undefined ? { password: resolved.password } : {}),
    ...(resolved.tls !== undefined ? { tls: resolved.tls } : {}),
    connectTimeout: options.connectTimeoutMs ?? 2000,
    // Never resend a decision after a reconnect: it could consume a token after the caller
    // already got the failure policy's answer.
    autoResendUnfulfilledCommands: false,
    maxRetriesPerRequest: 0,
  };
}

/** Standalone and sentinel connections: reconnect forever, never queue while disconnected. */
function directOptions(options: ValkeyConnectionOptions, resolved: Resolved): RedisOptions {
  return {
    ...nodeOptions(options, resolved),
    // A decision is either answered within its deadline or given to the failure policy: the
    // store waits for "ready" itself, within the deadline, instead of queueing commands.
    enableOfflineQueue: false,
    retryStrategy: reconnectDelay,
    // A primary demoted by a failover answers writes with READONLY: reconnect to find the new one.
    reconnectOnError: (error: Error) => (replyCode(error) === "READONLY" ? 1 : false),
    // The store coalesces the writes of one connection itself (see ValkeyStoreOptions.pipelining):
    // iovalkey's auto-pipelining keeps only one batch in flight per connection.
    enableAutoPipelining: false,
    ...options.redisOptions,
  };
}

/** Validates connection options up front, so that a bad configuration fails at construction. */
export function validateConnection(options: ValkeyConnectionOptions): void {
  const mode = options.mode ?? "auto";
  if (!["auto", "standalone", "cluster", "sentinel", "replication"].includes(mode)) {
    throw new GcraOptionError(
      `mode must be auto, standalone, cluster, sentinel or replication, got ${JSON.stringify(mode)}`,
    );
  }
  if (!Array.isArray(options.nodes)) throw new GcraOptionError("nodes must be an array of Valkey addresses");
  resolve(options, mode);
  if (mode === "sentinel" && !options.sentinelName) {
    throw new GcraOptionError("sentinel mode needs sentinelName, the monitored primary's name");
  }
  const timeout = options.connectTimeoutMs;
  if (timeout !== undefined && (!Number.isFinite(timeout) || timeout <= 0)) {
    throw new GcraOptionError(`connectTimeoutMs must be finite and > 0, got ${timeout}`);
  }
}

/** Creates the iovalkey client for `mode` (connection starts at once, in the background). */
export function createClient(options: ValkeyConnectionOptions, mode: ValkeyMode): Redis | Cluster {
  const resolved = resolve(options, mode);
  const first = resolved.nodes[0] as ValkeyNode;
  const { Cluster, Redis } = iovalkeyModule();
  switch (mode) {
    case "standalone":
      return new Redis({ ...directOptions(options, resolved), host: first.host, port: first.port });
    case "replication":
      return new Redis({
        ...directOptions(options, resolved),
        // Every (re)connection finds the primary among the nodes first (ROLE).
        Connector: replicationConnector(iovalkeyModule(), {
          resolved,
          connectTimeoutMs: options.connectTimeoutMs ?? 2000,
        }),
      });
    case "sentinel": {
      if (!options.sentinelName) throw new GcraOptionError("sentinel mode needs sentinelName");
      return new Redis({
        ...directOptions(options, resolved),
        name: options.sentinelName,
        sentinels: resolved.nodes.map(({ host, port }) => ({ host, port })),
        ...(options.sentinelUsername !== undefined ? { sentinelUsername: options.sentinelUsername } : {}),
        ...(options.sentinelPassword !== undefined ? { sentinelPassword: options.sentinelPassword } : {}),
        ...(resolved.tls !== undefined ? { enableTLSForSentinelMode: true, sentinelTLS: resolved.tls } : {}),
        // Learn about a failover from the sentinels' +switch-master instead of a failing write.
        failoverDetector: true,
        sentinelRetryStrategy: reconnectDelay,
      });
    }
    case "cluster": {
      const clusterOptions: ClusterOptions = {
        // iovalkey's cluster auto-pipelining groups commands by the slot of their first argument,
        // which for EVALSHA is the script's SHA, not the key: concurrent decisions for keys on
        // different nodes would land in one pipeline, which it then rejects whole. The store
        // coalesces each node's writes itself instead.
        enableAutoPipelining: false,
        enableOfflineQueue: false,
        // Fail fast instead of retrying past the caller's deadline; the slot map is refreshed
        // periodically and after errors, and the failure policy answers meanwhile.
        retryDelayOnFailover: 0,
        retryDelayOnClusterDown: 0,
        retryDelayOnTryAgain: 0,
        maxRedirections: 4,
        slotsRefreshInterval: 2000,
        slotsRefreshTimeout: 1000,
        clusterRetryStrategy: reconnectDelay,
        // Node connections keep iovalkey's defaults otherwise: connected lazily on first use,
        // queueing only while that first connection is made, never reconnecting on their own.
        redisOptions: { ...nodeOptions(options, resolved), ...options.redisOptions },
      };
      return new Cluster(
        resolved.nodes.map(({ host, port }) => ({ host, port })),
        clusterOptions,
      );
    }
  }
}
