import { type DataServerKind, dataServers, type RespReply } from "@spoekit/harness";
import { afterAll, describe, expect, it } from "vitest";
import {
  createValkeyLimiter,
  GCRA_SCRIPT_SHA,
  type GcraDecision,
  GcraInputError,
  GcraLimit,
  GcraOptionError,
  GcraStoreError,
  type StoreEvent,
  type ValkeyMode,
  ValkeyStore,
  type ValkeyStoreOptions,
} from "../src/index.ts";

/** What a topology offers the shared behavioural suite. */
export interface Topology {
  /** How the suite's stores connect (nodes, mode, credentials). */
  readonly connection: () => ValkeyStoreOptions;
  /** The mode `auto` must detect. */
  readonly mode: ValkeyMode;
  /** Runs a command on the primary that holds `storageKey`. */
  command(storageKey: string, ...args: string[]): Promise<RespReply>;
  /** Runs a command on every primary. */
  onPrimaries(...args: string[]): Promise<void>;
}

/**
 * Creates the ACL user `limiter` (password `s3cret`) with only what the store needs: its keys
 * (`gcra:*`), the script commands, the commands the script runs, and mode detection.
 */
export async function addLimiterUser(
  server: { command(...args: string[]): Promise<RespReply> },
  ...extra: string[]
): Promise<void> {
  const rules = ["~gcra:*", "+evalsha", "+eval", "+info", "+ping", "+time", "+get", "+set", ...extra];
  expect(await server.command("ACL", "SETUSER", "limiter", "on", ">s3cret", ...rules)).toBe("OK");
}

/** Three requests of cost 1 pass at one instant, the fourth is denied (and retries after ~10 s). */
export const BURST_OF_THREE = new GcraLimit({ emissionIntervalUs: 10_000_000, burstToleranceUs: 30_000_000 });
/** What {@link fourInARow} gives when Valkey decides exactly. */
export const EXACT_BURST = ["allowed by store", "allowed by store", "allowed by store", "denied by store"];

/** Four checks of `key` against {@link BURST_OF_THREE}, one after the other, as "allowed by store" etc. */
export async function fourInARow(
  store: { check(key: string, limit: GcraLimit): Promise<GcraDecision> },
  key: string,
): Promise<string[]> {
  const answers: string[] = [];
  for (let i = 0; i < 4; i++) {
    const { allowed, source } = await store.check(key, BURST_OF_THREE);
    answers.push(`${allowed ? "allowed" : "denied"} by ${source}`);
  }
  return answers;
}

let serial = 0;
/** A key no other test uses. */
export function freshKey(label: string): string {
  serial++;
  return `${label}:${process.pid}:${serial}:${Date.now()}`;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function serverMicros(topology: Topology, storageKey: string): Promise<number> {
  const time = await topology.command(storageKey, "TIME");
  if (!Array.isArray(time)) throw new Error(`unexpected TIME reply ${String(time)}`);
  return Number(time[0]) * 1_000_000 + Number(time[1]);
}

/**
 * The behaviour every deployment must show, on `server` (valkey-server 8 or redis-server 7: the
 * first test checks which one answers). `topology()` is read lazily: the caller's `beforeAll`
 * starts the servers.
 */
export function describeValkeyBehaviour(server: DataServerKind, topology: () => Topology): void {
  const stores: { close(): Promise<void> }[] = [];
  const open = (options: Partial<ValkeyStoreOptions> = {}) => {
    const store = new ValkeyStore({ ...topology().connection(), timeoutMs: 2000, ...options });
    stores.push(store);
    return store;
  };
  afterAll(async () => {
    await Promise.all(stores.map((store) => store.close()));
  });

  const { name } = dataServers[server].server;
  describe(`GCRA on ${name}`, () => {
    it(`runs on ${name}`, async () => {
      const info = String(await topology().command(freshKey("info"), "INFO", "server"));
      if (server === "valkey") expect(info).toMatch(/^valkey_version:8\./m);
      else {
        expect(info).toMatch(/^redis_version:7\./m);
        expect(info).not.toMatch(/^valkey_version:/m);
      }
    });

    it("detects the deployment's mode", async () => {
      const store = open({ mode: "auto" });
      await store.check(freshKey("mode"), new GcraLimit({ rate: 1, burst: 1 }));
      expect(store.mode).toBe(topology().mode);
    });

    it("admits exactly the burst of a fresh key at one instant", async () => {
      const store = open();
      // One request a minute: nothing refills while the 30 calls run, however busy the machine.
      const limit = new GcraLimit({ emissionIntervalUs: 60_000_000, burstToleranceUs: 1_200_000_000 });
      const key = freshKey("burst");
      const storageKey = store.storageKey(key);
      await store.warmUp(20_000);
      const before = await serverMicros(topology(), storageKey);
      const results = await Promise.all(Array.from({ length: 30 }, () => store.check(key, limit)));
      const after = await serverMicros(topology(), storageKey);
      expect(results.filter((r) => r.allowed)).toHaveLength(20);
      const denied = results.filter((r) => !r.allowed);
      for (const d of denied) {
        expect(d).toMatchObject({ limit: 20, remaining: 0, source: "store" });
        // tat' − τ − now: one interval ahead, less the time the burst took on the server's clock.
        expect(d.retryAfter).toBeGreaterThanOrEqual(60_000_000 - (after - before));
        expect(d.retryAfter).toBeLessThanOrEqual(60_000_000);
        expect(d.resetAfter).toBe(d.retryAfter + 19 * 60_000_000);
      }
    });

    it("admits the same request again after exactly retryAfter", async () => {
      const store = open();
      // The whole burst in one call, then one more: denied unless half a second of the server's
      // clock passed between. A machine that stalls longer than that gets a fresh key and another
      // try; the outcome is asserted whenever the server's clock proves the two calls were close.
      const limit = new GcraLimit({ emissionIntervalUs: 500_000, burstToleranceUs: 1_500_000 });
      let key = "";
      let denied: GcraDecision | undefined;
      for (let attempt = 1; denied === undefined; attempt++) {
        expect(attempt, "two calls within 0.5 s of the server's clock in 20 tries").toBeLessThanOrEqual(20);
        key = freshKey("retry");
        const before = await serverMicros(topology(), store.storageKey(key));
        expect((await store.check(key, limit, 3)).allowed).toBe(true);
        const second = await store.check(key, limit);
        const after = await serverMicros(topology(), store.storageKey(key));
        if (after - before < 500_000) denied = second;
      }
      expect(denied.allowed).toBe(false);
      await sleep(denied.retryAfter / 1000 + 2);
      const again = await store.check(key, limit);
      // Allowed once retryAfter has passed (and what remains follows from the TAT, however long
      // the wait really took on a busy machine).
      expect(again).toMatchObject({ allowed: true, source: "store" });
      expect(again.remaining).toBe(
        Math.floor((limit.burstToleranceUs - again.resetAfter) / limit.emissionIntervalUs),
      );
    });

    it("stores the TAT as integer µs of the server's clock and expires the key at the TAT", async () => {
      const store = open();
      const limit = new GcraLimit({ emissionIntervalUs: 10_000_000, burstToleranceUs: 20_000_000 });
      const key = freshKey("ttl");
      const storageKey = store.storageKey(key);
      const before = await serverMicros(topology(), storageKey);
      const first = await store.check(key, limit);
      const after = await serverMicros(topology(), storageKey);
      expect(first).toMatchObject({ allowed: true, resetAfter: 10_000_000, remaining: 1 });
      const stored = await topology().command(storageKey, "GET", storageKey);
      expect(stored).toMatch(/^\d{16}$/);
      // One interval after the instant the server decided, which lies between before and after.
      const tat = Number(stored);
      expect(tat - before).toBeGreaterThanOrEqual(10_000_000);
      expect(tat - after).toBeLessThanOrEqual(10_000_000);
      const expireAt = await topology().command(storageKey, "PEXPIRETIME", storageKey);
      expect(expireAt).toBe(Math.ceil(tat / 1000));
    });

    it("changes nothing on a denial", async () => {
      const store = open();
      const limit = new GcraLimit({ emissionIntervalUs: 10_000_000, burstToleranceUs: 10_000_000 });
      const key = freshKey("deny");
      const storageKey = store.storageKey(key);
      expect((await store.check(key, limit)).allowed).toBe(true);
      const value = await topology().command(storageKey, "GET", storageKey);
      const expiry = await topology().command(storageKey, "PEXPIRETIME", storageKey);
      for (let i = 0; i < 5; i++) expect((await store.check(key, limit)).allowed).toBe(false);
      expect(await topology().command(storageKey, "GET", storageKey)).toBe(value);
      expect(await topology().command(storageKey, "PEXPIRETIME", storageKey)).toBe(expiry);
    });

    it("lets the key vanish once its TAT has passed, and a retention keep it longer", async () => {
      const limit = new GcraLimit({ emissionIntervalUs: 50_000, burstToleranceUs: 100_000 });
      const plain = open();
      const key = freshKey("expiry");
      const storageKey = plain.storageKey(key);
      const { resetAfter } = await plain.check(key, limit);
      expect(resetAfter).toBe(50_000);
      // The key's expiry is its TAT (the expiry itself is checked exactly above); once 80 ms
      // have passed it is gone, however much longer the wait took.
      await sleep(80);
      expect(await topology().command(storageKey, "EXISTS", storageKey)).toBe(0);

      const retained = open({ retentionMs: 60_000 });
      const other = freshKey("retention");
      await retained.check(other, limit);
      const ttl = await topology().command(retained.storageKey(other), "PTTL", retained.storageKey(other));
      expect(ttl).toBeGreaterThan(59_000);
      expect(ttl).toBeLessThanOrEqual(60_000);
    });

    it("weighs requests by cost; cost 0 only looks", async () => {
      const store = open();
      const limit = new GcraLimit({ emissionIntervalUs: 1_000_000, burstToleranceUs: 10_000_000 });
      const key = freshKey("cost");
      expect(await store.check(key, limit, 7)).toMatchObject({ allowed: true, remaining: 3 });
      expect(await store.check(key, limit, 0)).toMatchObject({ allowed: true, remaining: 3 });
      expect(await store.check(key, limit, 4)).toMatchObject({ allowed: false, remaining: 3 });
      expect(await store.check(key, limit, 3)).toMatchObject({ allowed: true, remaining: 0 });
      await expect(store.check(key, limit, 11)).rejects.toThrow(GcraInputError);
    });

    it("rejects bad input with GcraInputError (code GCRA_INVALID_INPUT) before touching Valkey", async () => {
      const store = open();
      const limit = new GcraLimit({ rate: 10, burst: 2 });
      await expect(store.check("", limit)).rejects.toMatchObject({ code: "GCRA_INVALID_INPUT" });
      await expect(store.check("k", limit, -1)).rejects.toThrow(GcraInputError);
      await expect(store.check("k", limit, Number.NaN)).rejects.toThrow(GcraInputError);
      await expect(store.check("k", limit, 1.5)).rejects.toThrow(GcraInputError);
      expect(store.stats().calls).toBe(0);
      expect(() => open({ timeoutMs: 0 })).toThrow(GcraOptionError);
      expect(() => open({ retentionMs: -1 })).toThrow(GcraOptionError);
      expect(() => new ValkeyStore({ nodes: [] })).toThrow(/at least one Valkey node/);
      expect(() => new ValkeyStore({ nodes: ["http://x"] })).toThrow(/redis:\/\/ or rediss:\/\//);
    });

    it("loads the script again after SCRIPT FLUSH, without a failure", async () => {
      const store = open();
      const limit = new GcraLimit({ rate: 1000, burst: 1000 });
      const key = freshKey("noscript");
      await store.check(key, limit);
      await topology().onPrimaries("SCRIPT", "FLUSH");
      const results = await Promise.all(Array.from({ length: 20 }, () => store.check(key, limit)));
      expect(results.every((r) => r.allowed && r.source === "store")).toBe(true);
      expect(Object.values(store.stats().failures).every((n) => n === 0)).toBe(true);
    });

    it("fails a call past its deadline with kind timeout, then recovers", async () => {
      // A server paused until the test unpauses it, and a store whose clock runs only while the
      // server is paused: only the pause makes a call late, never a busy machine.
      const clock = stoppableClock();
      clock.run();
      const store = open({ timeoutMs: 300, clock: clock.now });
      const limit = new GcraLimit({ rate: 1000, burst: 1000 });
      const key = freshKey("deadline");
      expect(await store.warmUp(20_000)).toBe(true);
      const failures: GcraStoreError[] = [];
      store.on("failure", (error) => failures.push(error));
      await topology().command(store.storageKey(key), "CLIENT", "PAUSE", "30000", "WRITE");
      let error: unknown;
      let elapsed: number;
      try {
        const started = performance.now();
        error = await store.check(key, limit).catch((e: unknown) => e);
        elapsed = performance.now() - started;
      } finally {
        clock.stop();
        await topology().command(store.storageKey(key), "CLIENT", "UNPAUSE");
      }
      expect(error).toBeInstanceOf(GcraStoreError);
      expect(error).toMatchObject({ kind: "timeout", code: "GCRA_STORE_TIMEOUT" });
      expect(elapsed).toBeGreaterThanOrEqual(295);
      expect(failures.map((f) => f.kind)).toEqual(["timeout"]);
      expect((await store.check(key, limit)).source).toBe("store");
    });

    it("warms up before traffic: connected, the script on every primary, no decision, no event", async () => {
      await topology().onPrimaries("SCRIPT", "FLUSH");
      const events: StoreEvent[] = [];
      const store = open({ mode: "auto", onEvent: (event) => events.push(event) });
      expect(await store.warmUp(20_000)).toBe(true);
      expect(store.stats()).toMatchObject({ mode: topology().mode, connected: true, denied: 0 });
      // One key of each partition (each cluster shard): its primary holds the script now.
      const wanted = new Set(store.partitions());
      for (let i = 0; wanted.size > 0; i++) {
        const key = `probe-${i}`;
        if (!wanted.delete(store.partitionOf(key))) continue;
        const storageKey = store.storageKey(key);
        expect(await topology().command(storageKey, "SCRIPT", "EXISTS", GCRA_SCRIPT_SHA)).toEqual([1]);
      }
      // The script's first load is no reload, and nothing failed.
      expect(events).toEqual([]);
      // Through the whole composition: no decision counted (warm-up calls are no decisions), no circuit touched.
      const limiter = createValkeyLimiter({ ...topology().connection(), timeoutMs: 2000 });
      stores.push(limiter);
      expect(await limiter.warmUp(20_000)).toBe(true);
      expect(limiter.stats()).toMatchObject({ healthy: true, connected: true, trips: 0 });
      expect(Object.values(limiter.stats().decisions).every((n) => n === 0)).toBe(true);
    });

    it("decides identically for agents whose clocks disagree (time comes from the server)", async () => {
      // One request a minute, bursts of 10: nothing refills while the test runs, however slow.
      const limit = new GcraLimit({ emissionIntervalUs: 60_000_000, burstToleranceUs: 600_000_000 });
      const base = () => Math.floor(performance.now() * 1000);
      const ahead = createValkeyLimiter({
        ...topology().connection(),
        timeoutMs: 2000,
        clock: () => base() + 3_600_000_000,
      });
      const behind = createValkeyLimiter({
        ...topology().connection(),
        timeoutMs: 2000,
        clock: () => base() - 3_600_000_000,
      });
      stores.push(ahead, behind);
      const key = freshKey("skew");
      const storageKey = `gcra:${key}`;
      const results = [];
      for (let i = 0; i < 10; i++) results.push(await (i % 2 === 0 ? ahead : behind).check(key, limit));
      expect(results.every((r) => r.allowed && r.source === "store")).toBe(true);
      // Each agent's denial, bracketed by the server's clock: both are measured against the one
      // stored TAT on the server's clock, an hour of skew notwithstanding.
      const denials = [];
      let sentB = 0;
      for (const agent of [ahead, behind]) {
        const before = await serverMicros(topology(), storageKey);
        sentB = performance.now();
        const denial = await agent.check(key, limit);
        const after = await serverMicros(topology(), storageKey);
        denials.push({ denial, before, after });
      }
      const tat = Number(await topology().command(storageKey, "GET", storageKey));
      for (const { denial, before, after } of denials) {
        expect(denial).toMatchObject({ allowed: false, source: "store" });
        expect(denial.resetAfter).toBeGreaterThanOrEqual(tat - after);
        expect(denial.resetAfter).toBeLessThanOrEqual(tat - before);
        expect(denial.retryAfter).toBe(denial.resetAfter + limit.emissionIntervalUs - limit.burstToleranceUs);
      }
      // The deny cache answers the next call locally, in line with Valkey: its retryAfter is the
      // store's less at most the time since that call was sent.
      const b = denials[1]?.denial.retryAfter ?? 0;
      const cached = await behind.check(key, limit);
      const elapsedUs = (performance.now() - sentB) * 1000;
      expect(cached).toMatchObject({ allowed: false, source: "deny-cache" });
      expect(cached.retryAfter).toBeLessThanOrEqual(b);
      expect(cached.retryAfter).toBeGreaterThanOrEqual(b - elapsedUs);
    });
  });
}

/**
 * A clock in µs that runs only between `run()` and `stop()` and stands still otherwise: the time
 * it shows is the time it ran. A limiter on it misses a deadline only while it runs.
 */
export function stoppableClock(): { now(): number; run(): void; stop(): void } {
  const real = () => Math.floor(performance.now() * 1000);
  let shown = 0;
  let runningSince: number | undefined;
  return {
    now: () => (runningSince === undefined ? shown : shown + real() - runningSince),
    run() {
      runningSince ??= real();
    },
    stop() {
      if (runningSince === undefined) return;
      shown += real() - runningSince;
      runningSince = undefined;
    },
  };
}

/**
 * Drives decisions on `key` every few ms while `disrupt()` kills the primary holding it and waits
 * for a promotion; then waits until Valkey answers again. Returns what happened, for assertions.
 *
 * Calls have a short deadline, so that the policy bridges the failover, but the limiter's clock
 * runs only while `disrupt()` does (see {@link stoppableClock}): before and after it, a call
 * fails only if Valkey fails it, not because a busy machine answered late — once the promotion
 * is done, the limiter finds the new primary however busy the machine.
 */
export async function decideThroughFailover(
  connection: ValkeyStoreOptions,
  key: string,
  disrupt: () => Promise<void>,
): Promise<{ sources: string[]; modes: string[]; failures: number; afterwards: string[] }> {
  const clock = stoppableClock();
  clock.run();
  const limiter = createValkeyLimiter({
    ...connection,
    timeoutMs: 100,
    failurePolicy: "fallback",
    probeDelayMs: 25,
    maxProbeDelayMs: 250,
    clock: clock.now,
  });
  // A cold limiter's first calls would open connections and load the script within their deadline.
  expect(await limiter.warmUp(20_000)).toBe(true);
  clock.stop();
  const limit = new GcraLimit({ rate: 1000, burst: 1000 });
  const sources: string[] = [];
  const modes: string[] = [];
  let failures = 0;
  limiter.policy.on("mode", (mode) => modes.push(mode));
  limiter.policy.on("failure", () => failures++);
  let running = true;
  const loop = (async () => {
    while (running) {
      sources.push((await limiter.check(key, limit)).source);
      await sleep(5);
    }
  })();
  try {
    await sleep(200);
    clock.run();
    await disrupt();
    clock.stop();
    const deadline = Date.now() + 30_000;
    while (!limiter.policy.healthy && Date.now() < deadline) await sleep(50);
    await sleep(300);
    running = false;
    await loop;
    const afterwards = [];
    for (let i = 0; i < 10; i++) afterwards.push((await limiter.check(key, limit)).source);
    return { sources, modes, failures, afterwards };
  } finally {
    running = false;
    await loop;
    await limiter.close();
  }
}

/** What every failover run must show: Valkey answered, the policy bridged the gap, Valkey answers again. */
export function expectFailoverBridged(result: Awaited<ReturnType<typeof decideThroughFailover>>): void {
  expect(result.sources[0]).toBe("store");
  expect(result.failures).toBeGreaterThan(0);
  expect(result.sources).toContain("fallback");
  expect(result.modes).toEqual(["fallback", "store"]);
  expect(result.afterwards).toEqual(Array(10).fill("store"));
}
