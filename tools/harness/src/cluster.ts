import { spawnManaged, waitFor } from "./process.ts";
import { isRunning, type RedisServer, startRedis } from "./redis.ts";
import type { RespReply } from "./resp.ts";
import { type DataServerKind, dataServers } from "./versions.ts";

export interface ClusterOptions {
  /** `valkey` (valkey-server and valkey-cli 8, the default) or `redis` (redis-server and redis-cli 7). */
  server?: DataServerKind;
  /** Number of primaries (at least 3, as `redis-cli --cluster create` requires). Default 3. */
  primaries?: number;
  /** Replicas per primary. Default 1. */
  replicasPerPrimary?: number;
  /**
   * `cluster-node-timeout` in ms: how long a node must be unreachable before it counts as
   * failing. Failover takes roughly twice this plus an election. Default 1000.
   */
  nodeTimeoutMs?: number;
  /** Password for every node (`requirepass` and `masterauth`). */
  password?: string;
  /** Extra server arguments for every node. */
  args?: string[];
  /** How long to wait for `cluster_state:ok` everywhere. Default 30 s. */
  readyTimeoutMs?: number;
}

/** One line of `CLUSTER NODES`, as seen by a live node. */
export interface ClusterNodeInfo {
  readonly id: string;
  readonly port: number;
  readonly role: "primary" | "replica";
  /** The primary's node id for a replica. */
  readonly primaryId: string | undefined;
  /** `fail`, `fail?` (pfail) or `noaddr` seen in the flags. */
  readonly failing: boolean;
  /** Slot ranges served, as `[from, to]` pairs (primaries only). */
  readonly slots: readonly (readonly [number, number])[];
}

/** A cluster of real valkey-server (or redis-server) processes on 127.0.0.1. */
export interface RedisCluster {
  /** Every node, primaries first as created (roles change after a failover). */
  readonly nodes: readonly RedisServer[];
  /** `redis://127.0.0.1:<port>` of every node, for a client's seed list. */
  readonly urls: readonly string[];
  /** The node list as a live node sees it now. */
  topology(): Promise<ClusterNodeInfo[]>;
  /** The hash slot of `key` (`CLUSTER KEYSLOT`). */
  slotOf(key: string): Promise<number>;
  /** The node currently serving `key`'s slot as primary, as a live node sees it. */
  primaryFor(key: string): Promise<RedisServer>;
  /** Nodes that are primaries now, as a live node sees it. */
  primaries(): Promise<RedisServer[]>;
  /**
   * Kills (SIGKILL) the primary serving `key` and returns it; its replica takes over after
   * `waitUntilHealthy()`. `restart()` on the returned server brings it back as a replica.
   */
  killPrimaryFor(key: string): Promise<RedisServer>;
  /**
   * Waits until every live node reports `cluster_state:ok` and all 16384 slots are served by live
   * primaries that agree on the slot map — after creation and after a failover.
   */
  waitUntilHealthy(timeoutMs?: number): Promise<void>;
  /** Stops every node and removes their directories. */
  stop(): Promise<void>;
}

const SLOTS = 16384;

function asText(reply: RespReply, what: string): string {
  if (typeof reply === "string") return reply;
  throw new Error(`unexpected reply to ${what}: ${String(reply)}`);
}

/** Parses `CLUSTER NODES` output. */
export function parseClusterNodes(text: string): ClusterNodeInfo[] {
  const nodes: ClusterNodeInfo[] = [];
  for (const line of text.split("\n")) {
    const fields = line.trim().split(" ");
    const [id, address, flags, primary] = fields;
    if (!id || !address || !flags) continue;
    const port = Number(address.split("@")[0]?.split(":").pop());
    const flagList = flags.split(",");
    const slots: [number, number][] = [];
    for (const range of fields.slice(8)) {
      if (range.startsWith("[")) continue; // slot in migration
      const [from, to] = range.split("-").map(Number);
      if (from !== undefined && Number.isInteger(from)) slots.push([from, to ?? from]);
    }
    nodes.push({
      id,
      port,
      role: flagList.includes("master") ? "primary" : "replica",
      primaryId: primary && primary !== "-" ? primary : undefined,
      failing: flagList.some((f) => f === "fail" || f === "fail?" || f === "noaddr"),
      slots,
    });
  }
  return nodes;
}

/**
 * Starts `primaries × (1 + replicasPerPrimary)` cluster-enabled servers, joins them with
 * `valkey-cli --cluster create … --cluster-yes` (redis-cli for `server: "redis"`) and waits until the cluster is healthy. On failure
 * everything started is stopped again.
 */
export async function startCluster(options: ClusterOptions = {}): Promise<RedisCluster> {
  const primaries = options.primaries ?? 3;
  const replicas = options.replicasPerPrimary ?? 1;
  if (primaries < 3) throw new RangeError("a Redis Cluster needs at least 3 primaries");
  const server = options.server ?? "valkey";
  const cli = dataServers[server].cli.path();
  const auth = options.password ? ["--requirepass", options.password, "--masterauth", options.password] : [];
  const args = [
    "--cluster-node-timeout",
    String(options.nodeTimeoutMs ?? 1000),
    ...auth,
    ...(options.args ?? []),
  ];
  const nodes: RedisServer[] = [];
  const stop = async () => {
    await Promise.all(nodes.map((node) => node.stop()));
  };
  try {
    const started = await Promise.allSettled(
      Array.from({ length: primaries * (1 + replicas) }, () => startRedis({ server, cluster: true, args })),
    );
    for (const result of started) if (result.status === "fulfilled") nodes.push(result.value);
    const failed = started.find((result) => result.status === "rejected");
    if (failed) throw failed.reason;

    const create = spawnManaged(cli, [
      ...(options.password ? ["-a", options.password, "--no-auth-warning"] : []),
      "--cluster",
      "create",
      ...nodes.map((node) => `${node.host}:${node.port}`),
      "--cluster-replicas",
      String(replicas),
      "--cluster-yes",
    ]);
    const code = await create.exited;
    if (code !== 0) throw new Error(`${cli} --cluster create failed (${code}):\n${create.output()}`);
  } catch (error) {
    await stop();
    throw error;
  }

  const byPort = new Map(nodes.map((node) => [node.port, node]));
  const liveNode = (): RedisServer => {
    const node = nodes.find(isRunning);
    if (!node) throw new Error("no cluster node is running");
    return node;
  };
  const topology = async () =>
    parseClusterNodes(asText(await liveNode().command("CLUSTER", "NODES"), "CLUSTER NODES"));
  const slotOf = async (key: string) => {
    const slot = await liveNode().command("CLUSTER", "KEYSLOT", key);
    if (typeof slot !== "number") throw new Error(`unexpected reply to CLUSTER KEYSLOT: ${String(slot)}`);
    return slot;
  };
  const primaryFor = async (key: string) => {
    const slot = await slotOf(key);
    const owner = (await topology()).find(
      (node) => node.role === "primary" && node.slots.some(([from, to]) => slot >= from && slot <= to),
    );
    const server = owner && byPort.get(owner.port);
    if (!server) throw new Error(`no primary serves slot ${slot}`);
    return server;
  };

  const healthy = async (): Promise<boolean> => {
    const live = nodes.filter(isRunning);
    const views = await Promise.all(
      live.map(async (node) => {
        const info = asText(await node.command("CLUSTER", "INFO"), "CLUSTER INFO");
        if (!/cluster_state:ok/.test(info)) return undefined;
        return parseClusterNodes(asText(await node.command("CLUSTER", "NODES"), "CLUSTER NODES"));
      }),
    );
    let reference: string | undefined;
    for (const view of views) {
      if (!view) return false;
      let covered = 0;
      const owners: string[] = [];
      for (const node of view) {
        if (node.role !== "primary" || node.slots.length === 0) continue;
        const server = byPort.get(node.port);
        if (node.failing || !server || !isRunning(server)) return false;
        for (const [from, to] of node.slots) {
          covered += to - from + 1;
          owners.push(`${from}-${to}@${node.port}`);
        }
      }
      if (covered !== SLOTS) return false;
      const signature = owners.sort().join(",");
      if (reference !== undefined && reference !== signature) return false;
      reference = signature;
    }
    return true;
  };
  const waitUntilHealthy = (timeoutMs = options.readyTimeoutMs ?? 30_000) =>
    waitFor(healthy, {
      what: "cluster_state:ok with every slot on a live primary",
      timeoutMs,
      intervalMs: 100,
    });

  const replicasSynced = async () => {
    for (const node of nodes) {
      const info = asText(await node.command("INFO", "replication"), "INFO replication");
      if (/role:slave/.test(info) && !/master_link_status:up/.test(info)) return false;
    }
    return true;
  };
  try {
    await waitUntilHealthy();
    await waitFor(replicasSynced, {
      what: "every replica in sync with its primary",
      timeoutMs: options.readyTimeoutMs ?? 30_000,
      intervalMs: 100,
    });
  } catch (error) {
    await stop();
    throw error;
  }

  return {
    nodes,
    urls: nodes.map((node) => node.url),
    topology,
    slotOf,
    primaryFor,
    async primaries() {
      const view = await topology();
      return view
        .filter((node) => node.role === "primary" && node.slots.length > 0)
        .map((node) => byPort.get(node.port))
        .filter((node): node is RedisServer => node !== undefined);
    },
    async killPrimaryFor(key) {
      const primary = await primaryFor(key);
      await primary.kill();
      return primary;
    },
    waitUntilHealthy,
    stop,
  };
}
