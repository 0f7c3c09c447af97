/**
 * Two agent instances sharing one Valkey Cluster (3 primaries): one global limit whichever
 * agent decides; and one agent stopped with SIGTERM under load behind an HAProxy that uses both,
 * which must ride through without a failed or stalled request.
 */
import { haproxyBinaries, type RedisCluster, startCluster, waitFor } from "@spoekit/harness";
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

// One request a minute, bursts of 10: nothing refills while a test runs, however busy the
// machine, so a client's first 10 requests pass and every later one gets 429.
const burst = 10;
const env = { SPOA_RATE_INTERVAL: "60000000", SPOA_RATE_BURST: "600000000" };
// Verdicts are counted, so every one comes from Valkey through HAProxy however busy the machine:
// the store's deadline and HAProxy's wait for the agent are long (see `startProxy`). A request
// HAProxy held for a verdict that never came would take at least `timeout processing`.
const processingTimeoutMs = 5000;

describe.each(haproxyBinaries())("two agents on one Valkey Cluster, behind $name", (haproxy) => {
  let cluster: RedisCluster | undefined;
  let backend: Awaited<ReturnType<typeof startBackend>> | undefined;
  const apps: AppProcess[] = [];
  /** One HAProxy per agent (the canonical configuration as is), and one in front of both. */
  const fronts: Front[] = [];
  const front = (i: number) => {
    const found = fronts[i];
    if (!found) throw new Error(`HAProxy ${i} did not start`);
    return found;
  };
  const decisionsOf = async (app: AppProcess) => total(await app.metrics(), "gcra_decisions_total");

  beforeAll(async () => {
    cluster = await startCluster({ primaries: 3, replicasPerPrimary: 0 });
    backend = await startBackend();
    for (let i = 0; i < 2; i++) {
      apps.push(
        await startApp({
          ...env,
          VALKEY_NODES: cluster.urls.join(","),
          VALKEY_MODE: "cluster",
          VALKEY_TIMEOUT: "1s",
          HAPROXY_PROCESSING_TIMEOUT: `${processingTimeoutMs}ms`,
          SPOA_WORKERS: "1",
          DRAIN_TIMEOUT: "10s",
        }),
      );
    }
    for (const agents of [[apps[0]], [apps[1]], apps]) {
      fronts.push(
        await startProxy(
          haproxy,
          agents.map((app) => app?.spopPort ?? 0),
          backend.port,
          { processingTimeout: `${processingTimeoutMs}ms` },
        ),
      );
    }
    for (const proxy of fronts) {
      await waitFor(async () => (await proxy.agentStates()).every((state) => state === "UP"), {
        what: "the agent servers UP in HAProxy",
      });
    }
  }, 90_000);

  afterAll(async () => {
    for (const proxy of fronts) await proxy.stop();
    for (const app of apps) await app.stop("SIGKILL");
    await backend?.close();
    await cluster?.stop();
  });

  it("holds a client to one limit whichever agent decides", async () => {
    const before = await Promise.all(apps.map(decisionsOf));
    // 30 requests of one client, alternately through the HAProxy of each agent.
    const statuses: number[] = [];
    const limits = new Set<unknown>();
    for (let i = 0; i < 3 * burst; i++) {
      const reply = await front(i % 2).get({ "X-Forwarded-For": "203.0.113.77" });
      statuses.push(reply.status);
      limits.add(reply.headers["ratelimit-limit"]);
    }
    const perAgent = (await Promise.all(apps.map(decisionsOf))).map((n, i) => n - (before[i] ?? 0));
    expect(perAgent).toEqual([15, 15]);
    expect([...limits]).toEqual([String(burst)]);
    // Limits per process would admit up to 2 × 10.
    expect(statuses).toEqual([
      ...new Array<number>(burst).fill(200),
      ...new Array<number>(2 * burst).fill(429),
    ]);
  });

  it("rides through SIGTERM of the agent HAProxy uses: no request fails or stalls, the agent exits 0", async () => {
    const shared = front(2);
    const replies: (HttpReply & { client: number })[] = [];
    const failures: unknown[] = [];
    let running = true;
    // 8 clients in a loop, each over its limit after 10 requests: 200s, then 429s.
    const clients = Array.from({ length: 8 }, async (_, i) => {
      const headers = { "X-Forwarded-For": `203.0.113.${100 + i}` };
      while (running) {
        try {
          // The client waits longer than HAProxy does for a verdict: a stall shows as a slow reply.
          replies.push({ ...(await shared.get(headers, "/", 3 * processingTimeoutMs)), client: i });
        } catch (error) {
          failures.push(error);
        }
      }
    });
    try {
      // Stop the agent HAProxy is using (it prefers the connection that became idle first), once
      // the load has opened HAProxy's SPOE connections: the agent that decides 20 requests of the
      // load first.
      const before = await Promise.all(apps.map(decisionsOf));
      let leaving = -1;
      await waitFor(
        async () => {
          const used = (await Promise.all(apps.map(decisionsOf))).map((n, i) => n - (before[i] ?? 0));
          leaving = used.findIndex((n) => n >= 20);
          return leaving >= 0;
        },
        { what: "20 decisions of the load on one agent", timeoutMs: 30_000 },
      );
      const [stopped, staying] = [apps[leaving], apps[1 - leaving]] as [AppProcess, AppProcess];

      const signalled = performance.now();
      stopped.process.child.kill("SIGTERM");
      const code = await stopped.process.exited;
      const exitedAt = performance.now();
      const stayingBefore = await decisionsOf(staying);
      // Requests sent from here on are decided after that count was taken.
      const countedFrom = performance.now();
      // The load goes on until 50 requests sent after the exit were answered.
      await waitFor(() => replies.filter((r) => r.sentAt > countedFrom).length >= 50, {
        what: "50 replies after the agent's exit",
        timeoutMs: 30_000,
      });
      running = false;
      await Promise.all(clients);

      expect(code, stopped.output()).toBe(0);
      expect(stopped.output()).toMatch(/"msg":"draining"[\s\S]*"msg":"stopped"/);
      expect(failures).toEqual([]);
      expect(replies.filter((r) => r.status !== 200 && r.status !== 429).map((r) => r.status)).toEqual([]);
      const slowest = Math.max(...replies.map((r) => r.doneAt - r.sentAt));
      expect(slowest, "a request was held until HAProxy's timeout processing").toBeLessThan(
        processingTimeoutMs,
      );
      // Every request had a verdict, except those HAProxy sent to the leaving agent while it
      // drained: HAProxy 2.6 drops what it sent on a connection before it reads the agent's
      // AGENT-DISCONNECT, and lets those requests pass at once (they are not held until
      // `timeout processing`, see above). At most one per client (each has one request in
      // flight), in flight at some moment between the signal and the exit; from then on HAProxy
      // asks the other agent.
      const unchecked = replies.filter((r) => r.headers["ratelimit-limit"] !== String(burst));
      const inDrain = (r: HttpReply) => r.doneAt >= signalled && r.sentAt <= exitedAt;
      expect(
        unchecked.filter((r) => !inDrain(r)).map((r) => Math.round(r.sentAt - signalled)),
        `unchecked requests, sent at these ms from the signal (exit at ${Math.round(exitedAt - signalled)} ms)`,
      ).toEqual([]);
      expect(unchecked.length).toBeLessThanOrEqual(8);
      expect(unchecked.every((r) => r.status === 200)).toBe(true);
      const later = replies.filter((r) => r.sentAt > exitedAt);
      expect(later.length).toBeGreaterThanOrEqual(50);
      expect(later.some((r) => r.status === 429)).toBe(true);
      // One limit across the switch: no client had more than its burst admitted by a verdict.
      for (let i = 0; i < 8; i++) {
        const admitted = replies.filter(
          (r) => r.client === i && r.status === 200 && r.headers["ratelimit-limit"] === String(burst),
        );
        expect(admitted.length, `client ${i}`).toBeLessThanOrEqual(burst);
      }
      const decidedLater = replies.filter(
        (r) => r.sentAt > countedFrom && r.headers["ratelimit-limit"] === String(burst),
      );
      expect(await decisionsOf(staying)).toBeGreaterThanOrEqual(stayingBefore + decidedLater.length);
    } finally {
      running = false;
      await Promise.all(clients);
    }
  });
});
