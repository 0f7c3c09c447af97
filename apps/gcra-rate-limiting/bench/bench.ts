/**
 * The cost of the rate limiter in front of a web service, as a ratio to the same HAProxy without
 * it, measured in the same run. Run with `pnpm bench` in this package (after `pnpm build` at the
 * root): it builds the app, takes the machine-wide benchmark lock and prints the figures
 * BENCHMARKS.md quotes.
 *
 * One HAProxy 2.6 process (nbthread 1) runs two frontends built from the canonical
 * deploy/base/haproxy/haproxy.cfg: `http-in`, with the SPOE filter and every rule of the
 * canonical frontend, and `baseline`, the same frontend without the filter line. Both answer
 * locally (`http-request return`) instead of forwarding, so no backend takes part. The agent runs
 * from `dist` as deployed (`node --max-semi-space-size=4 dist/main.js`); wrk drives each frontend
 * in turn with bench/wrk.lua (a random client address per request out of about a million).
 *
 * Per store (embedded; Valkey on a local redis-server):
 * - throughput: BENCH_ROUNDS rounds of BENCH_SECONDS s as fast as answered (64 connections),
 *   baseline then filter; the ratio is the median of the rounds' ratios;
 * - latency at half the filter's throughput: wrk paced by its Lua `delay()` (each connection waits
 *   1 ms after each answer; the connection count sets the rate), the same pacing on both
 *   frontends; added p99 = p99 with the filter − p99 of the baseline;
 * - the agent's peak RSS per process, sampled every 250 ms from /proc during all of the above;
 * - the share of a CPU HAProxy, the agent and redis-server used, and the machine's idle time.
 *
 * Knobs (environment): BENCH_ROUNDS (3), BENCH_SECONDS (10), BENCH_ONLY (a scenario name's
 * start), BENCH_PLACEMENT (CPU pinning, below), BENCH_VALKEY_WORKERS (SPOA_WORKERS with Valkey,
 * 1: on two CPUs shared with HAProxy, redis-server and wrk a second worker only adds overhead),
 * BENCH_V8_FLAGS (the agent's V8 flags, `--max-semi-space-size=4`), BENCH_NODE_ARGS (more node
 * flags for the agent, e.g. `--cpu-prof --cpu-prof-dir=/tmp/prof`).
 */
import { spawn, spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import {
  canonicalHaproxy,
  freePort,
  type HaproxyProcess,
  type ManagedProcess,
  type RedisServer,
  requireBinary,
  spawnManaged,
  startHaproxy,
  startRedis,
  waitFor,
} from "@spoekit/harness";
import { appDir, loopbackEnvironment } from "../test/stack.ts";

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const SECONDS = Number(process.env.BENCH_SECONDS ?? 10);
const CONNECTIONS = 64;
const PACING_DELAY_MS = 1;

const wrkScript = join(import.meta.dirname, "wrk.lua");

/**
 * CPU placement: by default none — the kernel schedules HAProxy, the agent, redis-server and wrk
 * over the machine's CPUs as it would on a host. BENCH_PLACEMENT pins some of them
 * (`haproxy=0,agent=0,redis=1,wrk=1`; `any` for no pinning), the same for both frontends.
 */
const PLACEMENT: Record<"haproxy" | "agent" | "redis" | "wrk", number | undefined> = {
  haproxy: undefined,
  agent: undefined,
  redis: undefined,
  wrk: undefined,
  ...Object.fromEntries(
    (process.env.BENCH_PLACEMENT ?? "")
      .split(",")
      .filter(Boolean)
      .map((pair) => pair.split("="))
      .map(([name, cpu]) => [name, cpu === "any" ? undefined : Number(cpu)]),
  ),
};

/** Pins every thread of `pid` to `cpu`. */
function pin(pid: number, cpu: number | undefined): void {
  if (cpu === undefined) return;
  const result = spawnSync("taskset", ["-a", "-p", "-c", String(cpu), String(pid)], { encoding: "utf8" });
  if (result.status !== 0) throw new Error(`taskset failed: ${result.stderr}`);
}

const median = (values: number[]) =>
  [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)] ?? Number.NaN;

/**
 * The canonical haproxy.cfg, answering locally: in `http-in` the forward to the application
 * becomes `http-request return 200`, and a `baseline` frontend repeats `http-in` without the
 * SPOE filter. Request logs are off in both (writing them would cost HAProxy alike in both, and
 * fill this process's memory).
 */
function benchConfig(canonical: string): string {
  const start = canonical.indexOf("frontend http-in");
  const end = canonical.indexOf("\nbackend ", start);
  if (start < 0 || end < 0) throw new Error("haproxy.cfg has no `frontend http-in` followed by a backend");
  const local = canonical
    .slice(start, end)
    .replace(/^\s*option httplog\n/m, "  no log\n")
    .replace(
      /^(\s*)default_backend app$/m,
      "$1http-request return status 200 content-type text/plain string ok",
    );
  if (!local.includes("http-request return") || !local.includes("filter spoe")) {
    throw new Error("haproxy.cfg's frontend http-in changed shape: update bench/bench.ts");
  }
  const baseline = local
    .replace("frontend http-in", "frontend baseline")
    // biome-ignore lint/suspicious/noTemplateCurlyInString: HAProxy expands it from the environment
    .replace(/^\s*bind .*$/m, '  bind "${BASELINE_BIND}"')
    .replace(/^\s*filter spoe .*\n/m, "");
  return `${canonical.slice(0, start)}${local}\n${baseline}${canonical.slice(end)}`;
}

interface WrkResult {
  requests: number;
  durationUs: number;
  connectErrors: number;
  readErrors: number;
  writeErrors: number;
  timeouts: number;
  statusErrors: number;
  p50: number;
  p90: number;
  p99: number;
  p999: number;
  max: number;
  rps: number;
}

function wrk(port: number, connections: number, seconds: number, delayMs?: number): Promise<WrkResult> {
  const args = ["-t1", `-c${connections}`, `-d${seconds}s`, "--timeout", "2s", "-s", wrkScript];
  return new Promise((resolve, reject) => {
    const command = [requireBinary("wrk"), ...args, `http://127.0.0.1:${port}/`];
    const [file = "", ...rest] =
      PLACEMENT.wrk === undefined ? command : ["taskset", "-c", String(PLACEMENT.wrk), ...command];
    const child = spawn(file, rest, {
      env: { ...process.env, ...(delayMs !== undefined ? { WRK_DELAY_MS: String(delayMs) } : {}) },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let output = "";
    child.stdout.on("data", (chunk: Buffer) => {
      output += chunk;
    });
    child.stderr.on("data", (chunk: Buffer) => {
      output += chunk;
    });
    child.on("error", reject);
    child.on("exit", () => {
      const line = output.split("\n").find((l) => l.startsWith('{"requests"'));
      if (!line) return reject(new Error(`wrk printed no result:\n${output}`));
      const result = JSON.parse(line) as Omit<WrkResult, "rps">;
      resolve({ ...result, rps: result.requests / (result.durationUs / 1e6) });
    });
  });
}

/** CPU seconds (user + system) a process and its children have used so far. */
function cpuSeconds(pid: number): number {
  const ticks = (p: number) => {
    try {
      const fields = readFileSync(`/proc/${p}/stat`, "utf8").split(") ")[1]?.split(" ") ?? [];
      return Number(fields[11]) + Number(fields[12]);
    } catch {
      return 0;
    }
  };
  return (ticks(pid) + childrenOf(pid).reduce((sum, child) => sum + ticks(child), 0)) / 100;
}

function childrenOf(pid: number): number[] {
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, "utf8")
      .trim()
      .split(/\s+/)
      .filter(Boolean)
      .map(Number);
  } catch {
    return [];
  }
}

/** CPU seconds the whole machine spent idle so far (all CPUs). */
function idleSeconds(): number {
  const fields = readFileSync("/proc/stat", "utf8").split("\n")[0]?.trim().split(/\s+/) ?? [];
  return (Number(fields[4]) + Number(fields[5])) / 100;
}

/**
 * Runs `body` and reports the share of one CPU each of `pids` used meanwhile, and how much of
 * the machine stayed idle (`idle`, in CPUs).
 */
async function withCpu<T>(
  pids: Record<string, number>,
  body: () => Promise<T>,
): Promise<[T, Record<string, number>]> {
  const before = Object.fromEntries(Object.entries(pids).map(([name, pid]) => [name, cpuSeconds(pid)]));
  const idleBefore = idleSeconds();
  const started = performance.now();
  const result = await body();
  const seconds = (performance.now() - started) / 1000;
  const usage = Object.fromEntries(
    Object.entries(pids).map(([name, pid]) => [name, (cpuSeconds(pid) - (before[name] ?? 0)) / seconds]),
  );
  return [result, { ...usage, idle: (idleSeconds() - idleBefore) / seconds }];
}

/** VmRSS of a process, bytes (0 once it exited). */
function currentRss(pid: number): number {
  try {
    return Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))?.[1] ?? 0) * 1024;
  } catch {
    return 0;
  }
}

/** Peak VmRSS (bytes) of a process and its children, sampled until `stop()`. */
function sampleRss(root: number): { stop(): Map<number, number> } {
  const peaks = new Map<number, number>();
  const read = (pid: number) => peaks.set(pid, Math.max(peaks.get(pid) ?? 0, currentRss(pid)));
  const timer = setInterval(() => {
    read(root);
    for (const child of childrenOf(root)) read(child);
  }, 250);
  return {
    stop() {
      clearInterval(timer);
      return peaks;
    },
  };
}

interface Scenario {
  name: string;
  env: Record<string, string>;
  redis: boolean;
}

interface ScenarioResult {
  name: string;
  rounds: { baseline: number; filter: number; ratio: number; filterErrors: number }[];
  ratio: number;
  filterRps: number;
  baselineRps: number;
  paced: { connections: number; baseline: WrkResult; filter: WrkResult; addedP99Ms: number };
  rssMiB: { role: string; mib: number }[];
  /** Share of a CPU per process in the last round, as fast as answered. */
  cpu: { baseline: Record<string, number>; filter: Record<string, number> };
}

async function startAgent(
  env: Record<string, string>,
): Promise<{ process: ManagedProcess; spopPort: number }> {
  const spopPort = await freePort();
  const adminPort = await freePort();
  // BENCH_NODE_ARGS: extra flags for the agent, e.g. --cpu-prof to profile it.
  const extra = (process.env.BENCH_NODE_ARGS ?? "").split(" ").filter(Boolean);
  const agent = spawnManaged(
    process.execPath,
    [
      ...(process.env.BENCH_V8_FLAGS ?? "--max-semi-space-size=4").split(" ").filter(Boolean),
      ...extra,
      "dist/main.js",
    ],
    {
      cwd: appDir,
      env: {
        ...process.env,
        SPOE_ADDR: `127.0.0.1:${spopPort}`,
        ADMIN_ADDR: `127.0.0.1:${adminPort}`,
        LOG_LEVEL: "warn",
        ...env,
      },
    },
  );
  await waitFor(
    async () => (await fetch(`http://127.0.0.1:${adminPort}/readyz`)).status === 200,
    { what: "the agent's /readyz", timeoutMs: 20_000 },
    () => agent.output(),
  );
  return { process: agent, spopPort };
}

async function run(scenario: Scenario): Promise<ScenarioResult> {
  let redis: RedisServer | undefined;
  let agent: ManagedProcess | undefined;
  let haproxy: HaproxyProcess | undefined;
  try {
    if (scenario.redis) {
      redis = await startRedis();
      pin(redis.process().pid, PLACEMENT.redis);
    }
    const started = await startAgent({ ...scenario.env, ...(redis ? { VALKEY_NODES: redis.url } : {}) });
    agent = started.process;
    pin(agent.pid, PLACEMENT.agent);
    for (const worker of childrenOf(agent.pid)) pin(worker, PLACEMENT.agent);
    const rss = sampleRss(agent.pid);
    const [filterPort, baselinePort, statsPort, closedPort] = await Promise.all([
      freePort(),
      freePort(),
      freePort(),
      freePort(),
    ]);
    const canonical = canonicalHaproxy();
    haproxy = await startHaproxy({
      config: benchConfig(canonical.haproxyCfg),
      files: { "spoe-rate-limit.conf": canonical.spoeConf },
      waitForPorts: [filterPort, baselinePort, statsPort],
      env: {
        ...loopbackEnvironment(
          { http: filterPort, stats: statsPort, agent: started.spopPort, backend: closedPort },
          1,
          4000,
        ),
        BASELINE_BIND: `127.0.0.1:${baselinePort}`,
      },
    });
    pin(haproxy.process.pid, PLACEMENT.haproxy);
    // Warm-up: the agent's code gets optimised, HAProxy opens its SPOE connections.
    await wrk(filterPort, CONNECTIONS, 3);

    const rounds: ScenarioResult["rounds"] = [];
    let cpu: ScenarioResult["cpu"] = { baseline: {}, filter: {} };
    for (let round = 0; round < ROUNDS; round++) {
      const pids = {
        haproxy: haproxy.process.pid,
        agent: agent.pid,
        ...(redis ? { redis: redis.process().pid } : {}),
      };
      const [baseline, baselineCpu] = await withCpu(pids, () => wrk(baselinePort, CONNECTIONS, SECONDS));
      const [filter, filterCpu] = await withCpu(pids, () => wrk(filterPort, CONNECTIONS, SECONDS));
      cpu = { baseline: baselineCpu, filter: filterCpu };
      const filterErrors = filter.connectErrors + filter.readErrors + filter.writeErrors + filter.timeouts;
      rounds.push({
        baseline: baseline.rps,
        filter: filter.rps,
        ratio: filter.rps / baseline.rps,
        filterErrors,
      });
      console.error(
        `  ${scenario.name} round ${round + 1}: baseline ${Math.round(baseline.rps)} req/s, filter ${Math.round(filter.rps)} req/s (${(filter.rps / baseline.rps).toFixed(2)}), 429s ${filter.statusErrors}, agent RSS now ${(currentRss(agent.pid) / 2 ** 20).toFixed(0)} MiB`,
      );
    }
    const filterRps = median(rounds.map((r) => r.filter));

    // Half the filter's throughput: each connection waits PACING_DELAY_MS after each answer;
    // the connection count is calibrated on the filter frontend until the rate is within 10 %.
    const target = filterRps / 2;
    let connections = Math.max(1, Math.round(target / 700));
    let filter = await wrk(filterPort, connections, SECONDS, PACING_DELAY_MS);
    for (let attempt = 0; attempt < 3 && Math.abs(filter.rps / target - 1) > 0.1; attempt++) {
      connections = Math.max(1, Math.round((connections * target) / filter.rps));
      filter = await wrk(filterPort, connections, SECONDS, PACING_DELAY_MS);
    }
    const baseline = await wrk(baselinePort, connections, SECONDS, PACING_DELAY_MS);
    const peaks = rss.stop();
    return {
      name: scenario.name,
      rounds,
      ratio: median(rounds.map((r) => r.ratio)),
      filterRps,
      baselineRps: median(rounds.map((r) => r.baseline)),
      paced: { connections, baseline, filter, addedP99Ms: (filter.p99 - baseline.p99) / 1000 },
      cpu,
      rssMiB: [...peaks].map(([pid, bytes]) => ({
        role: pid === agent?.pid ? (peaks.size > 1 ? "primary" : "agent") : "worker",
        mib: bytes / 2 ** 20,
      })),
    };
  } finally {
    await haproxy?.stop();
    await agent?.stop("SIGTERM", 30_000);
    await redis?.stop();
  }
}

/** The example rules file of the deployment: three rules, CIDR lists; per-ip is the default limit. */
const RULES = { SPOA_RULES_FILE: join(import.meta.dirname, "../../../deploy/base/agent/rules.yaml") };
const valkeyWorkers = { SPOA_WORKERS: process.env.BENCH_VALKEY_WORKERS ?? "1" };
const scenarios: Scenario[] = [
  { name: "embedded store", env: {}, redis: false },
  { name: "embedded store, rules file", env: RULES, redis: false },
  { name: "Valkey (redis-server)", env: valkeyWorkers, redis: true },
  { name: "Valkey (redis-server), rules file", env: { ...valkeyWorkers, ...RULES }, redis: true },
];
const only = process.env.BENCH_ONLY;
const results: ScenarioResult[] = [];
for (const scenario of scenarios) {
  if (only && !scenario.name.startsWith(only)) continue;
  results.push(await run(scenario));
}

const f0 = (n: number) => Math.round(n).toLocaleString("en-US");
const ms = (us: number) => (us / 1000).toFixed(2);
console.log(
  `\ngcra-rate-limiting benchmark: HAProxy 2.6 nbthread 1, wrk 64 connections, ${ROUNDS} × ${SECONDS} s per frontend, Node ${process.versions.node}`,
);
for (const r of results) {
  const { paced } = r;
  console.log(`\n${r.name}`);
  console.log(
    `  throughput   baseline ${f0(r.baselineRps)} req/s   filter ${f0(r.filterRps)} req/s   ratio ${r.ratio.toFixed(2)} (rounds ${r.rounds.map((x) => x.ratio.toFixed(2)).join(", ")})`,
  );
  console.log(
    `  at ~50 %     ${paced.connections} connections × (answer + ${PACING_DELAY_MS} ms): filter ${f0(paced.filter.rps)} req/s (${((100 * paced.filter.rps) / r.filterRps).toFixed(0)} % of max), baseline ${f0(paced.baseline.rps)} req/s`,
  );
  console.log(
    `  latency      filter p50 ${ms(paced.filter.p50)} / p99 ${ms(paced.filter.p99)} / p99.9 ${ms(paced.filter.p999)} ms   baseline p50 ${ms(paced.baseline.p50)} / p99 ${ms(paced.baseline.p99)} / p99.9 ${ms(paced.baseline.p999)} ms   added p99 ${paced.addedP99Ms.toFixed(2)} ms`,
  );
  const share = (usage: Record<string, number>) =>
    Object.entries(usage)
      .map(([name, value]) => `${name} ${(100 * value).toFixed(0)} %`)
      .join(", ");
  console.log(`  CPU (of one) baseline: ${share(r.cpu.baseline)}; filter: ${share(r.cpu.filter)}`);
  console.log(`  peak RSS     ${r.rssMiB.map((p) => `${p.role} ${p.mib.toFixed(1)} MiB`).join(", ")}`);
  const errors = r.rounds.reduce((sum, x) => sum + x.filterErrors, 0);
  if (errors > 0) console.log(`  socket errors or timeouts with the filter: ${errors}`);
}
console.log(`\n${JSON.stringify(results.map(({ rounds: _rounds, ...rest }) => rest))}`);
