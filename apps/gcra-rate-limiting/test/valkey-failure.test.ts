/**
 * Valkey killed mid-run and restarted, behind HAProxy 2.6 and 3.0: what each failure policy
 * answers meanwhile, what `/readyz` says, and that Valkey decides again afterwards. One valkey-server,
 * three agents (one per policy; `closed` with two workers, whose primary sums their readiness),
 * each behind its own HAProxy.
 */
import { haproxyBinaries, type RedisServer, startRedis, waitFor } from "@spoekit/harness";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  type AppProcess,
  type Front,
  type HttpReply,
  startApp,
  startBackend,
  startProxy,
  total,
} from "./stack.ts";

type Policy = "open" | "closed" | "fallback";
const policies: Policy[] = ["open", "closed", "fallback"];
const workers: Record<Policy, number> = { open: 1, closed: 2, fallback: 1 };

interface Stack {
  app: AppProcess;
  proxy: Front;
}

describe.each(haproxyBinaries())("Valkey killed mid-run, behind $name", (haproxy) => {
  let redis: RedisServer | undefined;
  let backend: Awaited<ReturnType<typeof startBackend>> | undefined;
  const stacks = new Map<Policy, Stack>();
  let nextClient = 0;
  /** A client address no request has used yet. */
  const freshClient = () => `198.18.${Math.floor(++nextClient / 250)}.${(nextClient % 250) + 1}`;

  const stack = (policy: Policy): Stack => {
    const found = stacks.get(policy);
    if (!found) throw new Error(`no stack for ${policy}`);
    return found;
  };
  /** `count` requests of one new client, one after the other. */
  const burstOf = async (policy: Policy, count: number): Promise<HttpReply[]> => {
    const headers = { "X-Forwarded-For": freshClient() };
    const replies: HttpReply[] = [];
    for (let i = 0; i < count; i++) replies.push(await stack(policy).proxy.get(headers));
    return replies;
  };
  const statuses = (replies: HttpReply[]) => replies.map((r) => r.status);
  const mode = async (policy: Policy, which: string) =>
    total(await stack(policy).app.metrics(), "gcra_store_mode", { mode: which });

  beforeAll(async () => {
    redis = await startRedis();
    backend = await startBackend();
    const backendPort = backend.port;
    const url = redis.url;
    await Promise.all(
      policies.map(async (policy) => {
        // One request a minute, bursts of 3: nothing refills while the test runs, however busy
        // the machine. Statuses are counted, so while Valkey runs it decides every request
        // however busy the machine: the store's deadline and HAProxy's wait are long.
        const app = await startApp({
          VALKEY_NODES: url,
          VALKEY_TIMEOUT: "1s",
          HAPROXY_PROCESSING_TIMEOUT: "5s",
          SPOA_FAILURE_POLICY: policy,
          SPOA_WORKERS: String(workers[policy]),
          SPOA_RATE_INTERVAL: "60000000",
          SPOA_RATE_BURST: "180000000",
        });
        const proxy = await startProxy(haproxy, [app.spopPort], backendPort, { processingTimeout: "5s" });
        stacks.set(policy, { app, proxy });
      }),
    );
    for (const policy of policies) {
      // Under `closed` an agent is ready once connected to Valkey: wait as a deployment would.
      await waitFor(async () => (await stack(policy).app.admin("/readyz")).status === 200, {
        what: `readyz (${policy})`,
      });
      await waitFor(
        async () => (await burstOf(policy, 1))[0]?.headers["ratelimit-limit"] === "3",
        { what: `a first verdict through HAProxy (${policy})` },
        () => stack(policy).app.output(),
      );
    }
  });

  afterAll(async () => {
    for (const { app, proxy } of stacks.values()) {
      await proxy.stop();
      await app.stop();
    }
    await backend?.close();
    await redis?.stop();
  });

  it("decides on Valkey while it runs, under every policy", async () => {
    for (const policy of policies) {
      const before = total(await stack(policy).app.metrics(), "gcra_decisions_total", { source: "store" });
      expect(statuses(await burstOf(policy, 4)), policy).toEqual([200, 200, 200, 429]);
      expect(total(await stack(policy).app.metrics(), "gcra_decisions_total", { source: "store" })).toBe(
        before + 4,
      );
      expect((await stack(policy).app.admin("/readyz")).status, policy).toBe(200);
      expect(await mode(policy, "store"), policy).toBe(workers[policy]);
    }
  });

  it("then, with Valkey dead: open serves 200s, closed 429s (not ready), fallback limits in the process", async () => {
    await redis?.kill();
    // The first call after the kill finds the connection gone and trips the circuit; from then
    // on the policy answers at once.
    for (const policy of policies) {
      await waitFor(
        async () => {
          await burstOf(policy, 1);
          return (await mode(policy, policy)) > 0;
        },
        // Until the circuit opens, a call may wait for its whole deadline: a guard against hangs.
        { what: `the ${policy} policy answering`, timeoutMs: 30_000 },
      );
    }

    const open = await burstOf("open", 5);
    expect(statuses(open)).toEqual([200, 200, 200, 200, 200]);
    const closed = await burstOf("closed", 5);
    expect(statuses(closed)).toEqual([429, 429, 429, 429, 429]);
    expect(closed.map((r) => r.headers["retry-after"])).toEqual(["1", "1", "1", "1", "1"]);
    expect(statuses(await burstOf("fallback", 5))).toEqual([200, 200, 200, 429, 429]);

    await waitFor(async () => (await stack("closed").app.admin("/readyz")).status === 503, {
      what: "closed: readyz 503",
    });
    expect((await stack("closed").app.admin("/readyz")).body).toMatch(/store unusable/);
    expect((await stack("open").app.admin("/readyz")).status).toBe(200);
    expect((await stack("fallback").app.admin("/readyz")).status).toBe(200);
    for (const policy of policies) {
      const metrics = await stack(policy).app.metrics();
      expect(total(metrics, "gcra_decisions_total", { source: policy }), policy).toBeGreaterThanOrEqual(5);
      expect(total(metrics, "gcra_store_errors_total"), policy).toBeGreaterThan(0);
      expect(
        total(metrics, "gcra_store_duration_seconds_count", { result: "error" }),
        policy,
      ).toBeGreaterThan(0);
    }
  });

  it("and once Valkey is back, Valkey decides again and readyz follows", async () => {
    await redis?.restart();
    for (const policy of policies) {
      await waitFor(
        async () => (await mode(policy, "store")) === workers[policy],
        { what: `${policy}: Valkey deciding again`, timeoutMs: 15_000 },
        () => `${stack(policy).app.output()}\n${redis?.process().output() ?? ""}`,
      );
      const before = total(await stack(policy).app.metrics(), "gcra_decisions_total", { source: "store" });
      expect(statuses(await burstOf(policy, 4)), policy).toEqual([200, 200, 200, 429]);
      expect(total(await stack(policy).app.metrics(), "gcra_decisions_total", { source: "store" })).toBe(
        before + 4,
      );
      await waitFor(async () => (await stack(policy).app.admin("/readyz")).status === 200, {
        what: `readyz (${policy}) once Valkey is back`,
      });
    }
  }, 30_000);
});
