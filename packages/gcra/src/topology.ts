import type { Cluster, Redis } from "iovalkey";
import { createClient, iovalkeyModule, resolve, type ValkeyConnectionOptions } from "./connection.ts";
import { failureKind, GcraStoreError, toStoreError } from "./errors.ts";
import type { Incidents } from "./events.ts";
import { keySlot } from "./key-slot.ts";
import { withProbe } from "./probe.ts";
import { ALL_KEYS } from "./store.ts";
import type { ValkeyMode } from "./valkey-types.ts";

/** Least time between two slot-map refreshes triggered by errors (cluster mode), µs. */
const REFRESH_THROTTLE_US = 200_000;
/** Backoff of `auto` mode detection while no node answers, ms. */
const DETECT_DELAYS_MS = [50, 100, 200, 500, 1000, 2000];

/**
 * Asks the first reachable node what it is: a sentinel (`redis_mode:sentinel`, Valkey's
 * `server_mode:sentinel`), a cluster node (`cluster_enabled:1`), or else a standalone server —
 * or, when several nodes are given, a primary with replicas (`replication`). Tries without credentials first (sentinels
 * rarely have any), then with them when the node asks for them.
 */
export async function detectMode(options: ValkeyConnectionOptions): Promise<ValkeyMode> {
  const resolved = resolve(options, "auto");
  const connectTimeoutMs = options.connectTimeoutMs ?? 2000;
  let lastError: unknown = new Error("no Valkey node to ask");
  for (const node of resolved.nodes) {
    for (const credentials of [false, true]) {
      if (credentials && resolved.username === undefined && resolved.password === undefined) break;
      try {
        const info = await withProbe(
          iovalkeyModule(),
          node,
          { resolved, connectTimeoutMs, credentials },
          (probe) => probe.info(),
        );
        // Redis says redis_mode:sentinel, Valkey 8 server_mode:sentinel.
        if (/^(?:redis|server)_mode:sentinel/m.test(info)) return "sentinel";
        if (/cluster_enabled:1/.test(info)) return "cluster";
        // Several nodes of a plain deployment: a primary and its replicas, whichever answered.
        return resolved.nodes.length > 1 ? "replication" : "standalone";
      } catch (error) {
        lastError = error;
        if (failureKind(error) !== "auth") break;
      }
    }
  }
  throw lastError;
}

function isReady(client: Redis | Cluster): boolean {
  return client.status === "ready";
}

/** `host:port` of a node connection, as a cluster's slot map names it. */
function addressOf(node: Redis): string {
  return `${node.options.host}:${node.options.port}`;
}

/** What a {@link Topology} is made from. */
export interface TopologyOptions {
  /** The connection options (validated), unless `client` is given. */
  readonly connection?: ValkeyConnectionOptions;
  /** A ready-made client: its options are left alone and `close()` does not quit it. */
  readonly client?: Redis | Cluster;
  readonly clock: () => number;
  readonly incidents: Incidents;
  /** Called once the mode is settled. */
  readonly onMode: (mode: ValkeyMode) => void;
}

/**
 * Where the store's commands go: the deployment's mode (given, or detected in the background with
 * backoff), the iovalkey client, each cluster node's connection, the partitions (cluster shards)
 * and the connection state — with its transitions reported as incidents.
 */
export class Topology {
  readonly #clock: () => number;
  readonly #incidents: Incidents;
  readonly #onMode: (mode: ValkeyMode) => void;
  readonly #ownsClient: boolean;
  /** Cluster mode: the connection to each node, by `host:port` as the slot map names them. */
  readonly #nodes = new Map<string, Redis>();
  #client: Redis | Cluster | undefined;
  #mode: ValkeyMode | undefined;
  #connecting: Promise<void> | undefined;
  #readyWait: Promise<void> | undefined;
  #detectTimer: NodeJS.Timeout | undefined;
  /** Why the last attempt to connect (or to detect the mode) failed; cleared once ready. */
  #connectionError: Error | undefined;
  #lastRefresh = Number.NEGATIVE_INFINITY;
  #closed = false;
  /** The node named in incidents outside cluster mode. */
  readonly #name: string;

  constructor(options: TopologyOptions) {
    this.#clock = options.clock;
    this.#incidents = options.incidents;
    this.#onMode = options.onMode;
    this.#ownsClient = options.client === undefined;
    if (options.client) {
      const client = options.client;
      this.#name = client.isCluster ? "cluster" : addressOf(client as Redis);
      this.#attach(client, client.isCluster ? "cluster" : "standalone");
      return;
    }
    const connection = options.connection as ValkeyConnectionOptions;
    const mode = connection.mode ?? "auto";
    this.#name =
      mode === "sentinel" && connection.sentinelName
        ? `sentinel:${connection.sentinelName}`
        : resolve(connection, mode)
            .nodes.map((node) => `${node.host}:${node.port}`)
            .join(",");
    if (mode === "auto") this.#connecting = this.#detect(connection);
    else this.#attach(createClient(connection, mode), mode);
  }

  get mode(): ValkeyMode | undefined {
    return this.#mode;
  }

  get client(): Redis | Cluster | undefined {
    return this.#client;
  }

  /** The client, when it is connected and ready. */
  get readyClient(): Redis | Cluster | undefined {
    const client = this.#client;
    return client !== undefined && isReady(client) ? client : undefined;
  }

  /** Why the last attempt to connect failed, while not ready. */
  get connectionError(): Error | undefined {
    return this.#connectionError;
  }

  /** The primary serving `storageKey`'s slot (cluster mode, per the slot map), else {@link ALL_KEYS}. */
  partitionOf(storageKey: string): string {
    if (this.#mode !== "cluster") return ALL_KEYS;
    return this.#primaryFor(storageKey) ?? ALL_KEYS;
  }

  /** Every partition known now: the primaries serving slots in cluster mode, else {@link ALL_KEYS}. */
  partitions(): readonly string[] {
    if (this.#mode !== "cluster") return [ALL_KEYS];
    const primaries = new Set<string>();
    for (const owners of (this.#client as Cluster).slots) {
      const primary = owners?.[0];
      if (primary !== undefined) primaries.add(primary);
    }
    return primaries.size > 0 ? [...primaries] : [ALL_KEYS];
  }

  /** The node a command for `storageKey` goes to, as incidents name it. */
  nodeOf(storageKey: string): string {
    return this.#mode === "cluster" ? (this.#primaryFor(storageKey) ?? this.#name) : this.#name;
  }

  /** The connection a command for `storageKey` is written to, when it is ready for writes. */
  connectionFor(storageKey: string): Redis | undefined {
    let connection: Redis | undefined;
    if (this.#mode === "cluster") {
      const primary = this.#primaryFor(storageKey);
      connection = primary === undefined ? undefined : this.#nodes.get(primary);
    } else {
      connection = this.#client as Redis | undefined;
    }
    return connection !== undefined && isReady(connection) ? connection : undefined;
  }

  /** A promise for the next moment the client is ready (shared by all waiting calls). */
  whenReady(): Promise<void> {
    const client = this.#client;
    if (client === undefined) {
      return (this.#connecting ?? Promise.reject(new Error("no client"))).then(() => this.whenReady());
    }
    if (isReady(client)) return Promise.resolve();
    if (client.status === "end") return Promise.reject(new Error("connection ended"));
    this.#readyWait ??= new Promise<void>((resolve) => {
      client.once("ready", () => {
        this.#readyWait = undefined;
        resolve();
      });
    });
    return this.#readyWait;
  }

  /** A call failed: after a failover a cluster's slot map is stale, so ask again (throttled). */
  failed(error: GcraStoreError): void {
    if (this.#mode !== "cluster" || error.kind === "script" || error.kind === "auth") return;
    const now = this.#clock();
    const client = this.#client as Cluster | undefined;
    if (!client || now - this.#lastRefresh < REFRESH_THROTTLE_US) return;
    this.#lastRefresh = now;
    client.refreshSlotsCache();
  }

  /** Stops detection; quits the client unless it was passed in. */
  async close(): Promise<void> {
    this.#closed = true;
    clearTimeout(this.#detectTimer);
    const client = this.#client;
    if (!client || !this.#ownsClient) return;
    try {
      await client.quit();
    } catch {
      client.disconnect();
    }
  }

  #primaryFor(storageKey: string): string | undefined {
    return (this.#client as Cluster).slots[keySlot(storageKey)]?.[0];
  }

  #attach(client: Redis | Cluster, mode: ValkeyMode): void {
    this.#mode = mode;
    this.#client = client;
    if (mode === "cluster") {
      const cluster = client as Cluster;
      const add = (node: Redis) => {
        const address = addressOf(node);
        this.#nodes.set(address, node);
        if (this.#ownsClient) node.on("ready", () => this.#incidents.ready(address));
      };
      for (const node of cluster.nodes()) add(node);
      cluster.on("+node", add);
      cluster.on("-node", (node: Redis) => {
        if (this.#nodes.get(addressOf(node)) === node) this.#nodes.delete(addressOf(node));
      });
      if (this.#ownsClient) {
        cluster.on("node error", (error: Error, address: string) =>
          this.#incidents.connectionFailed(address, toStoreError(error)),
        );
      }
    }
    // Connection errors surface through the calls that fail (without a listener iovalkey would
    // print each one) and as incidents; the last one says why calls wait in vain.
    if (this.#ownsClient) {
      client.on("error", (error: Error) => {
        // iovalkey also reports the commands it drops on a disconnect; the socket's error says why.
        if (error.name === "MaxRetriesPerRequestError") return;
        this.#connectionError = error;
        this.#incidents.connectionFailed(this.#name, toStoreError(error));
      });
      client.on("ready", () => {
        this.#connectionError = undefined;
        this.#incidents.ready(this.#name);
      });
      // A server killed or restarted closes the connection before any error is seen.
      client.on("close", () => {
        if (!this.#closed) {
          this.#incidents.lost(
            this.#name,
            new GcraStoreError("connection", "the connection to Valkey closed"),
          );
        }
      });
    }
    this.#onMode(mode);
  }

  /**
   * `auto` mode: ask the nodes what they are, retrying with backoff until one answers. The
   * returned promise resolves once the client exists; it never rejects (after `close()` it stays
   * pending, and waiting calls hit their deadline).
   */
  #detect(connection: ValkeyConnectionOptions): Promise<void> {
    return new Promise<void>((attached) => {
      const attempt = (count: number) => {
        if (this.#closed) return;
        detectMode(connection).then(
          (mode) => {
            if (this.#closed) return;
            this.#attach(createClient(connection, mode), mode);
            attached();
          },
          (error: unknown) => {
            if (this.#closed) return;
            this.#connectionError = error instanceof Error ? error : new Error(String(error));
            this.#incidents.connectionFailed(this.#name, toStoreError(error));
            const delay = DETECT_DELAYS_MS[Math.min(count, DETECT_DELAYS_MS.length - 1)] as number;
            this.#detectTimer = setTimeout(() => attempt(count + 1), delay);
            this.#detectTimer.unref();
          },
        );
      };
      attempt(0);
    });
  }
}
