import { createConnection, type Socket } from "node:net";
import { type TLSSocket, connect as tlsConnect } from "node:tls";
import type { RedisOptions } from "iovalkey";
import { type ProbeOptions, withProbe } from "./probe.ts";
import type { ValkeyNode } from "./valkey-types.ts";

/** The iovalkey module, as `connection.ts` loads it. */
type Iovalkey = typeof import("iovalkey");

/** Asks `node` for its role (`ROLE`): `master`, `slave`, `sentinel`. */
function roleOf(iovalkey: Iovalkey, node: ValkeyNode, options: ProbeOptions): Promise<string> {
  return withProbe(iovalkey, node, options, async (probe) =>
    String(((await probe.call("ROLE")) as unknown[])[0]),
  );
}

/**
 * Finds the primary among `resolved.nodes`: asks every node its `ROLE` at once and takes the first
 * (in the given order) that answers `master`. Rejects with the first node's error when none is a
 * primary or none answers.
 */
export async function findPrimary(iovalkey: Iovalkey, options: ProbeOptions): Promise<ValkeyNode> {
  const nodes = options.resolved.nodes;
  const roles = await Promise.allSettled(nodes.map((node) => roleOf(iovalkey, node, options)));
  const primary = nodes.find((_, i) => {
    const role = roles[i];
    return role?.status === "fulfilled" && role.value === "master";
  });
  if (primary !== undefined) return primary;
  const failed = roles.find((role) => role.status === "rejected");
  if (failed !== undefined) throw failed.reason;
  throw new Error(
    `no primary among ${nodes.map((node) => `${node.host}:${node.port}`).join(", ")}: every node is a replica`,
  );
}

/**
 * An iovalkey connector for replication mode: every (re)connection first finds the primary among
 * the nodes (`ROLE`), then connects to it; the ready check refuses a node that is no longer the
 * primary (`role:master`), which makes iovalkey reconnect — and find the primary again. Together
 * with reconnecting on `READONLY` (a demoted primary) and on connection loss, the client follows
 * a promoted replica.
 */
export function replicationConnector(
  iovalkey: Iovalkey,
  options: ProbeOptions,
): NonNullable<RedisOptions["Connector"]> {
  const tls = options.resolved.tls;
  return class ReplicationConnector extends iovalkey.AbstractConnector {
    constructor(redisOptions: unknown) {
      super((redisOptions as RedisOptions).disconnectTimeout ?? 2000);
    }

    override check(info: { role?: string }): boolean {
      return info.role === undefined || info.role === "master";
    }

    async connect(): Promise<Socket | TLSSocket> {
      this.connecting = true;
      const primary = await findPrimary(iovalkey, options);
      if (!this.connecting) throw new Error("Connection is closed.");
      const target = { host: primary.host, port: primary.port };
      const stream = tls !== undefined ? tlsConnect({ ...tls, ...target }) : createConnection(target);
      stream.once("error", (error) => {
        this.firstError = error;
      });
      this.stream = stream;
      return stream;
    }
  };
}
