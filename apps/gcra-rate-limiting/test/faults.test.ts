/**
 * Faults under steady load through HAProxy 2.6 and 3.0 → SPOE → app → Valkey: valkey-server
 * killed (SIGKILL) and restarted on its port, SCRIPT FLUSH, and an HAProxy reload. Each phase runs
 * load until a number of replies or an event is seen, stops it, and counts exactly: every
 * request has one decision, by the store or by the failure policy, and the HTTP statuses match
 * them. HAProxy's `timeout processing` and VALKEY_TIMEOUT are generous, so while Valkey is healthy
 * the policy answers nothing — which each phase asserts. A cluster failover is in
 * failover.test.ts.
 */
import { haproxyBinaries, type RedisServer, startRedis, waitFor } from "@spoekit/harness";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { generous, hangMs, logLine, logLines, phase, ridesThrough, statusCounts } from "./load.ts";
import { type AppProcess, type Front, startApp, startBackend, startProxy, total } from "./stack.ts";

/** `performance.now()` of a log line's epoch-ms `time`. */
const sinceOrigin = (epochMs: number) => epochMs - performance.timeOrigin;

describe.each(haproxyBinaries())("faults under load, behind $name", (haproxy) => {
  let redis: RedisServer | undefined;
  let backend: Awaited<ReturnType<typeof startBackend>> | undefined;
  /** Policy `closed` and a limit no client reaches: a 429 is the policy, a 200 the store. */
  let guarded: { app: AppProcess; proxy: Front } | undefined;
  /** Policy `open`, 1 request/s in bursts of 5: the store allows and denies. */
  let limited: { app: AppProcess; proxy: Front } | undefined;
  let nextBlock = 0;
  /** Addresses no request has used yet: a block of `clients`. */
  const freshAddresses = () => {
    const block = ++nextBlock;
    return (i: number) => `198.18.${block}.${i + 1}`;
  };
  const stack = (which: typeof guarded) => {
    if (!which) throw new Error("the stack did not start");
    return which;
  };

  beforeAll(async () => {
    redis = await startRedis();
    backend = await startBackend();
    const common = {
      VALKEY_NODES: redis.url,
      SPOA_WORKERS: "1",
      VALKEY_TIMEOUT: generous.valkeyTimeout,
    };
    const start = async (env: Record<string, string>) => {
      const app = await startApp({ ...common, ...env }, { outputLimit: 16 * 2 ** 20 });
      const proxy = await startProxy(haproxy, [app.spopPort], backend?.port ?? 0, {
        processingTimeout: generous.processingTimeout,
        masterWorker: true,
      });
      await waitFor(async () => (await proxy.agentStates()).every((s) => s === "UP"), {
        what: "the agent UP in HAProxy",
        timeoutMs: hangMs,
      });
      return { app, proxy };
    };
    guarded = await start({
      SPOA_FAILURE_POLICY: "closed",
      SPOA_RATE_INTERVAL: "1",
      SPOA_RATE_BURST: "1000000000",
    });
    limited = await start({
      SPOA_FAILURE_POLICY: "open",
      SPOA_RATE_INTERVAL: "1000000",
      SPOA_RATE_BURST: "5000000",
    });
  }, hangMs);

  afterAll(async () => {
    for (const s of [guarded, limited]) {
      await s?.proxy.stop();
      await s?.app.stop();
    }
    await backend?.close();
    await redis?.stop();
  });

  it(
    "kill -9 of Valkey, then a restart on its port: closed denies meanwhile, the store decides before and after",
    async () => {
      const { app, proxy } = stack(guarded);
      const mark = app.output().length;

      // Healthy: every request decided by the store.
      const healthy = await phase(app, proxy, freshAddresses(), (load) => load.until(200));
      expect(healthy.load.failures).toEqual([]);
      expect(statusCounts(healthy.load.replies)).toEqual({
        ok: healthy.load.replies.length,
        limited: 0,
        other: [],
      });
      expect(healthy.decided.store.allowed).toBe(healthy.load.replies.length);
      expect(healthy.decided.policy).toEqual({ allowed: 0, denied: 0 });

      let killedAt = 0;
      let backAt = 0;
      let restartedAt = 0;
      let reopenedAt = 0;
      const outage = await phase(app, proxy, freshAddresses(), async (load) => {
        await load.until(100);
        killedAt = performance.now();
        await redis?.kill();
        await load.until(50, (r) => r.status === 429);
        await waitFor(async () => (await app.admin("/readyz")).status === 503, {
          what: "readyz 503 under closed",
          timeoutMs: hangMs,
        });
        restartedAt = performance.now();
        await redis?.restart();
        backAt = performance.now();
        reopenedAt = sinceOrigin((await logLine(app, "Valkey decides for this shard again", mark)).time);
        await logLine(app, "Valkey answers again", mark);
        await load.until(100, (r) => r.status === 200 && r.sentAt > reopenedAt);
      });
      const { replies, failures } = outage.load;
      const counts = statusCounts(replies);
      expect(failures).toEqual([]);
      expect(counts.other).toEqual([]);
      // Every request got a verdict (none passed unchecked by HAProxy) …
      expect(replies.filter((r) => r.headers["ratelimit-limit"] !== "1000000000")).toEqual([]);
      // … from the store (allowed: no client reaches the limit) or from `closed` (denied).
      expect(outage.decided).toEqual({
        allowed: counts.ok,
        denied: counts.limited,
        store: { allowed: counts.ok, denied: 0 },
        policy: { allowed: 0, denied: counts.limited },
      });
      const denials = replies.filter((r) => r.status === 429);
      expect(denials.every((r) => r.headers["retry-after"] === "1")).toBe(true);
      // The policy answered only between the kill and the circuit's closing.
      expect(denials.filter((r) => r.doneAt < killedAt || r.sentAt > reopenedAt)).toEqual([]);

      // One line per transition.
      const lines = logLines(app, mark);
      const count = (msg: string) => lines.filter((l) => l.msg === msg).length;
      expect(count("Valkey is unreachable")).toBe(1);
      expect(count("the failure policy answers for this Valkey shard")).toBe(1);
      expect(count("Valkey answers again")).toBe(1);
      expect(count("Valkey decides for this shard again")).toBe(1);
      await waitFor(async () => (await app.admin("/readyz")).status === 200, {
        what: "readyz 200",
        timeoutMs: hangMs,
      });

      const firstDenial = Math.min(...denials.map((r) => r.doneAt));
      const opened = sinceOrigin(
        lines.find((l) => l.msg === "the failure policy answers for this Valkey shard")?.time ?? 0,
      );
      const firstStoreVerdict = Math.min(
        ...replies.filter((r) => r.status === 200 && r.sentAt > restartedAt).map((r) => r.doneAt),
      );
      console.info(
        `${haproxy.name}, kill -9: circuit open ${Math.round(opened - killedAt)} ms and first policy answer ` +
          `${Math.round(firstDenial - killedAt)} ms after the kill; Valkey answering PING ${Math.round(backAt - restartedAt)} ms ` +
          `after its restart began; first store verdict ${Math.round(firstStoreVerdict - backAt)} ms after that ` +
          `(${Math.round(firstStoreVerdict - restartedAt)} ms after the restart began); ${counts.ok} store, ${counts.limited} policy answers`,
      );

      // Healthy again: the store decides everything.
      const after = await phase(app, proxy, freshAddresses(), (load) => load.until(200));
      expect(after.load.failures).toEqual([]);
      expect(statusCounts(after.load.replies).ok).toBe(after.load.replies.length);
      expect(after.decided.policy).toEqual({ allowed: 0, denied: 0 });
    },
    hangMs,
  );

  it(
    "SCRIPT FLUSH under load: the script is sent again, logged once, and the policy answers nothing",
    async () => {
      const { app, proxy } = stack(limited);
      const mark = app.output().length;
      const lines = await ridesThrough(app, proxy, freshAddresses(), async () => {
        expect(await redis?.command("SCRIPT", "FLUSH")).toBe("OK");
        await logLine(app, "Valkey lost the script (NOSCRIPT): sent again", mark);
      });
      expect(lines.filter((l) => l.msg === "Valkey lost the script (NOSCRIPT): sent again")).toHaveLength(1);
    },
    hangMs,
  );

  it(
    "HAProxy reload under load: every request decided by the store, none unchecked, no protocol error",
    async () => {
      const { app, proxy } = stack(limited);
      const connections = async () => {
        const metrics = await app.metrics();
        return {
          opened: total(metrics, "spoa_connections_opened_total"),
          closed: total(metrics, "spoa_connections_closed_total"),
        };
      };
      let before = { opened: 0, closed: 0 };
      await ridesThrough(app, proxy, freshAddresses(), async () => {
        before = await connections();
        await proxy.haproxy.reload(hangMs);
      });
      // The new worker spoke to the agent over connections of its own; the former one's closed.
      const after = await connections();
      expect(after.opened).toBeGreaterThan(before.opened);
      expect(after.closed).toBeGreaterThan(before.closed);
    },
    hangMs,
  );
});
