import { type RedisServer, startRedis, waitFor } from "@spoekit/harness";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createValkeyLimiter, GcraLimit, type PolicyMode } from "../src/index.ts";
import {
  decideThroughFailover,
  describeValkeyBehaviour,
  EXACT_BURST,
  fourInARow,
  freshKey,
} from "./behaviour.ts";

/** A primary and a replica of it, without sentinels: the store must find the primary itself. */
let first: RedisServer;
let second: RedisServer;
/** Which of the two is the primary now. */
let primary: () => RedisServer;

async function replicate(replica: RedisServer, of: RedisServer): Promise<void> {
  expect(await replica.command("REPLICAOF", of.host, String(of.port))).toBe("OK");
  await waitFor(
    async () => String(await replica.command("INFO", "replication")).includes("master_link_status:up"),
    {
      what: `${replica.port} to replicate ${of.port}`,
      timeoutMs: 20_000,
      intervalMs: 50,
    },
  );
}

beforeAll(async () => {
  first = await startRedis();
  second = await startRedis();
  await replicate(second, first);
  primary = () => first;
}, 60_000);
afterAll(async () => {
  await first?.stop();
  await second?.stop();
});

describeValkeyBehaviour(() => ({
  mode: "replication",
  // The replica first: the store asks every node its ROLE and must write to the primary.
  connection: () => ({ nodes: [second.url, first.url], mode: "replication" }),
  command: (_key, ...args) => primary().command(...args),
  onPrimaries: async (...args) => {
    await primary().command(...args);
  },
}));

describe("replication only", () => {
  it("finds the primary again when it is killed and its replica promoted (connection loss)", async () => {
    const key = freshKey("failover");
    try {
      const result = await decideThroughFailover(
        { nodes: [first.url, second.url], mode: "replication" },
        key,
        async () => {
          await first.kill();
          expect(await second.command("REPLICAOF", "NO", "ONE")).toBe("OK");
          primary = () => second;
        },
      );
      // Valkey decided before and after; in between, at most the policy (the switch may be quicker
      // than any call).
      expect(result.sources[0]).toBe("store");
      expect(new Set(result.sources)).toEqual(
        new Set(result.failures > 0 ? ["store", "fallback"] : ["store"]),
      );
      // The old primary is dead: these are the promoted replica's decisions.
      expect(result.afterwards).toEqual(Array(10).fill("store"));
    } finally {
      // The old primary comes back as the new one's replica.
      await first.restart();
      await replicate(first, second);
    }
  }, 60_000);

  it("finds the primary again when its node is demoted under it (READONLY), and decides exactly there", async () => {
    const limiter = createValkeyLimiter({
      nodes: [first.url, second.url],
      mode: "replication",
      timeoutMs: 2000,
      failurePolicy: "closed",
      failureThreshold: 1,
      probeDelayMs: 25,
      maxProbeDelayMs: 200,
      denyCacheMaxKeys: false,
    });
    const modes: PolicyMode[] = [];
    limiter.policy.on("mode", (mode) => modes.push(mode));
    try {
      const before = freshKey("demoted");
      expect(await fourInARow(limiter, before)).toEqual(EXACT_BURST);
      // Swap the roles while the store stays connected to the node that is demoted.
      const [old, promoted] = primary() === second ? [second, first] : [first, second];
      expect(await promoted.command("REPLICAOF", "NO", "ONE")).toBe("OK");
      await replicate(old, promoted);
      primary = () => promoted;
      const limit = new GcraLimit({ rate: 1000, burst: 1000 });
      await waitFor(async () => (await limiter.check(freshKey("probe"), limit)).source === "store", {
        what: "decisions by the promoted node",
        timeoutMs: 10_000,
        intervalMs: 25,
      });
      const after = freshKey("promoted");
      expect(await fourInARow(limiter, after)).toEqual(EXACT_BURST);
      // Written on the new primary, which answered.
      expect(await promoted.command("EXISTS", `gcra:${after}`)).toBe(1);
      expect(modes).toEqual(["closed", "store"]);
      expect(limiter.stats().failures.readonly).toBeGreaterThan(0);
    } finally {
      await limiter.close();
    }
  }, 60_000);
});
