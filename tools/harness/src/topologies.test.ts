import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type RedisCluster, type SentinelTopology, startCluster, startSentinel } from "./index.ts";

describe("startCluster", () => {
  let cluster: RedisCluster;
  beforeAll(async () => {
    cluster = await startCluster({ primaries: 3, replicasPerPrimary: 1 });
  }, 60_000);
  afterAll(async () => {
    await cluster?.stop();
  });

  it("creates 3 primaries with one replica each, sharing all slots", async () => {
    const view = await cluster.topology();
    const primaries = view.filter((node) => node.role === "primary");
    expect(primaries).toHaveLength(3);
    expect(view.filter((node) => node.role === "replica")).toHaveLength(3);
    const served = primaries
      .flatMap((node) => node.slots)
      .reduce((sum, [from, to]) => sum + to - from + 1, 0);
    expect(served).toBe(16384);
    for (const replica of view.filter((node) => node.role === "replica")) {
      expect(primaries.map((node) => node.id)).toContain(replica.primaryId);
    }
  });

  it("finds the primary owning a key's slot and fails over when it is killed", async () => {
    const key = "harness:failover";
    const owner = await cluster.primaryFor(key);
    expect(await owner.command("SET", key, "1")).toBe("OK");
    const others = cluster.nodes.filter((node) => node !== owner);
    const moved = await others[0]?.command("GET", key);
    // Any other node either redirects (primary) or is a replica that redirects too.
    expect(moved).toBeInstanceOf(Error);
    expect(String(moved)).toMatch(/MOVED \d+ 127\.0\.0\.1:\d+/);

    const killed = await cluster.killPrimaryFor(key);
    expect(killed).toBe(owner);
    await cluster.waitUntilHealthy(30_000);
    const promoted = await cluster.primaryFor(key);
    expect(promoted).not.toBe(killed);
    expect(await promoted.command("SET", key, "2")).toBe("OK");
    expect(await cluster.primaries()).toHaveLength(3);
  }, 60_000);
});

describe("startSentinel", () => {
  let topology: SentinelTopology;
  beforeAll(async () => {
    topology = await startSentinel({ replicas: 1, sentinels: 3 });
  }, 60_000);
  afterAll(async () => {
    await topology?.stop();
  });

  it("starts a primary, a replica and 3 sentinels that agree on the primary", async () => {
    expect(topology.sentinels).toHaveLength(3);
    expect(topology.data).toHaveLength(2);
    expect(await topology.primary()).toBe(topology.data[0]);
    expect(await topology.waitForPrimary()).toBe(topology.data[0]);
  });

  it("promotes the replica after the primary is killed", async () => {
    const primary = await topology.primary();
    expect(await primary.command("SET", "harness:sentinel", "1")).toBe("OK");
    const killed = await topology.killPrimary();
    expect(killed).toBe(primary);
    const promoted = await topology.waitForPrimary(killed, 30_000);
    expect(promoted).toBe(topology.data[1]);
    expect(await promoted.command("SET", "harness:sentinel", "2")).toBe("OK");
  }, 60_000);
});
