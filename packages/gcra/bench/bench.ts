/**
 * Benchmarks of @spoekit/gcra, printed as the README quotes them. Run with `pnpm bench` (which
 * pins this process to CPU 0 and takes the machine-wide benchmark lock); redis-server is pinned to
 * CPU 1. Figures are ratios to a baseline measured in the same run: absolute numbers on a shared
 * machine are noise.
 *
 * - ValkeyStore, 64 concurrent callers on one connection, vs `redis-benchmark` running the same
 *   script by EVALSHA with 64 requests in flight on one connection (`-c 1 -P 64`); also shown:
 *   `-c 64 -P 1` (64 connections, no pipelining), with its own latency percentiles.
 * - ValkeyStore latency, three times per round: at saturation (64 callers back to back: the
 *   latency is mostly queueing), at half the throughput just measured (64 callers, each keeping
 *   its own schedule with timers; latency of each call from issue to answer), and, to tell how
 *   much of that tail is Redis expiring keys, at half load again with a limit whose keys outlive
 *   the run. With each figure, what could make the tail: garbage collection
 *   (`PerformanceObserver` "gc"), event-loop delay (`monitorEventLoopDelay`), time both processes
 *   waited for a CPU (`/proc/<pid>/schedstat`) and Redis's own slowest expire cycle
 *   (`LATENCY LATEST`, threshold 1 ms).
 * - The same on a cluster of three primaries: ValkeyStore with 64 callers per primary vs
 *   `redis-benchmark --cluster -c 3 -P 64`, on keys like redis-benchmark's (each primary's in one
 *   slot) and on keys spread over every slot, and the latency at half that rate.
 * - What batching 16 decisions into one multi-key script call would give Valkey (decisions/s of
 *   `GCRA_MULTI_SCRIPT` vs the single-key script, both by `redis-benchmark`).
 * - JS heap allocated per ValkeyStore decision, standalone and on the cluster (in a child process
 *   with `--expose-gc` and a young generation no sample fills; see `allocationPerDecision`): one
 *   key by `check`, and two keys in one `checkAll`, written directly vs through iovalkey's
 *   command path (the baseline, in the same process).
 * - With each throughput ratio, the CPU per call of each side (client, servers) and the ratio
 *   those allow (see `CpuPerCall`): on a loaded machine the wall-clock ratio is mostly noise.
 * - The machine's load average at the start and the end: other processes share the CPUs.
 * - MemoryStore: decisions/s on one core, and bytes per live key at 1 000 000 keys (measured in a
 *   child process with `--expose-gc`: heap and array buffers after GC, before and after).
 */
import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { cpus, loadavg } from "node:os";
import { monitorEventLoopDelay, PerformanceObserver } from "node:perf_hooks";
import { fileURLToPath } from "node:url";
import {
  GCRA_MULTI_SCRIPT,
  GCRA_MULTI_SCRIPT_SHA,
  GCRA_SCRIPT,
  GCRA_SCRIPT_SHA,
  GcraLimit,
  type GcraRequest,
  MemoryStore,
  ValkeyStore,
} from "@spoekit/gcra";
import { heapSampler, type RedisServer, requireBinary, startCluster, startRedis } from "@spoekit/harness";
import { Cluster, Redis } from "iovalkey";
import { allocationArgs } from "./allocation-args.ts";

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5);
const SECONDS = Number(process.env.BENCH_SECONDS ?? 2);
const CALLERS = 64;
const KEYS = 100_000;

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] ?? Number.NaN;
}

function percentile(sorted: Float64Array, p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((sorted.length * p) / 100))] ?? Number.NaN;
}

interface BenchmarkResult {
  readonly rps: number;
  readonly p50: number;
  readonly p99: number;
}

/** The single-key GCRA script by EVALSHA, T = 10 ms, τ = 200 ms, as `redis-benchmark` arguments. */
function singleCall(key: string): string[] {
  return ["evalsha", GCRA_SCRIPT_SHA, "1", key, "10000", "200000", "1", "0"];
}

/** `count` independent decisions (enforce 0: each judged alone) in one multi-key script call. */
function batchedCall(count: number): string[] {
  const keys = Array.from({ length: count }, () => "gcra:bench:__rand_int__");
  const args = Array.from({ length: count }, () => ["10000", "200000", "0"]).flat();
  return ["evalsha", GCRA_MULTI_SCRIPT_SHA, String(count), ...keys, "0", ...args];
}

/**
 * `redis-benchmark` running a GCRA script by EVALSHA on random keys (`__rand_int__`, each
 * occurrence drawn anew), by default the single-key one. With `cluster` it learns
 * the primaries from `port` and spreads the connections over them (`--cluster`); its keys then
 * carry `{tag}`, which it replaces with a hash tag of the connection's own primary.
 */
function redisBenchmark(
  port: number,
  connections: number,
  pipeline: number,
  requests: number,
  cluster = false,
  command: readonly string[] = singleCall(
    cluster ? "gcra:{tag}:bench:__rand_int__" : "gcra:bench:__rand_int__",
  ),
): BenchmarkResult {
  const bin = requireBinary("redis-benchmark");
  const args = [
    "-p",
    String(port),
    "-c",
    String(connections),
    "-P",
    String(pipeline),
    "-n",
    String(requests),
  ];
  if (cluster) args.push("--cluster");
  args.push("-r", String(KEYS), "--csv", ...command);
  const run = spawnSync("taskset", ["-c", "0", bin, ...args], { encoding: "utf8" });
  // "test","rps","avg_latency_ms","min_latency_ms","p50_latency_ms","p95_latency_ms","p99_latency_ms","max_latency_ms"
  const fields = (run.stdout.trim().split("\n").pop() ?? "")
    .split(",")
    .map((f) => Number(f.replaceAll('"', "")));
  const [rps, p50, p99] = [fields[1], fields[4], fields[6]];
  if (rps === undefined || p50 === undefined || p99 === undefined || !Number.isFinite(rps)) {
    throw new Error(`unexpected redis-benchmark output: ${run.stdout}${run.stderr}`);
  }
  return { rps, p50, p99 };
}

const keys = Array.from({ length: KEYS }, (_, i) => `bench:${i}`);
const randomKey = () => keys[(Math.random() * KEYS) | 0] as string;

/** Clock ticks per second of `/proc/<pid>/stat` (USER_HZ, 100 on Linux). */
const TICK_US = 1_000_000 / 100;

/**
 * CPU time (user + system) so far, µs, from `/proc/<pid>/stat`: of the process `pid`, or with
 * `children` of the children this process has waited for (redis-benchmark, run by `spawnSync`).
 */
function cpuMicros(pid: number | "self", children = false): number {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  // After the command: state is field 3, utime 14, stime 15, cutime 16, cstime 17.
  const at = children ? 13 : 11;
  return (Number(fields[at]) + Number(fields[at + 1])) * TICK_US;
}

/**
 * CPU per call of a client and of the servers over one measurement, µs. On a machine where other
 * processes take the CPUs, wall-clock throughput says more about the scheduler than about either
 * side; CPU per call does not. With the client and the servers on a core each, as here, the
 * throughput a run can reach is one call per the larger of the two.
 */
interface CpuPerCall {
  readonly client: number;
  readonly server: number;
}

/**
 * Measures the CPU per call of `run` on the client side `client` and on the servers `serverPids`;
 * `calls` says how many calls `run`'s result stands for.
 */
async function cpuPerCall<T>(
  client: () => number,
  serverPids: readonly number[],
  run: () => Promise<T> | T,
  calls: (result: T) => number,
): Promise<[CpuPerCall, T]> {
  const servers = () => serverPids.reduce((sum, pid) => sum + cpuMicros(pid), 0);
  const [client0, server0] = [client(), servers()];
  const result = await run();
  const n = calls(result);
  return [{ client: (client() - client0) / n, server: (servers() - server0) / n }, result];
}

const ownCpu = () => {
  const { user, system } = process.cpuUsage();
  return user + system;
};
const benchmarkCpu = () => cpuMicros("self", true);
/** The throughput ratio the CPU costs allow: one call per the busier side's CPU time. */
const cpuBoundRatio = (store: CpuPerCall, baseline: CpuPerCall) =>
  Math.max(baseline.client, baseline.server) / Math.max(store.client, store.server);
const describeCpu = (c: CpuPerCall) =>
  `client ${c.client.toFixed(1)} µs, server ${c.server.toFixed(1)} µs per call`;

/** Time a process spent waiting for a CPU so far, ms (Linux), or NaN. */
function runQueueWaitMs(pid: number): number {
  try {
    return Number(readFileSync(`/proc/${pid}/schedstat`, "utf8").split(" ")[1]) / 1e6;
  } catch {
    return Number.NaN;
  }
}

/** What happened around a measurement that could make its tail. */
interface TailCauses {
  gcCount: number;
  gcTotalMs: number;
  gcMaxMs: number;
  /** Event-loop delay beyond the monitor's 1 ms resolution: p99 and max, ms. */
  loopDelayP99Ms: number;
  loopDelayMaxMs: number;
  nodeWaitMs: number;
  redisWaitMs: number;
  /** Redis's slowest active-expire cycle, ms (0 when none took 1 ms). */
  expireCycleMaxMs: number;
}

/** Watches GC, the event loop, CPU waits and Redis's latency monitor while `run` runs. */
async function watched<T>(redis: RedisServer, run: () => Promise<T>): Promise<[T, TailCauses]> {
  const gcs: number[] = [];
  const observer = new PerformanceObserver((list) => {
    for (const entry of list.getEntries()) gcs.push(entry.duration);
  });
  observer.observe({ entryTypes: ["gc"] });
  const loop = monitorEventLoopDelay({ resolution: 1 });
  const redisPid = redis.process().pid;
  await redis.command("LATENCY", "RESET");
  const nodeWait = runQueueWaitMs(process.pid);
  const redisWait = runQueueWaitMs(redisPid);
  loop.enable();
  const result = await run();
  loop.disable();
  observer.disconnect();
  const latest = await redis.command("LATENCY", "LATEST");
  const expire = Array.isArray(latest)
    ? latest.find((row) => Array.isArray(row) && row[0] === "expire-cycle")
    : undefined;
  const beyondResolution = (ns: number) => Math.max(ns / 1e6 - 1, 0);
  return [
    result,
    {
      gcCount: gcs.length,
      gcTotalMs: gcs.reduce((sum, d) => sum + d, 0),
      gcMaxMs: Math.max(0, ...gcs),
      loopDelayP99Ms: beyondResolution(loop.percentile(99)),
      loopDelayMaxMs: beyondResolution(loop.max),
      nodeWaitMs: runQueueWaitMs(process.pid) - nodeWait,
      redisWaitMs: runQueueWaitMs(redisPid) - redisWait,
      expireCycleMaxMs: Array.isArray(expire) ? Number(expire[3]) : 0,
    },
  ];
}

function describeCauses(c: TailCauses): string {
  return `GC ${c.gcCount}× ${c.gcTotalMs.toFixed(0)} ms (max ${c.gcMaxMs.toFixed(1)}), loop delay p99/max +${c.loopDelayP99Ms.toFixed(1)}/+${c.loopDelayMaxMs.toFixed(1)} ms, CPU wait node ${c.nodeWaitMs.toFixed(0)} ms redis ${c.redisWaitMs.toFixed(0)} ms, expire cycle max ${c.expireCycleMaxMs} ms`;
}

interface Latency {
  /** Decisions per second. */
  readonly rate: number;
  /** Decisions made. */
  readonly count: number;
  readonly p50: number;
  readonly p99: number;
  readonly p999: number;
}

/**
 * One timed run of `callers` callers (64 by default). Without `rate` each caller calls back to back (saturation);
 * with it each keeps a schedule of one call every `callers / rate` s, waiting with a timer when
 * ahead and calling at once when behind. Latency is each call's, issue to answer, recorded in
 * `latencies` (preallocated, so recording allocates nothing).
 */
async function valkeyRun(
  store: ValkeyStore,
  limit: GcraLimit,
  latencies: Float64Array,
  rate?: number,
  callers = CALLERS,
  key: () => string = randomKey,
): Promise<Latency> {
  let done = 0;
  const started = performance.now();
  const end = started + SECONDS * 1000;
  const period = rate === undefined ? 0 : (callers / rate) * 1000;
  await Promise.all(
    Array.from({ length: callers }, async (_, caller) => {
      let next = started + (period * caller) / callers;
      while (next < end && performance.now() < end) {
        const wait = next - performance.now();
        if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
        const t0 = performance.now();
        await store.check(key(), limit);
        if (done < latencies.length) latencies[done] = performance.now() - t0;
        done++;
        next += period;
      }
    }),
  );
  const sorted = latencies.subarray(0, Math.min(done, latencies.length)).sort();
  return {
    rate: done / ((performance.now() - started) / 1000),
    count: done,
    p50: percentile(sorted, 50),
    p99: percentile(sorted, 99),
    p999: percentile(sorted, 99.9),
  };
}

const ms = (value: number) => value.toFixed(2);

async function valkey(): Promise<void> {
  const redis = await startRedis();
  try {
    spawnSync("taskset", ["-pc", "1", String(redis.process().pid)]);
    await redis.command("SCRIPT", "LOAD", GCRA_SCRIPT);
    await redis.command("CONFIG", "SET", "latency-monitor-threshold", "1");
    const store = new ValkeyStore({ nodes: [redis.url], timeoutMs: 1000 });
    const limit = new GcraLimit({ emissionIntervalUs: 10_000, burstToleranceUs: 200_000 });
    // 100 s per request, bursts of 100: every call of a run is allowed and stored, like above, but
    // no key expires during the run.
    const lasting = new GcraLimit({ emissionIntervalUs: 100_000_000, burstToleranceUs: 10_000_000_000 });
    await store.check("warm-up", limit);
    const latencies = new Float64Array(400_000 * SECONDS);
    const ratios: number[] = [];
    const cpuRatios: number[] = [];
    const pipelined: number[] = [];
    const saturated: Latency[] = [];
    const half: Latency[] = [];
    const halfLasting: Latency[] = [];
    const unpipelined: BenchmarkResult[] = [];
    for (let round = 0; round < ROUNDS; round++) {
      const redisPid = [redis.process().pid];
      const [baselineCpu, baseline] = await cpuPerCall(
        benchmarkCpu,
        redisPid,
        () => redisBenchmark(redis.port, 1, CALLERS, 100_000 * SECONDS).rps,
        () => 100_000 * SECONDS,
      );
      const [storeCpu, [full, fullCauses]] = await cpuPerCall(
        ownCpu,
        redisPid,
        () => watched(redis, () => valkeyRun(store, limit, latencies)),
        ([run]) => run.count,
      );
      cpuRatios.push(cpuBoundRatio(storeCpu, baselineCpu));
      const [halved, halfCauses] = await watched(redis, () =>
        valkeyRun(store, limit, latencies, full.rate / 2),
      );
      const [kept, keptCauses] = await watched(redis, () =>
        valkeyRun(store, lasting, latencies, full.rate / 2),
      );
      await redis.command("FLUSHALL"); // the lasting keys would be denied by `limit` next round
      await redis.command("SCRIPT", "LOAD", GCRA_SCRIPT);
      const reference = redisBenchmark(redis.port, CALLERS, 1, 50_000 * SECONDS);
      pipelined.push(baseline);
      ratios.push(full.rate / baseline);
      saturated.push(full);
      half.push(halved);
      halfLasting.push(kept);
      unpipelined.push(reference);
      console.log(
        `round ${round + 1}: ValkeyStore ${Math.round(full.rate)}/s, redis-benchmark -c 1 -P 64 ${Math.round(baseline)}/s (ratio ${(full.rate / baseline).toFixed(2)}), -c 64 -P 1 ${Math.round(reference.rps)}/s p50 ${ms(reference.p50)} p99 ${ms(reference.p99)} ms`,
      );
      console.log(
        `  CPU: ValkeyStore ${describeCpu(storeCpu)}; redis-benchmark ${describeCpu(baselineCpu)}; CPU-bound ratio ${cpuBoundRatio(storeCpu, baselineCpu).toFixed(2)}`,
      );
      console.log(
        `  saturated:  p50 ${ms(full.p50)} p99 ${ms(full.p99)} p99.9 ${ms(full.p999)} ms — ${describeCauses(fullCauses)}`,
      );
      console.log(
        `  half load:  ${Math.round(halved.rate)}/s p50 ${ms(halved.p50)} p99 ${ms(halved.p99)} p99.9 ${ms(halved.p999)} ms — ${describeCauses(halfCauses)}`,
      );
      console.log(
        `  half load, no key expiring: p50 ${ms(kept.p50)} p99 ${ms(kept.p99)} p99.9 ${ms(kept.p999)} ms — ${describeCauses(keptCauses)}`,
      );
    }
    await store.close();
    allocationChild([redis.url], "standalone");
    await batching(redis);
    const med = (list: readonly Latency[], pick: (l: Latency) => number) => ms(median(list.map(pick)));
    console.log("\nValkeyStore vs redis-benchmark (same script by EVALSHA, 64 in flight, one connection)");
    console.log(
      `  ValkeyStore, 64 callers:        ${Math.round(median(saturated.map((l) => l.rate)))} decisions/s (median of ${ROUNDS})`,
    );
    console.log(`  redis-benchmark -c 1 -P 64:     ${Math.round(median(pipelined))} calls/s`);
    console.log(
      `  redis-benchmark -c 64 -P 1:     ${Math.round(median(unpipelined.map((r) => r.rps)))} calls/s, p50 ${ms(median(unpipelined.map((r) => r.p50)))} / p99 ${ms(median(unpipelined.map((r) => r.p99)))} ms`,
    );
    console.log(`  ratio (median of rounds):       ${median(ratios).toFixed(2)}   (target ≥ 1.0)`);
    console.log(
      `  CPU-bound ratio (median):       ${median(cpuRatios).toFixed(2)}   (from the CPU per call of each side)`,
    );
    console.log(
      `  latency saturated p50/p99/p99.9: ${med(saturated, (l) => l.p50)} / ${med(saturated, (l) => l.p99)} / ${med(saturated, (l) => l.p999)} ms (medians of the rounds; target p99 ≤ 2 ms)`,
    );
    console.log(
      `  latency at half load (${Math.round(median(half.map((l) => l.rate)))}/s) p50/p99/p99.9: ${med(half, (l) => l.p50)} / ${med(half, (l) => l.p99)} / ${med(half, (l) => l.p999)} ms (target p99 ≤ 1 ms)`,
    );
    console.log(
      `  same, no key expiring in Redis:  ${med(halfLasting, (l) => l.p50)} / ${med(halfLasting, (l) => l.p99)} / ${med(halfLasting, (l) => l.p999)} ms`,
    );
  } finally {
    await redis.stop();
  }
}

/**
 * What batching the decisions of an event-loop turn into one script call would save Valkey:
 * decisions/s of `GCRA_MULTI_SCRIPT` with 16 independent requests per call vs the single-key
 * script, both by `redis-benchmark -c 1 -P 64` in the same round.
 */
async function batching(redis: RedisServer): Promise<void> {
  const batch = 16;
  const decisions = 50_000 * SECONDS;
  const pid = [redis.process().pid];
  await redis.command("SCRIPT", "LOAD", GCRA_MULTI_SCRIPT);
  const ratios: number[] = [];
  const cpuRatios: number[] = [];
  for (let round = 0; round < ROUNDS; round++) {
    const [singleCpu, single] = await cpuPerCall(
      benchmarkCpu,
      pid,
      () => redisBenchmark(redis.port, 1, CALLERS, decisions).rps,
      () => decisions,
    );
    const [batchedCpu, calls] = await cpuPerCall(
      benchmarkCpu,
      pid,
      () => redisBenchmark(redis.port, 1, CALLERS, decisions / batch, false, batchedCall(batch)).rps,
      () => decisions,
    );
    ratios.push((calls * batch) / single);
    cpuRatios.push(singleCpu.server / batchedCpu.server);
  }
  const range = (list: number[]) => {
    const sorted = [...list].sort((a, b) => a - b);
    return `${median(list).toFixed(2)}× (rounds ${(sorted[0] as number).toFixed(2)} – ${(sorted.at(-1) as number).toFixed(2)})`;
  };
  console.log(
    `  ${batch} decisions per script call vs one (redis-benchmark -c 1 -P ${CALLERS}): Valkey's decisions/s ${range(ratios)}, its CPU per decision 1 / ${range(cpuRatios)}`,
  );
}

/**
 * The same on a cluster of three primaries (all pinned to CPU 1): ValkeyStore with 64 callers per
 * primary (one connection per primary) vs `redis-benchmark --cluster -c 3 -P 64` (one connection
 * per primary, 64 in flight on each) — on keys laid out like redis-benchmark's (each primary's in
 * one slot: Valkey keeps a table per slot), and on keys spread over every slot — then the latency
 * at half that rate, on spread keys.
 */
async function valkeyCluster(): Promise<void> {
  const cluster = await startCluster({ primaries: 3, replicasPerPrimary: 0 });
  try {
    for (const node of cluster.nodes) {
      spawnSync("taskset", ["-pc", "1", String(node.process().pid)]);
      await node.command("SCRIPT", "LOAD", GCRA_SCRIPT);
    }
    const primaries = cluster.nodes.length;
    const callers = CALLERS * primaries;
    const store = new ValkeyStore({ nodes: [...cluster.urls], mode: "cluster", timeoutMs: 1000 });
    if (!(await store.warmUp(10_000))) throw new Error("ValkeyStore did not warm up on the cluster");
    const limit = new GcraLimit({ emissionIntervalUs: 10_000, burstToleranceUs: 200_000 });
    const latencies = new Float64Array(400_000 * SECONDS);
    const ratios: number[] = [];
    const cpuRatios: number[] = [];
    const spreadRatios: number[] = [];
    const spreadCpuRatios: number[] = [];
    const baselines: number[] = [];
    // Keys like redis-benchmark's: each primary's keys in one slot of its own (a hash tag per primary).
    const tags: string[] = [];
    const wanted = new Set(store.partitions());
    for (let n = 0; wanted.size > 0; n++) {
      if (wanted.delete(store.partitionOf(`{t${n}}`))) tags.push(`{t${n}}`);
    }
    const tagged = keys.map((key, i) => `${tags[i % tags.length]}:${key}`);
    const taggedKey = () => tagged[(Math.random() * KEYS) | 0] as string;
    const saturated: Latency[] = [];
    const half: Latency[] = [];
    const port = (cluster.nodes[0] as RedisServer).port;
    for (let round = 0; round < ROUNDS; round++) {
      const pids = cluster.nodes.map((node) => node.process().pid);
      const [baselineCpu, baseline] = await cpuPerCall(
        benchmarkCpu,
        pids,
        () => redisBenchmark(port, primaries, CALLERS, 100_000 * SECONDS, true).rps,
        () => 100_000 * SECONDS,
      );
      const [storeCpu, full] = await cpuPerCall(
        ownCpu,
        pids,
        () => valkeyRun(store, limit, latencies, undefined, callers, taggedKey),
        (run) => run.count,
      );
      const [spreadCpu, spread] = await cpuPerCall(
        ownCpu,
        pids,
        () => valkeyRun(store, limit, latencies, undefined, callers),
        (run) => run.count,
      );
      spreadRatios.push(spread.rate / baseline);
      spreadCpuRatios.push(cpuBoundRatio(spreadCpu, baselineCpu));
      cpuRatios.push(cpuBoundRatio(storeCpu, baselineCpu));
      const halved = await valkeyRun(store, limit, latencies, full.rate / 2, callers);
      baselines.push(baseline);
      ratios.push(full.rate / baseline);
      saturated.push(full);
      half.push(halved);
      console.log(
        `cluster round ${round + 1}: ValkeyStore ${Math.round(full.rate)}/s, redis-benchmark --cluster -c ${primaries} -P ${CALLERS} ${Math.round(baseline)}/s (ratio ${(full.rate / baseline).toFixed(2)}); half load ${Math.round(halved.rate)}/s p50 ${ms(halved.p50)} p99 ${ms(halved.p99)} p99.9 ${ms(halved.p999)} ms`,
      );
      console.log(
        `  CPU: ValkeyStore ${describeCpu(storeCpu)}; redis-benchmark ${describeCpu(baselineCpu)}; CPU-bound ratio ${cpuBoundRatio(storeCpu, baselineCpu).toFixed(2)}`,
      );
      console.log(
        `  keys spread over every slot: ValkeyStore ${Math.round(spread.rate)}/s (ratio ${(spread.rate / baseline).toFixed(2)}), ${describeCpu(spreadCpu)}; CPU-bound ratio ${cpuBoundRatio(spreadCpu, baselineCpu).toFixed(2)}`,
      );
    }
    await store.close();
    allocationChild(cluster.urls, "cluster");
    const med = (list: readonly Latency[], pick: (l: Latency) => number) => ms(median(list.map(pick)));
    console.log(
      `\nValkeyStore vs redis-benchmark on a cluster of ${primaries} primaries (same script by EVALSHA, 64 in flight per primary, one connection each)`,
    );
    console.log(
      `  ValkeyStore, ${callers} callers:       ${Math.round(median(saturated.map((l) => l.rate)))} decisions/s (median of ${ROUNDS})`,
    );
    console.log(
      `  redis-benchmark --cluster -c ${primaries} -P ${CALLERS}: ${Math.round(median(baselines))} calls/s`,
    );
    console.log(`  ratio (median of rounds):       ${median(ratios).toFixed(2)}   (target ≥ 1.0)`);
    console.log(
      `  CPU-bound ratio (median):       ${median(cpuRatios).toFixed(2)}   (from the CPU per call of each side)`,
    );
    console.log(
      `  keys spread over every slot:    ratio ${median(spreadRatios).toFixed(2)}, CPU-bound ratio ${median(spreadCpuRatios).toFixed(2)} (medians)`,
    );
    console.log(
      `  latency at half load (${Math.round(median(half.map((l) => l.rate)))}/s) p50/p99/p99.9: ${med(half, (l) => l.p50)} / ${med(half, (l) => l.p99)} / ${med(half, (l) => l.p999)} ms (target p99 ≤ 1 ms)`,
    );
  } finally {
    await cluster.stop();
  }
}

function memoryThroughput(): void {
  const store = new MemoryStore({ maxKeys: 1_000_000 });
  const limit = new GcraLimit({ emissionIntervalUs: 10_000, burstToleranceUs: 200_000 });
  const keys = Array.from({ length: 65_536 }, (_, i) => `10.${(i >> 8) & 255}.${i & 255}.${i % 7}`);
  let allowed = 0;
  for (let i = 0; i < 2_000_000; i++) if (store.decide(keys[i & 65_535] as string, limit).allowed) allowed++;
  const rates: number[] = [];
  for (let round = 0; round < ROUNDS; round++) {
    const n = 5_000_000;
    const t0 = performance.now();
    for (let i = 0; i < n; i++) if (store.decide(keys[i & 65_535] as string, limit).allowed) allowed++;
    rates.push(n / ((performance.now() - t0) / 1000));
  }
  // A new key per decision, each expiring 10 ms later: a flood of distinct clients.
  const churn = new MemoryStore({ maxKeys: 1_000_000 });
  const churnRates: number[] = [];
  for (let round = 0, i = 0; round < ROUNDS; round++) {
    const n = 2_000_000;
    const t0 = performance.now();
    for (const end = i + n; i < end; i++) {
      if (churn.decide(`10.${(i >>> 16) & 255}.${(i >>> 8) & 255}.${i & 255}`, limit).allowed) allowed++;
    }
    churnRates.push(n / ((performance.now() - t0) / 1000));
  }
  console.log("\nMemoryStore");
  console.log(
    `  decide():                       ${(median(rates) / 1e6).toFixed(2)} M decisions/s on one core (median of ${ROUNDS}; target ≥ 3 M)`,
  );
  console.log(
    `  decide(), a new key each time:  ${(median(churnRates) / 1e6).toFixed(2)} M decisions/s (${churn.size} keys held at the end)`,
  );
  if (allowed < 0) console.log(allowed);
}

/** Child process: live bytes per key with 1 000 000 keys held. */
function memoryFootprint(): void {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (!gc) throw new Error("run with --expose-gc");
  const count = 1_000_000;
  const used = () => {
    gc();
    gc();
    const usage = process.memoryUsage();
    return usage.heapUsed + usage.arrayBuffers;
  };
  const before = used();
  const store = new MemoryStore({ maxKeys: count });
  // A key expires at its TAT, one emission interval after its one request: an hour keeps every
  // key live for the whole measurement, however long a loaded machine takes to insert them.
  const limit = new GcraLimit({ emissionIntervalUs: 3_600_000_000, burstToleranceUs: 3_600_000_000 });
  for (let i = 0; i < count; i++) {
    const key = `${(i >>> 16) & 255}.${(i >>> 8) & 255}.${i & 255}.${i % 10}`;
    store.decide(key, limit);
  }
  const after = used();
  if (store.size !== count) throw new Error(`expected ${count} keys, got ${store.size}`);
  console.log(
    `  bytes per live key:             ${((after - before) / count).toFixed(1)} at ${count} keys (IPv4-like keys, key strings included; target ≤ 150)`,
  );
}

/**
 * Child process (`--expose-gc`, a 256 MB young generation): JS heap bytes allocated per decision
 * by ValkeyStore, 64 callers back to back on the store at `nodes`. After a warm-up, `gc()`, then
 * `DECISIONS` decisions, then the growth of `heapUsed`; a sample during which any GC ran (seen by
 * a `PerformanceObserver`) is discarded, so the growth is every byte allocated and none freed.
 * Everything the process does while deciding counts: the store, iovalkey, the socket's reads
 * and writes, the callers' own loop (a few closures per call, measured alone and subtracted).
 */
async function allocationPerDecision(nodes: string[], mode: "standalone" | "cluster"): Promise<void> {
  const heap = heapSampler();
  // A deadline no load on a shared machine reaches: every call must be answered.
  const store = new ValkeyStore({ nodes, mode, timeoutMs: 60_000 });
  // The baseline of checkAll: the same store on a client with a key prefix of its own, which the
  // store leaves to iovalkey's command path (keys then carry iovalkey's prefix, not the store's).
  const urls = nodes.map((node) => new URL(node));
  const prefixed =
    mode === "cluster"
      ? new Cluster(
          urls.map((url) => ({ host: url.hostname, port: Number(url.port) })),
          { keyPrefix: "gcra:", slotsRefreshTimeout: 5000 },
        )
      : new Redis({ host: urls[0]?.hostname, port: Number(urls[0]?.port), keyPrefix: "gcra:" });
  const throughClient = new ValkeyStore({ client: prefixed, keyPrefix: "", timeoutMs: 60_000 });
  const limit = new GcraLimit({ emissionIntervalUs: 10_000, burstToleranceUs: 200_000 });
  const tenantLimit = new GcraLimit({ emissionIntervalUs: 1_000, burstToleranceUs: 200_000 });
  for (const s of [store, throughClient]) if (!(await s.warmUp(10_000))) throw new Error("no warm-up");
  const decisions = 20_000;
  const loop = (decide: () => Promise<unknown>) =>
    Promise.all(
      Array.from({ length: CALLERS }, async (_, caller) => {
        for (let i = caller; i < decisions; i += CALLERS) await decide();
      }),
    );
  const measure = (decide: () => Promise<unknown>): Promise<number> =>
    heap.perOperation(() => loop(decide), decisions);
  /** Median of 5 samples, the callers' own bytes (`own`) subtracted. */
  const perCall = async (decide: () => Promise<unknown>, own: number): Promise<number> => {
    for (let i = 0; i < 3; i++) await loop(decide);
    const samples: number[] = [];
    for (let i = 0; i < 5; i++) samples.push(await measure(decide));
    return Math.round(median(samples) - own);
  };
  const resolved = Promise.resolve();
  for (let i = 0; i < 3; i++) await loop(() => store.check(randomKey(), limit));
  const callers = await measure(() => resolved.then(randomKey));
  const single = await perCall(() => store.check(randomKey(), limit), callers);
  // The rules file's common case: a request judged by two limits (a per-IP and a per-tenant
  // rule) in one script call. On a cluster both keys carry one hash tag, so they share a slot.
  const pair = (): GcraRequest[] => {
    const key = randomKey();
    return mode === "cluster"
      ? [
          { key: `{${key}}ip`, limit },
          { key: `{${key}}tenant`, limit: tenantLimit },
        ]
      : [
          { key, limit },
          { key: `t${key}`, limit: tenantLimit },
        ];
  };
  const pairCallers = await measure(() => resolved.then(pair));
  const multi = await perCall(() => store.checkAll(pair()), pairCallers);
  const multiThroughClient = await perCall(() => throughClient.checkAll(pair()), pairCallers);
  heap.stop();
  await Promise.all([store.close(), throughClient.close()]);
  prefixed.disconnect();
  console.log(
    `  JS heap allocated per decision (${mode}): ${single} B (median of 5 × ${decisions}, the callers' own ${Math.round(callers)} B subtracted; target ≤ 1024)`,
  );
  console.log(
    `  … checkAll of 2 keys: ${multi} B written directly vs ${multiThroughClient} B through iovalkey's command path (ratio ${(multi / multiThroughClient).toFixed(2)}; ${(multi / single).toFixed(2)}× the single check; the callers' own ${Math.round(pairCallers)} B, their 2 requests included, subtracted)`,
  );
}

/** Runs {@link allocationPerDecision} in a child process with the flags it needs. */
function allocationChild(nodes: readonly string[], mode: "standalone" | "cluster"): void {
  const child = spawnSync(process.execPath, allocationArgs(mode, nodes), {
    encoding: "utf8",
    stdio: ["ignore", "pipe", "inherit"],
  });
  if (child.status !== 0) throw new Error(`the allocation measurement failed (${child.status})`);
  process.stdout.write(child.stdout);
}

const allocationAt = process.argv.indexOf("--allocation");
if (allocationAt >= 0) {
  const [mode, ...nodes] = process.argv.slice(allocationAt + 1);
  await allocationPerDecision(nodes, mode === "cluster" ? "cluster" : "standalone");
} else if (process.argv.includes("--footprint")) {
  memoryFootprint();
} else {
  const load = () =>
    loadavg()
      .map((n) => n.toFixed(2))
      .join(" ");
  console.log(
    `Node ${process.version}, ${cpus().length} CPUs (this process pinned to CPU 0), load average at the start: ${load()}`,
  );
  await valkey();
  await valkeyCluster();
  memoryThroughput();
  const child = spawnSync(
    process.execPath,
    ["--expose-gc", "--conditions=@spoekit/source", fileURLToPath(import.meta.url), "--footprint"],
    { encoding: "utf8", stdio: ["ignore", "pipe", "inherit"] },
  );
  process.stdout.write(child.stdout);
  console.log(`load average at the end: ${load()}`);
  // The benchmark holds the machine-wide lock until it exits: whatever the closed clients and
  // stopped servers may still leave behind (a run once stayed alive with no socket open) must
  // not keep it, but is named.
  const left = process.getActiveResourcesInfo().filter((kind) => kind !== "TTYWrap");
  if (left.length > 0) console.log(`exiting with still active: ${left.join(", ")}`);
  process.exit(0);
}
