import { type RedisCluster, type RedisServer, startCluster, waitFor } from "@spoekit/harness";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createValkeyLimiter, GcraOptionError, type PolicyMode, ValkeyStore } from "../src/index.ts";
import {
  BURST_OF_THREE,
  decideThroughFailover,
  describeValkeyBehaviour,
  EXACT_BURST,
  expectFailoverBridged,
  fourInARow,
  freshKey,
} from "./behaviour.ts";

let cluster: RedisCluster;
beforeAll(async () => {
  cluster = await startCluster({
    primaries: 3,
    replicasPerPrimary: 1,
    nodeTimeoutMs: 1000,
    // Shards that are up keep serving while another has no live primary (see the README).
    args: ["--cluster-require-full-coverage", "no"],
  });
}, 60_000);
afterAll(async () => {
  await cluster?.stop();
});

describeValkeyBehaviour(() => ({
  mode: "cluster",
  // A seed list of one node: the client discovers the others.
  connection: () => ({ nodes: [cluster.urls[0] as string], mode: "cluster" }),
  command: async (key, ...args) => (await cluster.primaryFor(key)).command(...args),
  onPrimaries: async (...args) => {
    await Promise.all((await cluster.primaries()).map((node) => node.command(...args)));
  },
}));

describe("cluster only", () => {
  it("spreads keys over every shard by the key alone, or by a hash tag when asked", async () => {
    const store = new ValkeyStore({ nodes: [...cluster.urls], mode: "cluster", timeoutMs: 2000 });
    const tagged = new ValkeyStore({
      nodes: [...cluster.urls],
      mode: "cluster",
      timeoutMs: 2000,
      hashTag: true,
      keyPrefix: "rl:",
    });
    // Keys that live 10 s: each is looked for after its call, however slow the machine is.
    const limit = BURST_OF_THREE;
    try {
      const owners = new Set<number>();
      for (let i = 0; i < 30; i++) {
        const key = `10.0.0.${i}`;
        await store.check(key, limit);
        const owner = await cluster.primaryFor(store.storageKey(key));
        expect(await owner.command("EXISTS", store.storageKey(key))).toBe(1);
        owners.add(owner.port);
      }
      expect(owners.size).toBe(3);
      // With hashTag the slot is the caller's key's own: other keys tagged {10.1.2.3} share it.
      const key = "10.1.2.3";
      expect(tagged.storageKey(key)).toBe("rl:{10.1.2.3}");
      await tagged.check(key, limit);
      expect(await cluster.slotOf(tagged.storageKey(key))).toBe(await cluster.slotOf(key));
      expect(() => new ValkeyStore({ nodes: [...cluster.urls], hashTag: true, keyPrefix: "{x}:" })).toThrow(
        GcraOptionError,
      );
    } finally {
      await store.close();
      await tagged.close();
    }
  });

  it("keeps deciding while the primary holding the key fails over", async () => {
    const key = freshKey("failover");
    const storageKey = `gcra:${key}`;
    const result = await decideThroughFailover(
      { nodes: [...cluster.urls], mode: "cluster" },
      key,
      async () => {
        await cluster.killPrimaryFor(storageKey);
        await cluster.waitUntilHealthy(30_000);
      },
    );
    expectFailoverBridged(result);
  }, 60_000);
});

describe("cluster shards fail independently", () => {
  const prefix = "gcra:";

  /** Fresh keys, `perShard` for each primary, grouped by the primary's port. */
  async function keysByShard(perShard: number): Promise<Map<number, string[]>> {
    const primaries = await cluster.primaries();
    const byShard = new Map<number, string[]>(primaries.map((node) => [node.port, []]));
    while ([...byShard.values()].some((keys) => keys.length < perShard)) {
      const key = freshKey("shard");
      const keys = byShard.get((await cluster.primaryFor(prefix + key)).port);
      if (keys && keys.length < perShard) keys.push(key);
    }
    return byShard;
  }

  it("decides concurrently for keys on every shard", async () => {
    const store = new ValkeyStore({ nodes: [...cluster.urls], mode: "cluster", timeoutMs: 2000 });
    try {
      const keys = [...(await keysByShard(8)).values()].flat();
      const answers = await Promise.all(keys.map((key) => fourInARow(store, key)));
      expect(answers).toEqual(keys.map(() => EXACT_BURST));
      expect(new Set(keys.map((key) => store.partitionOf(key))).size).toBe(3);
      expect([...store.partitions()].sort()).toEqual(
        (await cluster.primaries()).map((node) => `127.0.0.1:${node.port}`).sort(),
      );
    } finally {
      await store.close();
    }
  });

  it("denies only a dead shard's keys under closed, keeps exact decisions elsewhere, and resumes", async () => {
    // A shard whose replica runs; the replica must not take over until the test says so.
    const view = await cluster.topology();
    const live = new Map(
      cluster.nodes.filter((node) => view.some((v) => v.port === node.port)).map((n) => [n.port, n]),
    );
    const victimInfo = view.find(
      (node) =>
        node.role === "primary" &&
        node.slots.length > 0 &&
        view.some((r) => r.primaryId === node.id && !r.failing && live.get(r.port) !== undefined),
    );
    const replicaInfo = view.find((node) => node.primaryId === victimInfo?.id && !node.failing);
    const victim = victimInfo && live.get(victimInfo.port);
    const replica = replicaInfo && live.get(replicaInfo.port);
    if (!victim || !replica) throw new Error("no shard with a live replica");
    await replica.command("CONFIG", "SET", "cluster-replica-no-failover", "yes");

    const limiter = createValkeyLimiter({
      nodes: [...cluster.urls],
      mode: "cluster",
      timeoutMs: 300,
      failurePolicy: "closed",
      probeDelayMs: 25,
      maxProbeDelayMs: 200,
      denyCacheMaxKeys: false,
    });
    const modes: PolicyMode[] = [];
    const partitions: string[] = [];
    const probed = new Set<string>();
    limiter.policy.on("mode", (mode) => modes.push(mode));
    limiter.policy.on("partition", (partition, mode) => partitions.push(`${partition} ${mode}`));
    limiter.policy.on("probe", (_ok, _error, partition) => probed.add(partition));
    const dead = `127.0.0.1:${victim.port}`;
    let killed: RedisServer | undefined;
    try {
      expect(await limiter.warmUp(20_000)).toBe(true);
      const warm = await keysByShard(1);
      for (const [key] of warm.values()) await limiter.check(key as string, BURST_OF_THREE);
      expect(limiter.stats()).toMatchObject({ healthy: true, ready: true, partitions: 3, failing: [] });

      await victim.kill();
      killed = victim;
      const during = async () => {
        const shards = await keysByShard(4);
        const results = await Promise.all(
          [...shards].flatMap(([port, keys]) =>
            keys.map(async (key) => ({
              dead: port === victim.port,
              answers: await fourInARow(limiter, key),
            })),
          ),
        );
        for (const { dead: onDeadShard, answers } of results) {
          expect(answers).toEqual(onDeadShard ? Array(4).fill("denied by closed") : EXACT_BURST);
        }
        expect(limiter.stats()).toMatchObject({ mode: "closed", healthy: false, ready: true, partitions: 3 });
        expect(limiter.stats().failing.map((f) => f.partition)).toEqual([dead]);
      };
      await during();
      // Once the cluster flags the primary as failed, the other shards still serve.
      await waitFor(
        async () => (await cluster.topology()).some((node) => node.port === victim.port && node.failing),
        { what: "the cluster to flag the killed primary", timeoutMs: 10_000, intervalMs: 50 },
      );
      await during();
      expect([...probed]).toEqual([dead]);
      expect(limiter.stats().failing[0]?.probes).toBeGreaterThan(0);

      // Promote the replica: the dead shard's keys get Valkey's decisions again.
      await replica.command("CLUSTER", "FAILOVER", "TAKEOVER");
      await cluster.waitUntilHealthy(30_000);
      await waitFor(() => limiter.policy.healthy, {
        what: "the limiter to use every shard again",
        timeoutMs: 10_000,
      });
      const after = [...(await keysByShard(2)).values()].flat();
      expect(await Promise.all(after.map((key) => fourInARow(limiter, key)))).toEqual(
        after.map(() => EXACT_BURST),
      );
      expect(limiter.stats()).toMatchObject({
        mode: "store",
        healthy: true,
        ready: true,
        failing: [],
        trips: 1,
      });
      expect(modes).toEqual(["closed", "store"]);
      expect(partitions).toEqual([`${dead} closed`, `${dead} store`]);
    } finally {
      await limiter.close();
      await replica.command("CONFIG", "SET", "cluster-replica-no-failover", "no");
      // The old primary rejoins as the new primary's replica.
      await killed?.restart();
      await cluster.waitUntilHealthy(30_000);
    }
  }, 60_000);
});
