import { type RedisCluster, startCluster } from "@spoekit/harness";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type GcraDecision, GcraLimit, ValkeyStore } from "../src/index.ts";
import {
  decideThroughFailover,
  describeValkeyBehaviour,
  expectFailoverBridged,
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
    const limit = new GcraLimit({ rate: 10, burst: 10 });
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
        RangeError,
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

describe("cluster shards", () => {
  /** Three of cost 1 pass at one instant, the fourth is denied. */
  const limit = new GcraLimit({ emissionIntervalUs: 10_000_000, burstToleranceUs: 30_000_000 });
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

  async function burst(check: (key: string) => Promise<GcraDecision>, key: string): Promise<string[]> {
    const answers: string[] = [];
    for (let i = 0; i < 4; i++) {
      const { allowed, source } = await check(key);
      answers.push(`${allowed ? "allowed" : "denied"} by ${source}`);
    }
    return answers;
  }
  const exact = ["allowed by store", "allowed by store", "allowed by store", "denied by store"];

  it("decides concurrently for keys on every shard", async () => {
    const store = new ValkeyStore({ nodes: [...cluster.urls], mode: "cluster", timeoutMs: 2000 });
    try {
      const keys = [...(await keysByShard(8)).values()].flat();
      const answers = await Promise.all(keys.map((key) => burst((k) => store.check(k, limit), key)));
      expect(answers).toEqual(keys.map(() => exact));
    } finally {
      await store.close();
    }
  });
});
