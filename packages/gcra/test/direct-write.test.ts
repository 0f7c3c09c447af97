import { spawnSync } from "node:child_process";
import { type RedisCluster, type RedisServer, startCluster, startRedis, waitFor } from "@spoekit/harness";
import { Redis } from "iovalkey";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { allocationArgs } from "../bench/allocation-args.ts";
import {
  GCRA_MULTI_SCRIPT_SHA,
  GcraLimit,
  type GcraRequest,
  GcraStoreError,
  type StoreEvent,
  ValkeyStore,
} from "../src/index.ts";
import { keySlot } from "../src/key-slot.ts";
import { BURST_OF_THREE, EXACT_BURST, fourInARow, freshKey, stoppableClock } from "./behaviour.ts";

// Calls on a ready connection — check's and checkAll's — are written to it directly, as
// pre-encoded RESP (see ScriptCommand); what that path hands back to the iovalkey client, and
// what it costs, is tested here.

/** Two at once, then one per 10 s. */
const TWO = new GcraLimit({ rate: 1, periodMs: 10_000, burst: 2 });
/** Five at once, then one per 10 s. */
const FIVE = new GcraLimit({ rate: 1, periodMs: 10_000, burst: 5 });

const pair = (a: string, b: string): GcraRequest[] => [
  { key: a, limit: TWO },
  { key: b, limit: FIVE },
];

const noFailures = (store: ValkeyStore) => Object.values(store.stats().failures).every((n) => n === 0);

/** Waits until a client of `node` waits in an EVALSHA (held by `CLIENT PAUSE`). */
async function untilBlocked(node: RedisServer): Promise<void> {
  await waitFor(
    async () =>
      String(await node.command("CLIENT", "LIST"))
        .split("\n")
        .some((line) => / flags=b /.test(line) && / cmd=evalsha /.test(line)),
    { what: "the call to wait on the paused server", timeoutMs: 10_000, intervalMs: 5 },
  );
}

/**
 * Pauses `node`'s writes, runs `call` until it waits there, kills the connections of `node`'s
 * clients (the store's among them), unpauses, and returns what `call` settled with.
 */
async function acrossLostConnection<T>(node: RedisServer, call: () => Promise<T>): Promise<T | unknown> {
  await node.command("CLIENT", "PAUSE", "30000", "WRITE");
  let result: Promise<T | unknown> = Promise.resolve(undefined);
  try {
    result = call().catch((error: unknown) => error);
    await untilBlocked(node);
    expect(Number(await node.command("CLIENT", "KILL", "TYPE", "normal"))).toBeGreaterThan(0);
  } finally {
    await node.command("CLIENT", "UNPAUSE");
  }
  return result;
}

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

  it("checkAll sends any key byte for byte, with each request's cost and the retention", async () => {
    const store = open({ retentionMs: 60_000 });
    expect(await store.warmUp(20_000)).toBe(true);
    const first = `ключ{é}😀 ${freshKey("utf8")}`;
    const second = freshKey("ascii");
    const limit = new GcraLimit({ emissionIntervalUs: 1_000_000, burstToleranceUs: 10_000_000 });
    const request = (cost: number): GcraRequest[] => [
      { key: first, limit, cost },
      { key: second, limit: FIVE, enforce: false },
    ];
    const allowed = await store.checkAll(request(4));
    expect(allowed.allowed).toBe(true);
    expect(allowed.decisions.map((d) => d?.remaining)).toEqual([6, 4]);
    expect((await store.checkAll(request(7))).allowed).toBe(false);
    expect(await server.command("EXISTS", store.storageKey(first), store.storageKey(second))).toBe(2);
    // The retention (60 s) outlasts the TAT (4 s ahead).
    expect(Number(await server.command("PTTL", store.storageKey(first)))).toBeGreaterThan(30_000);
  });

  it("checkAll loads its script again after SCRIPT FLUSH, for every call waiting, without a failure", async () => {
    const events: StoreEvent[] = [];
    const store = open({ onEvent: (event) => events.push(event) });
    expect(await store.warmUp(20_000)).toBe(true);
    expect((await store.checkAll(pair(freshKey("a"), freshKey("b")))).allowed).toBe(true);
    await server.command("SCRIPT", "FLUSH");
    const results = await Promise.all(
      Array.from({ length: 20 }, () => store.checkAll(pair(freshKey("a"), freshKey("b")))),
    );
    expect(results.every((r) => r.allowed && r.source === "store")).toBe(true);
    expect(noFailures(store)).toBe(true);
    expect(await server.command("SCRIPT", "EXISTS", GCRA_MULTI_SCRIPT_SHA)).toEqual([1]);
    // One reload reported for the node, however many calls met NOSCRIPT.
    expect(events.filter((e) => e.type === "script-reload")).toHaveLength(1);
  });

  it("checkAll fails a call past its deadline with kind timeout, then recovers", async () => {
    // The store's clock runs only while the server is paused: only the pause makes a call late.
    const clock = stoppableClock();
    clock.run();
    const store = open({ timeoutMs: 300, clock: clock.now });
    expect(await store.warmUp(20_000)).toBe(true);
    const failures: GcraStoreError[] = [];
    store.on("failure", (error) => failures.push(error));
    const request = pair(freshKey("late-a"), freshKey("late-b"));
    await server.command("CLIENT", "PAUSE", "30000", "WRITE");
    let error: unknown;
    try {
      error = await store.checkAll(request).catch((e: unknown) => e);
    } finally {
      clock.stop();
      await server.command("CLIENT", "UNPAUSE");
    }
    expect(error).toBeInstanceOf(GcraStoreError);
    expect(error).toMatchObject({ kind: "timeout", code: "GCRA_STORE_TIMEOUT" });
    expect(failures.map((f) => f.kind)).toEqual(["timeout"]);
    // The late call was stored once the server ran it; the next is answered.
    expect((await store.checkAll(request)).source).toBe("store");
  });

  it("checkAll fails a call whose connection was lost with kind connection, like check, and recovers", async () => {
    // Standalone, the store's connection sends nothing again once reconnected (it could be
    // past its deadline): the failure policy answers instead.
    const store = open();
    expect(await store.warmUp(20_000)).toBe(true);
    const [a, b] = [freshKey("lost-a"), freshKey("lost-b")];
    const single = await acrossLostConnection(server, () => store.check(a, TWO));
    const multi = await acrossLostConnection(server, () => store.checkAll(pair(a, b)));
    expect(single).toMatchObject({ kind: "connection" });
    expect(multi).toMatchObject({ kind: "connection" });
    expect(store.stats().failures).toMatchObject({ connection: 2, timeout: 0 });
    await waitFor(() => store.connected, {
      what: "the store to reconnect",
      timeoutMs: 10_000,
      intervalMs: 10,
    });
    expect(await store.checkAll(pair(a, b))).toMatchObject({ allowed: true, source: "store" });
  });

  it("checkAll allocates a fraction of iovalkey's command path, under twice a single check", () => {
    // The benchmark's own measurement (allocationPerDecision in bench/bench.ts).
    const child = spawnSync(process.execPath, allocationArgs("standalone", [server.url]), {
      encoding: "utf8",
      timeout: 240_000,
    });
    expect(child.stderr).toBe("");
    expect(child.status).toBe(0);
    const single = Number(/per decision \(standalone\): (\d+) B/.exec(child.stdout)?.[1]);
    const [, direct, viaClient] =
      /checkAll of 2 keys: (\d+) B written directly vs (\d+) B/.exec(child.stdout) ?? [];
    expect(single).toBeGreaterThan(0);
    expect(Number(direct)).toBeGreaterThan(0);
    expect(Number(direct)).toBeLessThan(Number(viaClient) / 3);
    expect(Number(direct)).toBeLessThan(2 * single);
  }, 300_000);
});

describe("written directly to a cluster node", () => {
  let cluster: RedisCluster;
  let store: ValkeyStore;
  beforeAll(async () => {
    cluster = await startCluster({ primaries: 3, replicasPerPrimary: 0 });
    // A deadline that covers opening a node's connection again on a busy machine.
    store = new ValkeyStore({ nodes: [...cluster.urls], mode: "cluster", timeoutMs: 5000 });
    expect(await store.warmUp(20_000)).toBe(true);
  }, 60_000);
  afterAll(async () => {
    await store?.close();
    await cluster?.stop();
  });

  /** `key` (a fresh one by default), its slot (empty), the primary serving it and another primary, with their ids. */
  async function slotToMove(key = freshKey("moving")) {
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

  it("checkAll on one slot (a hash tag) follows MOVED through the cluster client too", async () => {
    // Keys that share a hash tag share a slot: one script call decides them together.
    const tag = freshKey("tag");
    const { key: a, slot, source, target, targetId } = await slotToMove(`{${tag}}ip`);
    const b = `{${tag}}tenant`;
    expect(keySlot(store.storageKey(b))).toBe(slot);
    await assign(slot, targetId, target);
    const moved = await redirections(source, "MOVED");
    const callsBefore = store.stats().calls;
    const outcomes = [];
    for (let i = 0; i < 3; i++) outcomes.push((await store.checkAll(pair(a, b))).allowed);
    expect(outcomes).toEqual([true, true, false]);
    expect(store.stats().calls - callsBefore).toBe(3);
    expect(await redirections(source, "MOVED")).toBeGreaterThan(moved);
    expect(await target.command("EXISTS", store.storageKey(a), store.storageKey(b))).toBe(2);
    expect(noFailures(store)).toBe(true);
  });

  it("checkAll on several slots: a call per slot, retried through the client when its node's connection is lost", async () => {
    const a = freshKey("spread-a");
    const nodeOfA = await cluster.primaryFor(store.storageKey(a));
    let b = freshKey("spread-b");
    while ((await cluster.primaryFor(store.storageKey(b))).port === nodeOfA.port) b = freshKey("spread-b");
    const result = await acrossLostConnection(nodeOfA, () => store.checkAll(pair(a, b)));
    expect(result).toMatchObject({ allowed: true, source: "store" });
    // check, written directly the same way, is retried the same way.
    let c = freshKey("single");
    while ((await cluster.primaryFor(store.storageKey(c))).port !== nodeOfA.port) c = freshKey("single");
    expect(await acrossLostConnection(nodeOfA, () => store.check(c, TWO))).toMatchObject({ allowed: true });
    expect(noFailures(store)).toBe(true);
    expect(await nodeOfA.command("EXISTS", store.storageKey(a))).toBe(1);
    expect(await (await cluster.primaryFor(store.storageKey(b))).command("EXISTS", store.storageKey(b))).toBe(
      1,
    );
  });
});
