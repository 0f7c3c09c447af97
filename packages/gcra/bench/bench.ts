/**
 * Benchmarks of @spoekit/gcra, printed as the README quotes them. Run with `pnpm bench` (which
 * pins this process to CPU 0 and takes the machine-wide benchmark lock); redis-server is pinned to
 * CPU 1. Figures are ratios to a baseline measured in the same run: absolute numbers on a shared
 * machine are noise.
 *
 * - ValkeyStore, 64 concurrent callers on one connection, vs `redis-benchmark` running the same
 *   script by EVALSHA with 64 requests in flight on one connection (`-c 1 -P 64`); also shown:
 *   `-c 64 -P 1` (64 connections, no pipelining).
 * - MemoryStore: decisions/s on one core, and bytes per live key at 1 000 000 keys (measured in a
 *   child process with `--expose-gc`: heap and array buffers after GC, before and after).
 */
import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { GCRA_SCRIPT, GCRA_SCRIPT_SHA, GcraLimit, MemoryStore, ValkeyStore } from "@spoekit/gcra";
import { requireBinary, startRedis } from "@spoekit/harness";

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

function redisBenchmark(port: number, connections: number, pipeline: number, requests: number): number {
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
  args.push("-r", String(KEYS), "--csv", "evalsha", GCRA_SCRIPT_SHA, "1", "gcra:bench:__rand_int__");
  args.push("10000", "200000", "1", "0");
  const run = spawnSync("taskset", ["-c", "0", bin, ...args], { encoding: "utf8" });
  const line = run.stdout.trim().split("\n").pop() ?? "";
  const rps = Number(line.split(",")[1]?.replaceAll('"', ""));
  if (!Number.isFinite(rps)) throw new Error(`unexpected redis-benchmark output: ${run.stdout}${run.stderr}`);
  return rps;
}

const keys = Array.from({ length: KEYS }, (_, i) => `bench:${i}`);

/** One timed run; fills `latencies` (ms, preallocated so recording costs no allocation) and returns how many it holds. */
async function valkeyRound(
  store: ValkeyStore,
  limit: GcraLimit,
  latencies: Float64Array,
): Promise<[number, number]> {
  let done = 0;
  const end = performance.now() + SECONDS * 1000;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: CALLERS }, async () => {
      while (performance.now() < end) {
        const t0 = performance.now();
        await store.check(keys[(Math.random() * KEYS) | 0] as string, limit);
        if (done < latencies.length) latencies[done] = performance.now() - t0;
        done++;
      }
    }),
  );
  return [done / ((performance.now() - started) / 1000), Math.min(done, latencies.length)];
}

async function valkey(): Promise<void> {
  const redis = await startRedis();
  try {
    spawnSync("taskset", ["-pc", "1", String(redis.process().pid)]);
    await redis.command("SCRIPT", "LOAD", GCRA_SCRIPT);
    const store = new ValkeyStore({ nodes: [redis.url], timeoutMs: 1000 });
    const limit = new GcraLimit({ emissionIntervalUs: 10_000, burstToleranceUs: 200_000 });
    await store.check("warm-up", limit);
    const ratios: number[] = [];
    const ours: number[] = [];
    const pipelined: number[] = [];
    const unpipelined: number[] = [];
    const latencies = new Float64Array(400_000 * SECONDS);
    const p99s: number[] = [];
    const p50s: number[] = [];
    for (let round = 0; round < ROUNDS; round++) {
      const baseline = redisBenchmark(redis.port, 1, CALLERS, 100_000 * SECONDS);
      const [rate, recorded] = await valkeyRound(store, limit, latencies);
      const sorted = latencies.subarray(0, recorded).sort();
      p50s.push(percentile(sorted, 50));
      p99s.push(percentile(sorted, 99));
      unpipelined.push(redisBenchmark(redis.port, CALLERS, 1, 50_000 * SECONDS));
      ours.push(rate);
      pipelined.push(baseline);
      ratios.push(rate / baseline);
      console.log(
        `round ${round + 1}: ValkeyStore ${Math.round(rate)}/s, redis-benchmark -c 1 -P 64 ${Math.round(baseline)}/s (ratio ${(rate / baseline).toFixed(2)}), -c 64 -P 1 ${Math.round(unpipelined.at(-1) ?? 0)}/s; ValkeyStore p50 ${p50s.at(-1)?.toFixed(3)} ms, p99 ${p99s.at(-1)?.toFixed(3)} ms`,
      );
    }
    await store.close();
    console.log("\nValkeyStore vs redis-benchmark (same script by EVALSHA, 64 in flight, one connection)");
    console.log(
      `  ValkeyStore, 64 callers:        ${Math.round(median(ours))} decisions/s (median of ${ROUNDS})`,
    );
    console.log(`  redis-benchmark -c 1 -P 64:     ${Math.round(median(pipelined))} calls/s`);
    console.log(`  redis-benchmark -c 64 -P 1:     ${Math.round(median(unpipelined))} calls/s`);
    console.log(`  ratio (median of rounds):       ${median(ratios).toFixed(2)}   (target ≥ 0.8)`);
    console.log(
      `  latency p50 / p99:              ${median(p50s).toFixed(3)} / ${median(p99s).toFixed(3)} ms (medians of the rounds; target p99 ≤ 2 ms)`,
    );
  } finally {
    await redis.stop();
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
  console.log("\nMemoryStore");
  console.log(
    `  decide():                       ${(median(rates) / 1e6).toFixed(2)} M decisions/s on one core (median of ${ROUNDS}; target ≥ 3 M)`,
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
  // A long tolerance keeps every key live for the whole measurement.
  const limit = new GcraLimit({ emissionIntervalUs: 1_000_000, burstToleranceUs: 3_600_000_000 });
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

if (process.argv.includes("--footprint")) {
  memoryFootprint();
} else {
  await valkey();
  memoryThroughput();
  const child = spawnSync(
    process.execPath,
    ["--expose-gc", "--conditions=@spoekit/source", fileURLToPath(import.meta.url), "--footprint"],
    { encoding: "utf8", stdio: ["ignore", "pipe", "inherit"] },
  );
  process.stdout.write(child.stdout);
}
