import { type RedisCluster, type RedisServer, startCluster, startRedis } from "@spoekit/harness";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createValkeyLimiter, GcraLimit, type GcraRequest, MemoryStore, ValkeyStore } from "../src/index.ts";
import { freshKey } from "./behaviour.ts";

/** Two at once, then one per 10 s. */
const TWO = new GcraLimit({ rate: 1, periodMs: 10_000, burst: 2 });
/** Five at once, then one per 10 s. */
const FIVE = new GcraLimit({ rate: 1, periodMs: 10_000, burst: 5 });

const outcomes = (decisions: readonly ({ allowed: boolean } | undefined)[]) =>
  decisions.map((d) => (d === undefined ? "-" : d.allowed ? "allow" : "deny"));

let redis: RedisServer;
let cluster: RedisCluster;
beforeAll(async () => {
  [redis, cluster] = await Promise.all([startRedis(), startCluster({ primaries: 3 })]);
}, 60_000);
afterAll(async () => {
  await Promise.all([redis?.stop(), cluster?.stop()]);
});

describe("checkAll on standalone Valkey", () => {
  it("decides all or nothing in one script call, and stores nothing on a denial", async () => {
    const store = new ValkeyStore({ nodes: [redis.url], timeoutMs: 2000 });
    const ip = freshKey("multi-ip");
    const tenant = freshKey("multi-tenant");
    const request: GcraRequest[] = [
      { key: ip, limit: TWO },
      { key: tenant, limit: FIVE },
    ];
    try {
      expect((await store.checkAll(request)).allowed).toBe(true);
      expect((await store.checkAll(request)).allowed).toBe(true);
      const tatBefore = await redis.command("GET", store.storageKey(tenant));
      const denied = await store.checkAll(request);
      expect(denied.allowed).toBe(false);
      expect(outcomes(denied.decisions)).toEqual(["deny", "allow"]);
      expect(denied.decisions[0]?.retryAfter).toBeGreaterThan(9_000_000);
      expect(await redis.command("GET", store.storageKey(tenant))).toBe(tatBefore);
      // Three calls, three script runs: one round trip per request, not one per limit.
      expect(store.stats()).toMatchObject({ calls: 3, allowed: 2, denied: 1 });
      // Keys expire at their TAT like the single-key script's.
      expect(await redis.command("PTTL", store.storageKey(ip))).toBeGreaterThan(0);
    } finally {
      await store.close();
    }
  });

  it("consumes a shadow limit only when the request passes, and reloads a flushed script", async () => {
    const store = new ValkeyStore({ nodes: [redis.url], timeoutMs: 2000 });
    const shadow = freshKey("multi-shadow");
    const one = new GcraLimit({ rate: 1, periodMs: 10_000, burst: 1 });
    const request: GcraRequest[] = [
      { key: freshKey("multi-enforced"), limit: TWO },
      { key: shadow, limit: one, enforce: false },
    ];
    try {
      expect(outcomes((await store.checkAll(request)).decisions)).toEqual(["allow", "allow"]);
      await redis.command("SCRIPT", "FLUSH");
      const second = await store.checkAll(request);
      expect(second.allowed).toBe(true);
      expect(outcomes(second.decisions)).toEqual(["allow", "deny"]);
      const tat = await redis.command("GET", store.storageKey(shadow));
      expect((await store.checkAll(request)).allowed).toBe(false);
      expect(await redis.command("GET", store.storageKey(shadow))).toBe(tat);
    } finally {
      await store.close();
    }
  });

  it("goes through the deny cache and the failure policy of the limiter", async () => {
    const limiter = createValkeyLimiter({ nodes: [redis.url], timeoutMs: 2000 });
    const request: GcraRequest[] = [
      { key: freshKey("limiter-ip"), limit: TWO },
      { key: freshKey("limiter-tenant"), limit: FIVE },
    ];
    try {
      for (let i = 0; i < 3; i++) await limiter.checkAll(request);
      const cached = await limiter.checkAll(request);
      expect(cached).toMatchObject({ allowed: false, source: "deny-cache" });
      expect(limiter.stats().decisions["deny-cache"]).toBe(1);
      expect(limiter.valkey.stats().calls).toBe(3);
    } finally {
      await limiter.close();
    }
  });
});

/**
 * A run of calls whose keys repeat within a call (a key named twice or three times, passing and
 * denied), with costs above 1 and a shadow request, on fresh keys. With 10 s per unit the
 * milliseconds between calls change no decision: the script must decide exactly as `decideAll`
 * (the memory store, at a standing clock).
 */
async function agreesWithDecideAll(store: ValkeyStore): Promise<void> {
  const a = freshKey("twin-a");
  const b = freshKey("twin-b");
  const calls: GcraRequest[][] = [
    [
      { key: a, limit: FIVE },
      { key: a, limit: FIVE, cost: 2 },
      { key: b, limit: TWO },
    ],
    [
      { key: a, limit: FIVE, cost: 3 },
      { key: a, limit: FIVE },
      { key: b, limit: TWO, enforce: false },
    ],
    [
      { key: b, limit: TWO, cost: 2 },
      { key: a, limit: FIVE, enforce: false },
      { key: b, limit: TWO },
    ],
    [
      { key: a, limit: FIVE, enforce: false },
      { key: b, limit: TWO },
      { key: a, limit: FIVE },
    ],
    [{ key: b, limit: TWO }],
    // The key's stored TAT is the one its last passing request left.
    [{ key: a, limit: FIVE }],
  ];
  const memory = new MemoryStore({ clock: () => 1_000_000 });
  const shape = (d: { allowed: boolean; remaining: number } | undefined) => [d?.allowed, d?.remaining];
  for (const call of calls) {
    const expected = memory.decideAll(call);
    const actual = await store.checkAll(call);
    expect(actual.allowed, JSON.stringify(call)).toBe(expected.allowed);
    expect(actual.decisions.map(shape), JSON.stringify(call)).toEqual(expected.decisions.map(shape));
  }
}

describe("the multi-key script against decideAll, its twin", () => {
  it("standalone: keys named several times, costs, shadow requests; the retention keeps a key", async () => {
    const store = new ValkeyStore({ nodes: [redis.url], timeoutMs: 2000, retentionMs: 3_600_000 });
    try {
      await agreesWithDecideAll(store);
      const key = freshKey("retained");
      await store.checkAll([{ key, limit: TWO }]);
      expect(await redis.command("PTTL", store.storageKey(key))).toBeGreaterThan(3_500_000);
    } finally {
      await store.close();
    }
  });

  it("cluster, one slot", async () => {
    const store = new ValkeyStore({ nodes: [...cluster.urls], keyPrefix: "{twin}:", timeoutMs: 2000 });
    try {
      await store.warmUp(5000);
      await agreesWithDecideAll(store);
    } finally {
      await store.close();
    }
  });
});

describe("checkAll on a Valkey cluster", () => {
  it("is all or nothing in one call when a hash tag in the prefix pins the keys to one slot", async () => {
    const store = new ValkeyStore({ nodes: [...cluster.urls], keyPrefix: "{rl}:", timeoutMs: 2000 });
    const ip = freshKey("tagged-ip");
    const tenant = freshKey("tagged-tenant");
    const request: GcraRequest[] = [
      { key: ip, limit: TWO },
      { key: tenant, limit: FIVE },
    ];
    try {
      await store.warmUp(5000);
      const callsBefore = store.stats().calls;
      expect(await cluster.slotOf(store.storageKey(ip))).toBe(await cluster.slotOf(store.storageKey(tenant)));
      await store.checkAll(request);
      await store.checkAll(request);
      const node = await cluster.primaryFor(store.storageKey(tenant));
      const tat = await node.command("GET", store.storageKey(tenant));
      expect((await store.checkAll(request)).allowed).toBe(false);
      expect(await node.command("GET", store.storageKey(tenant))).toBe(tat);
      expect(store.stats().calls - callsBefore).toBe(3);
    } finally {
      await store.close();
    }
  });

  it("without a shared slot: one call per slot, each all or nothing, a slot that allows consumes", async () => {
    const store = new ValkeyStore({ nodes: [...cluster.urls], timeoutMs: 2000 });
    // Two keys on different slots (the prefix holds no hash tag: each key hashes whole).
    const ip = freshKey("slot-ip");
    let tenant = freshKey("slot-tenant");
    while (
      (await cluster.slotOf(store.storageKey(tenant))) === (await cluster.slotOf(store.storageKey(ip)))
    ) {
      tenant = freshKey("slot-tenant");
    }
    const request: GcraRequest[] = [
      { key: ip, limit: TWO },
      { key: tenant, limit: FIVE },
    ];
    try {
      await store.warmUp(5000);
      const callsBefore = store.stats().calls;
      await store.checkAll(request);
      await store.checkAll(request);
      const denied = await store.checkAll(request);
      expect(denied.allowed).toBe(false);
      expect(outcomes(denied.decisions)).toEqual(["deny", "allow"]);
      expect(store.stats().calls - callsBefore).toBe(6);
      // The tenant's slot allowed its part and consumed it: 3 of its 5 are gone.
      const left = await store.check(tenant, FIVE, 0);
      expect(left.remaining).toBe(2);
    } finally {
      await store.close();
    }
  });
});
