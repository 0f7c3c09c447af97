import { type RedisCluster, type RedisServer, startCluster, startRedis } from "@spoekit/harness";
import { Redis } from "iovalkey";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { GcraLimit, GcraStoreError, ValkeyStore } from "../src/index.ts";
import { keySlot } from "../src/key-slot.ts";
import { BURST_OF_THREE, EXACT_BURST, fourInARow, freshKey } from "./behaviour.ts";

// Decisions on a ready connection are written to it directly, as pre-encoded RESP (see
// ScriptCommand); what that path hands back to the iovalkey client is tested here.

describe("written directly to a standalone server", () => {
  let server: RedisServer;
  const stores: ValkeyStore[] = [];
  const open = (options: Partial<ConstructorParameters<typeof ValkeyStore>[0]> = {}) => {
    const store = new ValkeyStore({ nodes: [server.url], mode: "standalone", timeoutMs: 2000, ...options });
    stores.push(store);
    return store;
  };
  beforeAll(async () => {
    server = await startRedis();
  });
  afterAll(async () => {
    await Promise.all(stores.map((store) => store.close()));
    await server?.stop();
  });

  it("sends any key byte for byte, with the cost and the retention", async () => {
    const store = open({ retentionMs: 60_000 });
    expect(await store.warmUp(20_000)).toBe(true);
    const key = `ключ{é}😀 ${freshKey("utf8")}`;
    const limit = new GcraLimit({ emissionIntervalUs: 1_000_000, burstToleranceUs: 10_000_000 });
    expect(await store.check(key, limit, 4)).toMatchObject({ allowed: true, remaining: 6, source: "store" });
    expect(await store.check(key, limit, 7)).toMatchObject({ allowed: false, source: "store" });
    expect(await server.command("EXISTS", store.storageKey(key))).toBe(1);
    // The retention (60 s) outlasts the TAT (4 s ahead).
    expect(Number(await server.command("PTTL", store.storageKey(key)))).toBeGreaterThan(30_000);
  });

  it("reports an error reply of the script with its kind and reply code", async () => {
    const store = open();
    expect(await store.warmUp(20_000)).toBe(true);
    const key = freshKey("wrongtype");
    await server.command("HSET", store.storageKey(key), "field", "1");
    const error = await store.check(key, BURST_OF_THREE).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(GcraStoreError);
    expect(error).toMatchObject({ kind: "script", reply: "WRONGTYPE" });
    expect(store.stats().failures.script).toBe(1);
  });

  it("leaves a client with a key prefix of its own to iovalkey, which prefixes the keys", async () => {
    const client = new Redis({ host: server.host, port: server.port, keyPrefix: "app:" });
    try {
      const store = new ValkeyStore({ client, timeoutMs: 2000 });
      stores.push(store);
      expect(await store.warmUp(20_000)).toBe(true);
      const key = freshKey("prefixed");
      expect(await fourInARow(store, key)).toEqual(EXACT_BURST);
      expect(await server.command("EXISTS", `app:gcra:${key}`)).toBe(1);
      expect(await server.command("EXISTS", `gcra:${key}`)).toBe(0);
    } finally {
      client.disconnect();
    }
  });
});

describe("written directly to a cluster node", () => {
  let cluster: RedisCluster;
  let store: ValkeyStore;
  beforeAll(async () => {
    cluster = await startCluster({ primaries: 3, replicasPerPrimary: 0 });
    store = new ValkeyStore({ nodes: [...cluster.urls], mode: "cluster", timeoutMs: 2000 });
    expect(await store.warmUp(20_000)).toBe(true);
  }, 60_000);
  afterAll(async () => {
    await store?.close();
    await cluster?.stop();
  });

  /** A fresh key, its slot (empty), the primary serving it and another primary, with their ids. */
  async function slotToMove() {
    const key = freshKey("moving");
    const storageKey = store.storageKey(key);
    const slot = keySlot(storageKey);
    const source = await cluster.primaryFor(storageKey);
    expect(await source.command("CLUSTER", "COUNTKEYSINSLOT", String(slot))).toBe(0);
    const nodes = await cluster.topology();
    const idOf = (server: RedisServer) => nodes.find((node) => node.port === server.port)?.id as string;
    const target = (await cluster.primaries()).find((node) => node.port !== source.port) as RedisServer;
    return { key, storageKey, slot, source, target, sourceId: idOf(source), targetId: idOf(target) };
  }

  /** Redirections of `kind` a node has answered so far (`INFO errorstats`). */
  async function redirections(node: RedisServer, kind: "MOVED" | "ASK"): Promise<number> {
    const info = String(await node.command("INFO", "errorstats"));
    return Number(new RegExp(`errorstat_${kind}:count=(\\d+)`).exec(info)?.[1] ?? 0);
  }

  /** Hands an empty slot to `targetId` on every node. */
  async function assign(slot: number, targetId: string, first: RedisServer): Promise<void> {
    expect(await first.command("CLUSTER", "SETSLOT", String(slot), "NODE", targetId)).toBe("OK");
    for (const node of await cluster.primaries()) {
      if (node.port !== first.port) await node.command("CLUSTER", "SETSLOT", String(slot), "NODE", targetId);
    }
  }

  it("follows a MOVED redirection through the cluster client while its slot map is stale", async () => {
    const { key, storageKey, slot, source, target, targetId } = await slotToMove();
    expect(store.partitionOf(key)).toBe(`127.0.0.1:${source.port}`);
    await assign(slot, targetId, target);
    const moved = await redirections(source, "MOVED");
    expect(await fourInARow(store, key)).toEqual(EXACT_BURST);
    expect(await redirections(source, "MOVED")).toBeGreaterThan(moved);
    expect(await target.command("EXISTS", storageKey)).toBe(1);
    expect(Object.values(store.stats().failures).every((n) => n === 0)).toBe(true);
  });

  it("follows an ASK redirection while the slot migrates", async () => {
    const { key, slot, source, target, sourceId, targetId } = await slotToMove();
    await target.command("CLUSTER", "SETSLOT", String(slot), "IMPORTING", sourceId);
    await source.command("CLUSTER", "SETSLOT", String(slot), "MIGRATING", targetId);
    try {
      const decision = await store.check(key, BURST_OF_THREE);
      expect(decision).toMatchObject({ allowed: true, remaining: 2, source: "store" });
      // Asked for a key it does not hold, the source sent the call to the target, which stored it.
      expect(await redirections(source, "ASK")).toBeGreaterThan(0);
      expect(await target.command("CLUSTER", "COUNTKEYSINSLOT", String(slot))).toBe(1);
      expect(await source.command("CLUSTER", "COUNTKEYSINSLOT", String(slot))).toBe(0);
      expect(Object.values(store.stats().failures).every((n) => n === 0)).toBe(true);
    } finally {
      await assign(slot, targetId, target);
    }
  });
});
