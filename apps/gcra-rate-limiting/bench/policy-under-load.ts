/**
 * Decisions by the failure policy while Valkey is healthy and every core is busy with other
 * processes: what the shipped deadline (`VALKEY_TIMEOUT` derived from HAProxy's 100 ms
 * `timeout processing`) leaves to the policy, beside the seed's 10 ms / 15 ms in the same run.
 * Run with `pnpm bench:policy` in this package: it compiles the app, takes the machine-wide lock
 * (`flock /tmp/spoekit-bench.lock`) and prints the figures BENCHMARKS.md quotes.
 *
 * One valkey-server, one app per variant on it (from `dist`, as deployed), one HAProxy per
 * release with the canonical configuration and a frontend per variant (bench/haproxy.ts), and
 * BENCH_BUSY busy-loop processes. wrk (bench/wrk.lua, 10 000 client addresses at the app's
 * default 100 req/s each: no client reaches its limit) drives each variant's frontend in turn
 * for BENCH_SECONDS. Per variant: requests; the app's decisions by source
 * (`gcra_decisions_total`: `store` and `deny-cache` are the store's, `open`, `closed`,
 * `fallback` the policy's); its failed Valkey calls by kind (`gcra_store_errors_total`); its
 * warning log lines (circuit opened, store unreachable, …) by message; requests that passed
 * unchecked (answers without the agent's `RateLimit-Limit` header: HAProxy stopped waiting);
 * the load average after the window.
 *
 * Knobs (environment): BENCH_SECONDS (60), BENCH_BUSY (busy loops; the number of CPUs),
 * BENCH_CONNECTIONS (16), BENCH_HAPROXY (`2.6,3.0`), BENCH_VALKEY_WORKERS (2).
 */
import { type ChildProcess, spawn } from "node:child_process";
import { availableParallelism } from "node:os";
import { startRedis } from "@spoekit/harness";
import { parseMetrics, type Sample, total } from "../test/stack.ts";
import { type Agent, startApp } from "./agents.ts";
import { benchBinaries, startBenchHaproxy } from "./haproxy.ts";
import { loadAverage, wrk, wrkBinary } from "./measure.ts";

const env = process.env;
const SECONDS = Number(env.BENCH_SECONDS ?? 60);
const BUSY = Number(env.BENCH_BUSY ?? availableParallelism());
const CONNECTIONS = Number(env.BENCH_CONNECTIONS ?? 16);
const VERSIONS = (env.BENCH_HAPROXY ?? "2.6,3.0").split(",");
const WORKERS = env.BENCH_VALKEY_WORKERS ?? "2";
const CLIENTS = 10_000;

/** The deadlines compared: the agent's settings and HAProxy's `timeout processing`. */
const VARIANTS = [
  {
    name: "seed",
    label: "10 ms / 15 ms (the seed's)",
    processing: "15ms",
    env: { VALKEY_TIMEOUT: "10ms", HAPROXY_PROCESSING_TIMEOUT: "15ms" },
  },
  { name: "shipped", label: "60 ms / 100 ms (shipped)", processing: undefined, env: {} },
] as const;

const POLICY = ["open", "closed", "fallback"];

interface Row {
  haproxy: string;
  variant: string;
  requests: number;
  bySource: Record<string, number>;
  policy: number;
  unchecked: number;
  errors: Record<string, number>;
  warnings: Record<string, number>;
  load: number;
}

/** The series of `name` summed by the value of `label`, `after` − `before`. */
function byLabel(before: Sample[], after: Sample[], name: string, label: string): Record<string, number> {
  const values = new Set(after.filter((s) => s.name === name).map((s) => s.labels[label] ?? ""));
  const out: Record<string, number> = {};
  for (const value of values) {
    const delta = total(after, name, { [label]: value }) - total(before, name, { [label]: value });
    if (delta > 0) out[value] = delta;
  }
  return out;
}

/** The app's JSON log lines of level warn or above after character `from`, counted by message. */
function warnings(agent: Agent, from: number): Record<string, number> {
  const out: Record<string, number> = {};
  for (const line of agent.process.output().slice(from).split("\n")) {
    if (!line.startsWith("{")) continue;
    const { msg, level, reason } = JSON.parse(line) as { msg?: string; level?: number; reason?: string };
    if (level !== undefined && level < 40) continue;
    const key = reason === undefined ? (msg ?? "?") : `${msg} (${reason})`;
    out[key] = (out[key] ?? 0) + 1;
  }
  return out;
}

function startBusyLoops(count: number): ChildProcess[] {
  return Array.from({ length: count }, () =>
    spawn(process.execPath, ["-e", "for (;;) {}"], { stdio: "ignore" }),
  );
}

const percent = (part: number, whole: number) => `${((part / whole) * 100).toFixed(2)} %`;

wrkBinary();
const binaries = benchBinaries(VERSIONS);

const redis = await startRedis();
const agents: Agent[] = [];
const busy: ChildProcess[] = [];
const rows: Row[] = [];
try {
  for (const variant of VARIANTS) {
    agents.push(
      await startApp(
        variant.name,
        { SPOA_WORKERS: WORKERS, VALKEY_NODES: redis.url, ...variant.env },
        // Every log line of the run: the warnings are counted from it.
        256 * 1024 * 1024,
      ),
    );
  }
  busy.push(...startBusyLoops(BUSY));
  console.error(`${BUSY} busy loops on ${availableParallelism()} CPUs; ${SECONDS} s per variant and release`);
  for (const binary of binaries) {
    const haproxy = await startBenchHaproxy(
      binary,
      VARIANTS.map((v, i) => ({
        name: v.name,
        port: (agents[i] as Agent).port,
        ...(v.processing ? { processing: v.processing } : {}),
      })),
    );
    try {
      for (const [i, variant] of VARIANTS.entries()) {
        const agent = agents[i] as Agent;
        const before = parseMetrics((await agent.metrics()) ?? "");
        const from = agent.process.output().length;
        const result = await wrk({
          port: haproxy.ports[variant.name] as number,
          connections: CONNECTIONS,
          seconds: SECONDS,
          clients: CLIENTS,
          countUnchecked: true,
        });
        const after = parseMetrics((await agent.metrics()) ?? "");
        const bySource = byLabel(before, after, "gcra_decisions_total", "source");
        const row: Row = {
          haproxy: binary.version,
          variant: variant.label,
          requests: result.requests,
          bySource,
          policy: POLICY.reduce((sum, source) => sum + (bySource[source] ?? 0), 0),
          unchecked: result.unchecked ?? 0,
          errors: byLabel(before, after, "gcra_store_errors_total", "kind"),
          warnings: warnings(agent, from),
          load: loadAverage(),
        };
        rows.push(row);
        console.error(`  HAProxy ${row.haproxy}, ${row.variant}: ${JSON.stringify(row)}`);
      }
    } finally {
      await haproxy.stop();
    }
  }
} finally {
  for (const child of busy) child.kill("SIGKILL");
  for (const agent of agents) await agent.stop();
  await redis.stop();
}

console.log(
  "| HAProxy | `VALKEY_TIMEOUT` / `timeout processing` | requests | decisions by source | answered by the policy | unchecked | failed Valkey calls | load average |",
);
console.log("| --- | --- | --- | --- | --- | --- | --- | --- |");
for (const r of rows) {
  const sources = Object.entries(r.bySource)
    .map(([source, n]) => `${source} ${n}`)
    .join(", ");
  const errors =
    Object.entries(r.errors)
      .map(([kind, n]) => `${kind} ${n}`)
      .join(", ") || "0";
  console.log(
    `| ${r.haproxy} | ${r.variant} | ${r.requests} | ${sources} | ${r.policy} (${percent(r.policy, r.requests)}) | ${r.unchecked} (${percent(r.unchecked, r.requests)}) | ${errors} | ${r.load.toFixed(1)} |`,
  );
}
for (const r of rows) {
  if (Object.keys(r.warnings).length > 0)
    console.log(`\nHAProxy ${r.haproxy}, ${r.variant}, warnings: ${JSON.stringify(r.warnings)}`);
}
