import { describe, expect, it } from "vitest";
import {
  DenyCacheStore,
  GcraInputError,
  GcraLimit,
  type GcraRequest,
  type GcraStore,
  GcraStoreError,
  MemoryStore,
  PolicyStore,
} from "./index.ts";

/** Two at once, then one per second. */
const TWO = new GcraLimit({ rate: 1, burst: 2 });
/** Five at once, then one per second. */
const FIVE = new GcraLimit({ rate: 1, burst: 5 });

const outcomes = (decisions: readonly ({ allowed: boolean } | undefined)[]) =>
  decisions.map((d) => (d === undefined ? "-" : d.allowed ? "allow" : "deny"));

describe("MemoryStore.checkAll", () => {
  it("passes only when every enforcing limit allows, and then consumes from each", async () => {
    let now = 1_000_000;
    const store = new MemoryStore({ clock: () => now });
    const both: GcraRequest[] = [
      { key: "ip", limit: TWO },
      { key: "tenant", limit: FIVE },
    ];
    expect((await store.checkAll(both)).allowed).toBe(true);
    expect((await store.checkAll(both)).allowed).toBe(true);
    const third = await store.checkAll(both);
    expect(third.allowed).toBe(false);
    expect(outcomes(third.decisions)).toEqual(["deny", "allow"]);
    // The denied request consumed nothing from the tenant: three single checks still pass.
    for (let i = 0; i < 3; i++) expect(store.decide("tenant", FIVE).allowed).toBe(true);
    expect(store.decide("tenant", FIVE).allowed).toBe(false);
    expect(third.decisions[0]?.retryAfter).toBe(1_000_000);
    now += 1_000_000;
    expect(store.decide("ip", TWO).allowed).toBe(true);
  });

  it("never lets a shadow limit deny, and consumes it only when the request passes", async () => {
    const store = new MemoryStore({ clock: () => 0 });
    const request: GcraRequest[] = [
      { key: "ip", limit: TWO },
      { key: "shadow", limit: new GcraLimit({ rate: 1, burst: 1 }), enforce: false },
    ];
    expect(outcomes((await store.checkAll(request)).decisions)).toEqual(["allow", "allow"]);
    const second = await store.checkAll(request);
    expect(second.allowed).toBe(true);
    expect(outcomes(second.decisions)).toEqual(["allow", "deny"]);
    const third = await store.checkAll(request);
    expect(third.allowed).toBe(false);
    // The shadow key's state: consumed once (first request), left alone by the others.
    expect(store.decide("shadow", new GcraLimit({ rate: 1, burst: 1 }), 0).resetAfter).toBe(1_000_000);
  });

  it("judges a key named twice against what its first request would leave", async () => {
    const store = new MemoryStore({ clock: () => 0 });
    const twice: GcraRequest[] = [
      { key: "k", limit: TWO },
      { key: "k", limit: TWO },
    ];
    expect((await store.checkAll(twice)).allowed).toBe(true);
    const again = await store.checkAll(twice);
    expect(outcomes(again.decisions)).toEqual(["deny", "deny"]);
    const thrice = await new MemoryStore({ clock: () => 0 }).checkAll([...twice, ...twice.slice(1)]);
    expect(outcomes(thrice.decisions)).toEqual(["allow", "allow", "deny"]);
  });

  it("rejects an empty list, an empty key and a bad cost", async () => {
    const store = new MemoryStore();
    await expect(store.checkAll([])).rejects.toBeInstanceOf(GcraInputError);
    await expect(store.checkAll([{ key: "", limit: TWO }])).rejects.toBeInstanceOf(GcraInputError);
    await expect(store.checkAll([{ key: "a", limit: TWO, cost: 3 }])).rejects.toBeInstanceOf(GcraInputError);
  });
});

/** A store whose calls fail while `failing`, otherwise a memory store. */
function flaky(clock: () => number): GcraStore & { failing: boolean; calls: number } {
  const memory = new MemoryStore({ clock });
  return {
    failing: false,
    calls: 0,
    check(key, limit, cost) {
      this.calls++;
      return this.failing
        ? Promise.reject(new GcraStoreError("timeout", "late"))
        : memory.check(key, limit, cost);
    },
    checkAll(requests) {
      this.calls++;
      return this.failing ? Promise.reject(new GcraStoreError("timeout", "late")) : memory.checkAll(requests);
    },
    close: () => memory.close(),
  };
}

describe("PolicyStore.checkAll", () => {
  it("answers the whole request by the policy while the store fails, all or nothing on fallback", async () => {
    const store = flaky(() => 0);
    const policy = new PolicyStore(store, {
      policy: "fallback",
      failureThreshold: 1,
      fallback: new MemoryStore({ clock: () => 0 }),
    });
    const request: GcraRequest[] = [
      { key: "ip", limit: TWO },
      { key: "tenant", limit: FIVE },
    ];
    expect((await policy.checkAll(request)).source).toBe("store");
    store.failing = true;
    const answers = [];
    for (let i = 0; i < 3; i++) answers.push(await policy.checkAll(request));
    expect(answers.map((a) => `${a.allowed} ${a.source}`)).toEqual([
      "true fallback",
      "true fallback",
      "false fallback",
    ]);
    expect(answers[2]?.decisions.every((d) => d?.source === "fallback")).toBe(true);
    await policy.close();
  });

  it("counts a failed call against every partition the keys live on, and answers from the policy while any is open", async () => {
    const store = Object.assign(
      flaky(() => 0),
      { partitionOf: (key: string) => key.slice(0, 1) },
    );
    const policy = new PolicyStore(store, { policy: "open", failureThreshold: 1, clock: () => 0 });
    store.failing = true;
    await policy.checkAll([
      { key: "a1", limit: TWO },
      { key: "b1", limit: TWO },
    ]);
    expect(
      policy
        .stats()
        .failing.map((f) => f.partition)
        .sort(),
    ).toEqual(["a", "b"]);
    store.failing = false;
    const calls = store.calls;
    // Partition b's circuit is open: a request touching it is answered by the policy, not the store.
    expect((await policy.checkAll([{ key: "b2", limit: TWO }])).source).toBe("open");
    expect(store.calls).toBe(calls);
    await policy.close();
  });

  it("closed denies every limit and open allows every limit", async () => {
    for (const mode of ["open", "closed"] as const) {
      const store = flaky(() => 0);
      store.failing = true;
      const policy = new PolicyStore(store, { policy: mode, closedRetryAfterUs: 5 });
      const answer = await policy.checkAll([
        { key: "a", limit: TWO },
        { key: "b", limit: FIVE },
      ]);
      expect(answer.allowed).toBe(mode === "open");
      expect(answer.decisions.map((d) => d?.source)).toEqual([mode, mode]);
      if (mode === "closed") expect(answer.decisions[0]?.retryAfter).toBe(5);
      await policy.close();
    }
  });
});

describe("DenyCacheStore.checkAll", () => {
  it("denies locally from an enforcing key's cached denial, exactly as the store would", async () => {
    let now = 0;
    const store = flaky(() => now);
    const cache = new DenyCacheStore(store, { clock: () => now });
    const request: GcraRequest[] = [
      { key: "ip", limit: TWO },
      { key: "tenant", limit: FIVE },
    ];
    await cache.checkAll(request);
    await cache.checkAll(request);
    const denied = await cache.checkAll(request);
    expect(denied.source).toBe("store");
    expect(store.calls).toBe(3);
    const local = await cache.checkAll(request);
    expect(store.calls).toBe(3);
    expect(local).toMatchObject({ allowed: false, source: "deny-cache" });
    expect(outcomes(local.decisions)).toEqual(["deny", "-"]);
    expect(local.decisions[0]?.retryAfter).toBe(1_000_000);
    expect(cache.hits).toBe(1);
    // A shadow request's cached denial does not deny the whole request.
    const shadowed = await cache.checkAll([{ key: "ip", limit: TWO, enforce: false }]);
    expect(shadowed.source).toBe("store");
    // Once a request could pass, the store decides again.
    now = 1_000_000;
    expect((await cache.checkAll(request)).allowed).toBe(true);
    expect(store.calls).toBe(5);
  });

  it("remembers only a key's first request in the list", async () => {
    const store = flaky(() => 0);
    const cache = new DenyCacheStore(store, { clock: () => 0 });
    // The second `k` is denied against a TAT its first request would have left, never stored.
    const answer = await cache.checkAll([
      { key: "k", limit: TWO },
      { key: "k", limit: TWO, cost: 2 },
    ]);
    expect(outcomes(answer.decisions)).toEqual(["allow", "deny"]);
    expect(cache.size).toBe(0);
    expect((await cache.checkAll([{ key: "k", limit: TWO, cost: 2 }])).allowed).toBe(true);
  });
});
