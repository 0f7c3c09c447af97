/**
 * The drain a load balancer can see, end to end: one agent (one process, Valkey) behind HAProxy
 * 2.6 and 3.0 with the canonical configuration, under steady load across SIGTERM. The test plays
 * the load balancer: it polls `/readyz`, and once that reads 503 each client sends one more
 * request (the balancer's reaction is never instant) and stops. Every request gets a verdict
 * from the agent — none passes unchecked — and the agent closes only after the load has moved
 * away, then exits 0. Each step waits for an event (a verdict, a probe's answer, a log line, the
 * exit), never for a time.
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
  waitForFirstVerdict,
} from "./stack.ts";

// Bursts of 4 per client, then one request a minute: of the 10 × 6 requests the load sends
// before the signal at least 36 are denied, however fast or slow the machine is.
const intervalUs = 60_000_000;
const burstUs = 240_000_000;
const burst = "4";
const clients = 6;

/** The `msg` of each JSON log line of `output`, in order. */
const messages = (output: string): string[] =>
  output
    .split("\n")
    .filter((line) => line.startsWith("{"))
    .map((line) => String((JSON.parse(line) as { msg?: unknown }).msg));

describe.each(haproxyBinaries())("one agent behind $name, SIGTERM under steady load", (haproxy) => {
  let redis: RedisServer | undefined;
  let backend: Awaited<ReturnType<typeof startBackend>> | undefined;
  let app: AppProcess | undefined;
  let proxy: Front | undefined;

  beforeAll(async () => {
    redis = await startRedis();
    backend = await startBackend();
  });

  afterAll(async () => {
    await proxy?.stop();
    await app?.stop("SIGKILL");
    await backend?.close();
    await redis?.stop();
  });

  it("turns /readyz 503 at once, serves on through DRAIN_DELAY, loses no decision, exits 0", async () => {
    app = await startApp({
      VALKEY_NODES: redis?.url ?? "",
      SPOA_WORKERS: "1",
      SPOA_RATE_INTERVAL: String(intervalUs),
      SPOA_RATE_BURST: String(burstUs),
      // Verdicts are counted, so HAProxy waits long enough on a busy machine, and the agent
      // knows it (its Valkey deadline is 60 % of it).
      HAPROXY_PROCESSING_TIMEOUT: "5s",
      DRAIN_DELAY: "5s",
      DRAIN_TIMEOUT: "30s",
    });
    const agent = app;
    proxy = await startProxy(haproxy, [agent.spopPort], backend?.port ?? 0, { processingTimeout: "5s" });
    const front = proxy;
    await waitForFirstVerdict(front, burst, agent);
    const decidedBefore = total(await agent.metrics(), "gcra_decisions_total");

    const replies: HttpReply[] = [];
    const failures: unknown[] = [];
    let signalled = Number.POSITIVE_INFINITY;
    let notReady = false;
    let notReadyAt = Number.POSITIVE_INFINITY;
    // Each client sends requests back to back until the balancer has seen the 503, then one more.
    const load = Array.from({ length: clients }, async (_, i) => {
      const headers = { "X-Forwarded-For": `203.0.113.${20 + i}` };
      for (let last = false; !last; ) {
        last = notReady;
        try {
          replies.push(await front.get(headers, "/", 10_000));
        } catch (error) {
          failures.push(error);
        }
      }
    });

    await waitFor(() => replies.length >= 10 * clients, { what: "steady load before the signal" });
    signalled = performance.now();
    agent.process.child.kill("SIGTERM");
    // The balancer's probe.
    await waitFor(async () => (await agent.admin("/readyz")).status === 503, {
      what: "/readyz 503 after SIGTERM",
      intervalMs: 10,
    });
    notReadyAt = performance.now();
    notReady = true;
    expect((await agent.admin("/readyz")).body).toBe("draining\n");
    await Promise.all(load);
    // The load has moved away before the agent stops accepting: else what follows tests nothing.
    expect(messages(agent.output())).not.toContain(
      "closing: no new SPOP connections; answering the NOTIFYs in flight",
    );
    const decided = total(await agent.metrics(), "gcra_decisions_total") - decidedBefore;

    expect(await agent.process.exited).toBe(0);
    expect(failures).toEqual([]);
    // Every request had a verdict: a 200 or a 429 with the agent's RateLimit-Limit.
    const unchecked = replies.filter((r) => r.headers["ratelimit-limit"] !== burst);
    expect(unchecked.map((r) => `${r.status} at ${Math.round(r.sentAt - signalled)} ms`)).toEqual([]);
    expect(new Set(replies.map((r) => r.status))).toEqual(new Set([200, 429]));
    expect(decided).toBe(replies.length);
    // Requests sent after the signal, and after /readyz read 503, were decided as well.
    expect(replies.filter((r) => r.sentAt > signalled).length).toBeGreaterThan(0);
    expect(replies.filter((r) => r.sentAt > notReadyAt)).toHaveLength(clients);

    const drain = messages(agent.output()).filter((msg) =>
      [
        "draining",
        "closing: no new SPOP connections; answering the NOTIFYs in flight",
        "closed",
        "stopped",
      ].includes(msg),
    );
    expect(drain).toEqual([
      "draining",
      "closing: no new SPOP connections; answering the NOTIFYs in flight",
      "closed",
      "stopped",
    ]);
  }, 120_000);
});
