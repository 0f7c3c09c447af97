import { waitFor } from "./process.ts";
import { isRunning, type RedisServer, startRedis } from "./redis.ts";
import type { RespReply } from "./resp.ts";
import type { DataServerKind } from "./versions.ts";

export interface SentinelOptions {
  /** `valkey` (valkey-server 8, the default) or `redis` (redis-server 7), for every process. */
  server?: DataServerKind;
  /** The monitored primary's name (`sentinel monitor <name> …`). Default `spoekit-primary`. */
  name?: string;
  /** Replicas of the primary. Default 1. */
  replicas?: number;
  /** Sentinel processes. Default 3. */
  sentinels?: number;
  /** Sentinels that must agree the primary is down. Default: a majority. */
  quorum?: number;
  /** `down-after-milliseconds`: silence before a sentinel suspects the primary. Default 1000. */
  downAfterMs?: number;
  /** `failover-timeout` in ms. Default 5000. */
  failoverTimeoutMs?: number;
  /** Password of the data nodes (`requirepass`, `masterauth`, and `auth-pass` for the sentinels). */
  password?: string;
  /** Extra server arguments for the data nodes. */
  args?: string[];
  /** How long to wait until every sentinel sees every replica and every other sentinel. Default 30 s. */
  readyTimeoutMs?: number;
}

/** A primary with replicas, watched by sentinels; every process a real valkey-server (or redis-server) on 127.0.0.1. */
export interface SentinelTopology {
  /** The monitored primary's name, for a client's `name` option. */
  readonly name: string;
  /** Data nodes: the initial primary first, then its replicas (roles change after a failover). */
  readonly data: readonly RedisServer[];
  /** The sentinel processes (`valkey-server --sentinel`, or redis-server). */
  readonly sentinels: readonly RedisServer[];
  /** `{ host, port }` of every sentinel, for a client's `sentinels` option. */
  readonly sentinelAddresses: readonly { host: string; port: number }[];
  /** The data node the sentinels currently name as primary. */
  primary(): Promise<RedisServer>;
  /** Kills (SIGKILL) the current primary and returns it; the sentinels then fail over. */
  killPrimary(): Promise<RedisServer>;
  /**
   * Waits until every live sentinel names the same primary, other than `previous` when given,
   * and that node reports `role:master`; returns it.
   */
  waitForPrimary(previous?: RedisServer, timeoutMs?: number): Promise<RedisServer>;
  /** Stops every process and removes their directories. */
  stop(): Promise<void>;
}

/** Turns a flat `[field, value, …]` reply (as `SENTINEL MASTER` gives) into a record. */
function fields(reply: RespReply): Record<string, string> {
  const record: Record<string, string> = {};
  if (!Array.isArray(reply)) return record;
  for (let i = 0; i + 1 < reply.length; i += 2) record[String(reply[i])] = String(reply[i + 1]);
  return record;
}

/**
 * Starts a primary, its replicas and sentinels monitoring it, and waits until every sentinel
 * knows every replica and every other sentinel (so that a failover can be agreed on). With the
 * defaults a killed primary is replaced within a few seconds. On failure everything started is
 * stopped again.
 */
export async function startSentinel(options: SentinelOptions = {}): Promise<SentinelTopology> {
  const name = options.name ?? "spoekit-primary";
  const server = options.server ?? "valkey";
  const replicaCount = options.replicas ?? 1;
  const sentinelCount = options.sentinels ?? 3;
  const quorum = options.quorum ?? Math.floor(sentinelCount / 2) + 1;
  const auth = options.password ? ["--requirepass", options.password, "--masterauth", options.password] : [];
  const dataArgs = [...auth, ...(options.args ?? [])];
  const data: RedisServer[] = [];
  const sentinels: RedisServer[] = [];
  const stop = async () => {
    await Promise.all([...sentinels, ...data].map((server) => server.stop()));
  };
  const byPort = new Map<number, RedisServer>();

  try {
    const primary = await startRedis({ server, args: dataArgs });
    data.push(primary);
    const replicas = await Promise.allSettled(
      Array.from({ length: replicaCount }, () =>
        startRedis({ server, args: [...dataArgs, "--replicaof", primary.host, String(primary.port)] }),
      ),
    );
    for (const result of replicas) if (result.status === "fulfilled") data.push(result.value);
    const failedReplica = replicas.find((result) => result.status === "rejected");
    if (failedReplica) throw failedReplica.reason;
    for (const server of data) byPort.set(server.port, server);

    const config = [
      `sentinel monitor ${name} ${primary.host} ${primary.port} ${quorum}`,
      `sentinel down-after-milliseconds ${name} ${options.downAfterMs ?? 1000}`,
      `sentinel failover-timeout ${name} ${options.failoverTimeoutMs ?? 5000}`,
      `sentinel parallel-syncs ${name} 1`,
      ...(options.password ? [`sentinel auth-pass ${name} ${options.password}`] : []),
      "",
    ].join("\n");
    const started = await Promise.allSettled(
      Array.from({ length: sentinelCount }, () => startRedis({ server, config, sentinel: true })),
    );
    for (const result of started) if (result.status === "fulfilled") sentinels.push(result.value);
    const failedSentinel = started.find((result) => result.status === "rejected");
    if (failedSentinel) throw failedSentinel.reason;

    await waitFor(
      async () => {
        for (const sentinel of sentinels) {
          const state = fields(await sentinel.command("SENTINEL", "MASTER", name));
          if (Number(state["num-slaves"]) < replicaCount) return false;
          if (Number(state["num-other-sentinels"]) < sentinelCount - 1) return false;
        }
        for (const replica of data.slice(1)) {
          const info = await replica.command("INFO", "replication");
          if (typeof info !== "string" || !/master_link_status:up/.test(info)) return false;
        }
        return true;
      },
      {
        what: `${sentinelCount} sentinels that see ${replicaCount} replica(s) and each other`,
        timeoutMs: options.readyTimeoutMs ?? 30_000,
        intervalMs: 100,
      },
    );
  } catch (error) {
    await stop();
    throw error;
  }

  const namedPrimary = async (sentinel: RedisServer): Promise<RedisServer | undefined> => {
    const reply = await sentinel.command("SENTINEL", "GET-MASTER-ADDR-BY-NAME", name);
    if (!Array.isArray(reply)) return undefined;
    return byPort.get(Number(reply[1]));
  };
  const primary = async () => {
    for (const sentinel of sentinels.filter(isRunning)) {
      const server = await namedPrimary(sentinel);
      if (server) return server;
    }
    throw new Error(`no live sentinel names a primary for ${name}`);
  };

  return {
    name,
    data,
    sentinels,
    sentinelAddresses: sentinels.map((sentinel) => ({ host: sentinel.host, port: sentinel.port })),
    primary,
    async killPrimary() {
      const current = await primary();
      await current.kill();
      return current;
    },
    async waitForPrimary(previous, timeoutMs = 30_000) {
      let agreed: RedisServer | undefined;
      await waitFor(
        async () => {
          const named = await Promise.all(sentinels.filter(isRunning).map(namedPrimary));
          const first = named[0];
          if (!first || first === previous || !isRunning(first)) return false;
          if (named.some((server) => server !== first)) return false;
          const role = await first.command("ROLE");
          if (!Array.isArray(role) || role[0] !== "master") return false;
          agreed = first;
          return true;
        },
        { what: `sentinels agreeing on a live primary for ${name}`, timeoutMs, intervalMs: 100 },
      );
      if (!agreed) throw new Error(`no primary agreed on for ${name}`);
      return agreed;
    },
    stop,
  };
}
