/**
 * The process model on a real valkey-server: the drain on SIGTERM (readiness first, in-flight
 * NOTIFYs answered, AGENT-DISCONNECT, exit 0), a second signal, and SPOA_WORKERS processes
 * sharing the SPOP port with their metrics summed.
 */
import { type RedisServer, startRedis, waitFor } from "@spoekit/harness";
import { checkRateMessage, connectClient, type SpopClient } from "@spoekit/spoe-agent/testing";
import { ActionType, Scope } from "@spoekit/spop-codec";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type AppProcess, type Sample, startApp, total } from "./stack.ts";

const password = "lifecycle-secret-7f3a";

describe("the process model", () => {
  let redis: RedisServer;
  const started: AppProcess[] = [];
  const clients: SpopClient[] = [];

  beforeAll(async () => {
    redis = await startRedis({ args: ["--requirepass", password] });
  });

  afterAll(async () => {
    redis?.process().child.kill("SIGCONT");
    for (const client of clients) client.reset().catch(() => undefined);
    for (const app of started) await app.stop("SIGKILL");
    await redis?.stop();
  });

  const app = async (env: Record<string, string> = {}, outputLimit?: number) => {
    const started_ = await startApp(
      { VALKEY_NODES: redis.url, VALKEY_PASSWORD: password, ...env },
      outputLimit ? { outputLimit } : {},
    );
    started.push(started_);
    return started_;
  };
  const client = async (port: number) => {
    const connected = await connectClient({ port });
    clients.push(connected);
    await connected.hello();
    return connected;
  };
  /** Holds every Valkey call until `resume()`: the valkey-server process is stopped (SIGSTOP). */
  const pauseValkey = () => {
    redis.process().child.kill("SIGSTOP");
    return () => redis.process().child.kill("SIGCONT");
  };

  it("drains on SIGTERM: readyz 503 at once, the NOTIFY in flight answered, AGENT-DISCONNECT, exit 0", async () => {
    const agent = await app({ VALKEY_TIMEOUT: "5s", DRAIN_TIMEOUT: "20s" });
    const haproxy = await client(agent.spopPort);
    await haproxy.notify([checkRateMessage("192.0.2.50")]);
    expect((await agent.admin("/readyz")).status).toBe(200);

    const resume = pauseValkey();
    let answered = false;
    const inFlight = haproxy.notify([checkRateMessage("192.0.2.50")]).then((ack) => {
      answered = true;
      return ack;
    });
    try {
      await waitFor(
        async () => total(await agent.metrics(), "spoa_frames_received_total", { type: "notify" }) === 2,
        {
          what: "the second NOTIFY at the agent",
        },
      );
      agent.process.child.kill("SIGTERM");
      await waitFor(async () => (await agent.admin("/readyz")).status === 503, { what: "readyz 503" });
      expect((await agent.admin("/readyz")).body).toBe("draining\n");
      expect((await agent.admin("/healthz")).status).toBe(200);
      expect((await agent.admin("/startz")).status).toBe(200);
      expect(answered).toBe(false);
    } finally {
      resume();
    }
    const ack = await inFlight;
    expect(ack.actions).toContainEqual({
      type: ActionType.SET_VAR,
      scope: Scope.SESS,
      name: "ip_score",
      value: { type: 2, value: 0 },
    });
    const closed = await haproxy.closed;
    expect(closed.disconnect?.status).toBe(0);
    expect(await agent.process.exited).toBe(0);
  });

  it("serves on through DRAIN_DELAY with /readyz 503, in every worker, then disconnects and exits 0", async () => {
    const agent = await app({ SPOA_WORKERS: "2", DRAIN_DELAY: "8s", DRAIN_TIMEOUT: "20s" });
    const connections = await Promise.all(Array.from({ length: 4 }, () => client(agent.spopPort)));
    agent.process.child.kill("SIGTERM");
    await waitFor(async () => (await agent.admin("/readyz")).status === 503, { what: "readyz 503" });
    // Still serving: every connection, whichever worker holds it, answers.
    const acks = await Promise.all(
      connections.map((connection, i) => connection.notify([checkRateMessage(`192.0.2.${80 + i}`)])),
    );
    expect(acks).toHaveLength(4);
    await waitFor(async () => total(await agent.metrics(), "gcra_rate_limiting_draining") === 1, {
      what: "the workers' draining gauge",
    });
    // All of that within the delay: no worker has begun to close.
    expect(agent.output()).not.toContain('"msg":"closing: no new SPOP connections');
    const closes = await Promise.all(connections.map((connection) => connection.closed));
    expect(closes.map((closed) => closed.disconnect?.status)).toEqual([0, 0, 0, 0]);
    expect(await agent.process.exited).toBe(0);
    expect(agent.output()).toMatch(/"delayMs":8000,"signal":"SIGTERM","workers":2,"msg":"draining"/);
  });

  it("exits at once on a second signal, whatever is still in flight", async () => {
    const agent = await app({ VALKEY_TIMEOUT: "10s", DRAIN_TIMEOUT: "30s" });
    const haproxy = await client(agent.spopPort);
    await haproxy.notify([checkRateMessage("192.0.2.51")]);
    const resume = pauseValkey();
    try {
      void haproxy.notify([checkRateMessage("192.0.2.51")]).catch(() => undefined);
      await waitFor(
        async () => total(await agent.metrics(), "spoa_frames_received_total", { type: "notify" }) === 2,
        {
          what: "the second NOTIFY at the agent",
        },
      );
      agent.process.child.kill("SIGTERM");
      await waitFor(async () => (await agent.admin("/readyz")).status === 503, { what: "readyz 503" });
      const signalled = performance.now();
      agent.process.child.kill("SIGTERM");
      expect(await agent.process.exited).toBe(128 + 15);
      expect(performance.now() - signalled).toBeLessThan(2000);
    } finally {
      resume();
    }
  });

  it("runs SPOA_WORKERS processes on one port: both take connections, metrics are summed over them", async () => {
    const agent = await app({ SPOA_WORKERS: "2", LOG_LEVEL: "debug" }, 4 << 20);
    const output = agent.output();
    expect(output).toMatch(/SPOA_WORKERS\s+: 2 \(SPOA_WORKERS\)/);
    expect(output).toMatch(/VALKEY_PASSWORD\s+: \(set\)/);
    expect(output).not.toContain(password);

    // The kernel spreads connections over the workers' sockets by a hash of the addresses:
    // with 24 connections, one worker taking them all has odds of 2 in 2^24.
    const connections = await Promise.all(Array.from({ length: 24 }, () => client(agent.spopPort)));
    await Promise.all(
      connections.map(async (connection, i) => {
        for (let j = 0; j < 2; j++) await connection.notify([checkRateMessage(`198.51.${i}.${j + 1}`)]);
      }),
    );
    const decisions = () =>
      agent
        .output()
        .split("\n")
        .filter((line) => line.includes('"msg":"decision"'))
        .map((line) => JSON.parse(line) as { pid: number; key: string });
    await waitFor(
      () => decisions().length === 48,
      { what: "48 decision log lines" },
      () => agent.output(),
    );
    const pids = new Set(decisions().map((d) => d.pid));
    expect(pids.size).toBe(2);
    expect(pids.has(agent.process.pid)).toBe(false);

    // Summing is what is tested here, not who decided: on a busy machine a store call may miss
    // VALKEY_TIMEOUT and the policy (open) decide. A worker that misses a scrape's deadline is
    // summed from its last reply, which its late answer refreshes for the next scrape.
    let metrics: Sample[] = [];
    await waitFor(
      async () => {
        metrics = await agent.metrics();
        return total(metrics, "gcra_decisions_total", { outcome: "allowed" }) === 48;
      },
      { what: "48 allowed decisions summed over the workers" },
      () => JSON.stringify(metrics.filter((sample) => sample.name === "gcra_decisions_total")),
    );
    expect(total(metrics, "spoa_frames_received_total", { type: "notify" })).toBe(48);
    expect(total(metrics, "spoa_connections")).toBe(24);
    expect(total(metrics, "gcra_rate_limiting_workers")).toBe(2);
    expect(total(metrics, "gcra_store_mode")).toBe(2);
    expect((await agent.admin("/readyz")).status).toBe(200);

    expect(await agent.stop("SIGTERM")).toBe(0);
    for (const pid of pids) expect(() => process.kill(pid, 0), `worker ${pid} is gone`).toThrow();
    const closes = await Promise.all(connections.map((connection) => connection.closed));
    expect(closes.map((closed) => closed.disconnect?.status)).toEqual(new Array(24).fill(0));
  });
});
