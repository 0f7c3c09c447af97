/**
 * A Valkey Cluster (3 primaries, a replica each) failing over under steady load through HAProxy
 * → SPOE → app: a manual CLUSTER FAILOVER, where the store keeps deciding every request, then
 * the new primary killed, where the `open` policy answers for its shard until the replica takes
 * over. Counted exactly as in faults.test.ts. What is tested here lies between the app and
 * Valkey, so one HAProxy release (the oldest, 2.6) carries the load; faults.test.ts runs both.
 */
import { haproxyBinaries, type RedisCluster, startCluster, waitFor } from "@spoekit/harness";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { generous, hangMs, logLine, logLines, phase, ridesThrough, statusCounts } from "./load.ts";
import { type AppProcess, type Front, startApp, startBackend, startProxy, total } from "./stack.ts";

const [haproxy] = haproxyBinaries();

describe(`a Valkey Cluster failing over under load, behind ${haproxy?.name}`, () => {
  let cluster: RedisCluster | undefined;
  let backend: Awaited<ReturnType<typeof startBackend>> | undefined;
  let app: AppProcess;
  let proxy: Front;
  let nextBlock = 0;
  const freshAddresses = () => {
    const block = ++nextBlock;
    return (i: number) => `198.19.${block}.${i + 1}`;
  };
  const running = () => {
    if (!cluster) throw new Error("the cluster did not start");
    return cluster;
  };

  beforeAll(async () => {
    if (!haproxy) throw new Error("haproxyBinaries() names no HAProxy");
    cluster = await startCluster({ primaries: 3, replicasPerPrimary: 1 });
    backend = await startBackend();
    app = await startApp(
      {
        VALKEY_NODES: cluster.urls.join(","),
        VALKEY_MODE: "cluster",
        VALKEY_TIMEOUT: generous.valkeyTimeout,
        SPOA_FAILURE_POLICY: "open",
        SPOA_WORKERS: "1",
        SPOA_RATE_INTERVAL: "1000000",
        SPOA_RATE_BURST: "5000000",
      },
      { outputLimit: 16 * 2 ** 20 },
    );
    proxy = await startProxy(haproxy, [app.spopPort], backend.port, {
      processingTimeout: generous.processingTimeout,
    });
    await waitFor(async () => (await proxy.agentStates()).every((s) => s === "UP"), {
      what: "the agent UP in HAProxy",
      timeoutMs: hangMs,
    });
  }, hangMs);

  afterAll(async () => {
    await proxy?.stop();
    await app?.stop();
    await backend?.close();
    await cluster?.stop();
  });

  it(
    "CLUSTER FAILOVER on the replica of a loaded shard: the store decides every request throughout",
    async () => {
      const address = freshAddresses();
      await ridesThrough(app, proxy, address, async () => {
        const primary = await running().primaryFor(`gcra:${address(0)}`);
        const topology = await running().topology();
        const primaryId = topology.find((n) => n.port === primary.port)?.id;
        const replica = running().nodes.find((node) =>
          topology.some((n) => n.port === node.port && n.role === "replica" && n.primaryId === primaryId),
        );
        if (!replica) throw new Error(`no replica of the primary on port ${primary.port}`);
        expect(await replica.command("CLUSTER", "FAILOVER")).toBe("OK");
        await waitFor(async () => (await running().primaryFor(`gcra:${address(0)}`)).port === replica.port, {
          what: "the replica promoted",
          timeoutMs: hangMs,
        });
        await running().waitUntilHealthy(hangMs);
      });
    },
    hangMs,
  );

  it(
    "the primary of a loaded shard killed: open answers for it until its replica takes over",
    async () => {
      const mark = app.output().length;
      const address = freshAddresses();
      let killedAt = 0;
      let killed = "";
      const shards = (msg: string) =>
        logLines(app, mark)
          .filter((l) => l.msg === msg)
          .map((l) => String(l.shard));
      const { load, decided } = await phase(app, proxy, address, async (load) => {
        await load.until(150);
        killedAt = performance.now();
        killed = `127.0.0.1:${(await running().killPrimaryFor(`gcra:${address(0)}`)).port}`;
        await logLine(app, "the failure policy answers for this Valkey shard", mark);
        await running().waitUntilHealthy(hangMs);
        // Every circuit that opened closes again, the killed node's too once its slots are
        // known to be served by the promoted replica.
        await waitFor(
          () => {
            const closed = new Set(shards("Valkey decides for this shard again"));
            return shards("the failure policy answers for this Valkey shard").every((shard) =>
              closed.has(shard),
            );
          },
          { what: "every circuit closed again", timeoutMs: hangMs },
          () => app.output().slice(mark),
        );
        const healedAt = performance.now();
        await load.until(150, (r) => r.sentAt > healedAt);
      });
      const counts = statusCounts(load.replies);
      expect(load.failures).toEqual([]);
      expect(counts.other).toEqual([]);
      expect(load.replies.filter((r) => r.headers["ratelimit-limit"] !== "5")).toEqual([]);
      // `open` only allows: every denial is the store's.
      expect(decided.allowed).toBe(counts.ok);
      expect(decided.denied).toBe(counts.limited);
      expect(decided.store.denied).toBe(counts.limited);
      expect(decided.policy.denied).toBe(0);
      expect(decided.policy.allowed).toBeGreaterThan(0);
      // One line per transition: the node unreachable once; each shard's circuit opened once (the
      // others' too while the cluster reported CLUSTERDOWN) and closed once.
      const lines = logLines(app, mark);
      expect(lines.filter((l) => l.msg === "Valkey is unreachable").map((l) => l.node)).toEqual([killed]);
      const opened = shards("the failure policy answers for this Valkey shard");
      expect(opened).toContain(killed);
      expect(new Set(opened).size).toBe(opened.length);
      expect(shards("Valkey decides for this shard again").sort()).toEqual([...opened].sort());
      // And the metrics say the store decides again, on no failing partition.
      const metrics = await app.metrics();
      expect(total(metrics, "gcra_store_failing_partitions")).toBe(0);
      expect(total(metrics, "gcra_store_mode", { mode: "store" })).toBe(1);
      const at = (l: (typeof lines)[number]) => Math.round(l.time - performance.timeOrigin - killedAt);
      console.info(
        `cluster primary ${killed} killed: ${decided.policy.allowed} policy answers, ` +
          `${decided.store.allowed + decided.store.denied} store decisions; log (ms after the kill): ` +
          lines.map((l) => `${at(l)} ${l.msg} ${String(l.shard ?? l.node ?? l.reason ?? "")}`).join("; "),
      );
    },
    hangMs,
  );
});
