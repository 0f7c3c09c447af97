import { freePort, type RedisServer, startRedis, waitFor } from "@spoekit/harness";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  createValkeyLimiter,
  GcraLimit,
  type PolicyMode,
  type StoreEvent,
  ValkeyStore,
} from "../src/index.ts";
import { addLimiterUser, describeValkeyBehaviour, freshKey } from "./behaviour.ts";

let redis: RedisServer;
beforeAll(async () => {
  redis = await startRedis();
}, 30_000);
afterAll(async () => {
  await redis?.stop();
});

describeValkeyBehaviour(() => ({
  mode: "standalone",
  connection: () => ({ nodes: [redis.url], mode: "standalone" }),
  command: (_key, ...args) => redis.command(...args),
  onPrimaries: async (...args) => {
    await redis.command(...args);
  },
}));

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe("standalone only", () => {
  it("logs in as an ACL user, and reports a wrong password as kind auth", async () => {
    await addLimiterUser(redis);
    const limit = new GcraLimit({ rate: 10, burst: 5 });
    const url = `redis://limiter:s3cret@127.0.0.1:${redis.port}`;
    const store = new ValkeyStore({ nodes: [url], timeoutMs: 2000 });
    try {
      expect(await store.check(freshKey("acl"), limit)).toMatchObject({ allowed: true, source: "store" });
      expect(store.mode).toBe("standalone");
      // The ACL user may touch gcra:* only: another prefix is refused with kind auth.
      const outside = new ValkeyStore({
        nodes: [url],
        mode: "standalone",
        keyPrefix: "other:",
        timeoutMs: 2000,
      });
      const refused = await outside.check("k", limit).catch((e: unknown) => e);
      await outside.close();
      expect(refused).toMatchObject({ kind: "auth", code: "GCRA_STORE_AUTH", reply: "NOPERM" });
    } finally {
      await store.close();
    }
    const events: StoreEvent[] = [];
    const wrong = createValkeyLimiter({
      nodes: [`redis://limiter:wrong@127.0.0.1:${redis.port}`],
      mode: "standalone",
      timeoutMs: 200,
      failurePolicy: "closed",
      failureThreshold: 1,
      onEvent: (event) => events.push(event),
    });
    try {
      const answer = await wrong.check(freshKey("acl"), limit);
      expect(answer).toMatchObject({ allowed: false, source: "closed" });
      expect(wrong.stats().mode).toBe("closed");
      // The password is refused on every reconnection; the transition is reported once.
      await wrong.check(freshKey("acl"), limit);
      expect(events.filter((event) => event.type === "auth-failure")).toEqual([
        expect.objectContaining({
          node: `127.0.0.1:${redis.port}`,
          error: expect.objectContaining({ reply: "WRONGPASS", code: "GCRA_STORE_AUTH" }),
        }),
      ]);
      expect(events.map((event) => event.type)).not.toContain("recovered");
    } finally {
      await wrong.close();
    }
  });

  it("holds the GCRA bound exactly under 4 connections hammering one key", async () => {
    const limit = new GcraLimit({ emissionIntervalUs: 10_000, burstToleranceUs: 200_000 });
    const key = freshKey("hammer");
    const stores = Array.from(
      { length: 4 },
      () => new ValkeyStore({ nodes: [redis.url], mode: "standalone", timeoutMs: 5000 }),
    );
    const serverTime = async () => {
      const [s, us] = (await redis.command("TIME")) as string[];
      return Number(s) * 1_000_000 + Number(us);
    };
    const T = limit.emissionIntervalUs;
    try {
      const start = await serverTime();
      const end = performance.now() + 3000;
      let allowed = 0;
      let denied = 0;
      /** Denials that came while the key had room: capacity the store lost. */
      let wrongDenials = 0;
      await Promise.all(
        stores.flatMap((store) =>
          Array.from({ length: 16 }, async () => {
            while (performance.now() < end) {
              const decision = await store.check(key, limit);
              if (decision.allowed) {
                allowed++;
              } else {
                denied++;
                // Denied ⇔ tat + T − now > τ: then retryAfter = tat + T − τ − now > 0 and the
                // TAT runs more than τ − T ahead.
                if (decision.retryAfter <= 0 || decision.resetAfter <= limit.burstToleranceUs - T)
                  wrongDenials++;
              }
            }
          }),
        ),
      );
      const finish = await serverTime();
      // Upper bound (safety): every admitted request lies in [start, finish].
      expect(allowed).toBeLessThanOrEqual(Math.floor((finish - start + limit.burstToleranceUs) / T));
      // No lost capacity: the store denied only requests that had no room, each by its own reply
      // (how many the clients managed to send is the machine's business, not the store's).
      expect(wrongDenials).toBe(0);
      expect(denied).toBeGreaterThan(allowed);
      // Atomicity: every admitted request advanced the stored TAT by T — had two admissions
      // advanced it once, the TAT would lie less than allowed × T past the first admission, which
      // came after start. (It lies more when the clients left the key idle for a while.)
      const tat = Number(await redis.command("GET", `gcra:${key}`));
      expect(tat - allowed * T).toBeGreaterThanOrEqual(start);
      expect(tat - allowed * T).toBeLessThanOrEqual(finish);
    } finally {
      await Promise.all(stores.map((s) => s.close()));
    }
  }, 20_000);
});

describe("failure policies", () => {
  it("starts while Valkey is down, falls back, and switches back once it is up", async () => {
    const port = await freePort();
    const limit = new GcraLimit({ emissionIntervalUs: 1_000_000, burstToleranceUs: 3_000_000 });
    const limiter = createValkeyLimiter({
      nodes: [`redis://127.0.0.1:${port}`],
      timeoutMs: 100,
      failurePolicy: "fallback",
      failureThreshold: 1,
      probeDelayMs: 20,
      maxProbeDelayMs: 100,
    });
    const modes: PolicyMode[] = [];
    limiter.policy.on("mode", (mode) => modes.push(mode));
    let late: RedisServer | undefined;
    try {
      const key = freshKey("down");
      const answers = [];
      for (let i = 0; i < 4; i++) answers.push(await limiter.check(key, limit));
      // The per-process store enforces the same limit while Valkey is away.
      expect(answers.map((a) => [a.allowed, a.source])).toEqual([
        [true, "fallback"],
        [true, "fallback"],
        [true, "fallback"],
        [false, "fallback"],
      ]);
      expect(limiter.stats()).toMatchObject({ mode: "fallback", healthy: false, valkeyMode: undefined });
      late = await startRedis({ port });
      await waitFor(() => limiter.policy.healthy, {
        timeoutMs: 10_000,
        what: "the limiter to use Valkey again",
      });
      expect(await limiter.check(freshKey("up"), limit)).toMatchObject({ allowed: true, source: "store" });
      expect(modes).toEqual(["fallback", "store"]);
      const stats = limiter.stats();
      expect(stats.valkeyMode).toBe("standalone");
      expect(stats.trips).toBe(1);
      expect(stats.decisions.fallback).toBe(4);
      expect(stats.failures.timeout + stats.failures.connection).toBeGreaterThan(0);
    } finally {
      await limiter.close();
      await late?.stop();
    }
  });

  it("warms up in vain while Valkey is down: false once the budget is spent", async () => {
    const store = new ValkeyStore({ nodes: [`redis://127.0.0.1:${await freePort()}`], timeoutMs: 2000 });
    try {
      expect(await store.warmUp(150)).toBe(false);
      expect(store.stats()).toMatchObject({ connected: false, allowed: 0, denied: 0 });
      await expect(store.warmUp(Number.NaN)).rejects.toMatchObject({ code: "GCRA_INVALID_OPTION" });
    } finally {
      await store.close();
    }
  });

  it("answers open or closed while Valkey is killed, and recovers after a restart (NOSCRIPT included)", async () => {
    const own = await startRedis();
    const limit = new GcraLimit({ rate: 100, burst: 20 });
    const events: StoreEvent[] = [];
    const closedEvents: StoreEvent[] = [];
    const open = createValkeyLimiter({
      nodes: [own.url],
      timeoutMs: 100,
      failurePolicy: "open",
      failureThreshold: 1,
      probeDelayMs: 20,
      onEvent: (event) => events.push(event),
    });
    const closed = createValkeyLimiter({
      nodes: [own.url],
      timeoutMs: 100,
      failurePolicy: "closed",
      failureThreshold: 1,
      probeDelayMs: 20,
      onEvent: (event) => closedEvents.push(event),
    });
    try {
      // Connected and the script loaded: the first calls do not race their 100 ms deadline.
      expect(await Promise.all([open.warmUp(20_000), closed.warmUp(20_000)])).toEqual([true, true]);
      expect((await open.check("a", limit)).source).toBe("store");
      expect((await closed.check("a", limit)).source).toBe("store");
      await own.kill();
      expect(await open.check("a", limit)).toMatchObject({ allowed: true, source: "open" });
      expect(await closed.check("a", limit)).toMatchObject({
        allowed: false,
        source: "closed",
        retryAfter: 1_000_000,
      });
      expect(open.policy.mode).toBe("open");
      expect(closed.stats().healthy).toBe(false);
      // One partition, failing: closed denies everything (not ready), open still serves.
      expect(closed.stats()).toMatchObject({ ready: false, partitions: 1, failing: [{ partition: "*" }] });
      expect(open.stats()).toMatchObject({ ready: true, healthy: false });
      await own.restart(); // an empty script cache: the first call meets NOSCRIPT
      await waitFor(() => open.policy.healthy && closed.policy.healthy, {
        timeoutMs: 10_000,
        what: "recovery",
      });
      expect(await open.check("b", limit)).toMatchObject({ allowed: true, source: "store" });
      expect(await closed.check("b", limit)).toMatchObject({ allowed: true, source: "store" });
      expect(open.valkey.stats().failures.script).toBe(0);
      // One event per transition, in each one's order: lost then back, circuit open then closed;
      // the script sent again at most once per limiter (both, when their probes cross).
      const transitions = events.filter((event) => event.type !== "error").map((event) => event.type);
      const reloads = (list: StoreEvent[]) => list.filter((event) => event.type === "script-reload");
      expect(reloads(events).length).toBeLessThanOrEqual(1);
      expect(reloads(closedEvents).length).toBeLessThanOrEqual(1);
      expect([...reloads(events), ...reloads(closedEvents)]).toContainEqual({
        type: "script-reload",
        node: `127.0.0.1:${own.port}`,
      });
      expect(transitions.filter((type) => type !== "script-reload").sort()).toEqual([
        "circuit-closed",
        "circuit-open",
        "recovered",
        "unreachable",
      ]);
      expect(transitions.indexOf("unreachable")).toBeLessThan(transitions.indexOf("recovered"));
      expect(transitions.indexOf("circuit-open")).toBeLessThan(transitions.indexOf("circuit-closed"));
      expect(closed.stats()).toMatchObject({ ready: true, healthy: true, failing: [] });
    } finally {
      await open.close();
      await closed.close();
      await own.stop();
    }
  });

  it("answers a denied key from the deny cache until its retryAfter, without calling Valkey", async () => {
    const limiter = createValkeyLimiter({ nodes: [redis.url], timeoutMs: 2000 });
    // The whole burst in one call, then one more: denied unless half a second passed between.
    const limit = new GcraLimit({ emissionIntervalUs: 500_000, burstToleranceUs: 1_000_000 });
    try {
      const key = freshKey("cache");
      await limiter.check(key, limit, 2);
      const denied = await limiter.check(key, limit);
      expect(denied).toMatchObject({ allowed: false, source: "store" });
      const calls = limiter.valkey.stats().calls;
      const cached = await limiter.check(key, limit);
      expect(cached).toMatchObject({ allowed: false, source: "deny-cache", remaining: 0 });
      expect(cached.retryAfter).toBeLessThanOrEqual(denied.retryAfter);
      expect(limiter.valkey.stats().calls).toBe(calls);
      await sleep(denied.retryAfter / 1000 + 2);
      expect(await limiter.check(key, limit)).toMatchObject({ allowed: true, source: "store" });
      expect(limiter.stats().decisions["deny-cache"]).toBe(1);
    } finally {
      await limiter.close();
    }
  });
});
