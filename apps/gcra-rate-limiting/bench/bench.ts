/**
 * The cost of the rate limiter in front of a web service, on HAProxy 2.6 and 3.0, as ratios
 * measured in the same run: to the same HAProxy without the filter, and to the same HAProxy
 * talking to a bare echo agent (the ceiling of an agent in Node). Run with `pnpm bench` in this
 * package (after `pnpm build` at the root): it compiles the app, takes the machine-wide lock
 * (`flock /tmp/spoekit-bench.lock`) and prints the figures BENCHMARKS.md quotes.
 *
 * Per HAProxy release, one HAProxy process (nbthread 1) with one frontend per configuration,
 * all generated from the canonical deploy/base/haproxy files (bench/haproxy.ts): `baseline`
 * (no filter), `echo` (SPOE to bench/echo-agent.ts) and one per app configuration. wrk drives
 * one frontend at a time (bench/wrk.lua: BENCH_CLIENTS client addresses, 1000 tenants); each
 * round visits every frontend, in an order rotated from round to round, and each ratio is the
 * median of the rounds' ratios.
 *
 * Groups (BENCH_ONLY: a comma-separated subset; default all three):
 * - `embedded`: `echo`, `app` (embedded store, one per-IP rule), `rules` (the deployment's rules
 *   file). Then the memory flood: BENCH_IDLE idle SPOP connections are opened to `app` (its
 *   connection cap in force) and `app` runs one more window at full load.
 * - `valkey`: `app` and `rules` on a local valkey-server (SPOA_WORKERS=BENCH_VALKEY_WORKERS).
 * - `analysis`: one echo agent per way of answering (bench/echo-agent.ts knobs), to see what
 *   the agent controls of HAProxy's cost.
 * - `flood` (only when named): HAProxy's latency at half load with and without 5 000 hostile
 *   connections held against the app (bench/flood.ts, bench/hostile.ts).
 * Half-load latency (added p99 of `app` over `baseline`) runs on the releases BENCH_LATENCY
 * names.
 *
 * Per frontend and round: requests/s; CPU per request of HAProxy and of the agent (utime+stime
 * from /proc/<pid>/stat of all its processes over the window, ÷ requests); the agent's NOTIFYs
 * per socket read and ACKs per write (`syscr`/`syscw` of /proc/<pid>/io); the share of requests
 * the agent answered (its own counters: an unanswered request passes HAProxy unchecked and would
 * flatter the throughput). Per agent: peak RSS sampled every 250 ms, and the app's memory
 * breakdown from its /metrics. Per window: the machine's idle CPUs and load average.
 *
 * Knobs (environment): BENCH_ROUNDS (3), BENCH_SECONDS (3), BENCH_CONNECTIONS (64),
 * BENCH_CLIENTS (10000), BENCH_HAPROXY (`2.6,3.0`), BENCH_ONLY (`embedded,valkey,analysis`),
 * BENCH_IDLE (3000; 0 skips the flood), BENCH_LATENCY (`2.6`; `none`), BENCH_ANALYSIS_ROUNDS (2),
 * BENCH_PLACEMENT (CPU pinning, e.g. `haproxy=0,agent=0,redis=1,wrk=1`), BENCH_VALKEY_WORKERS
 * (1), BENCH_V8_FLAGS (the agents' V8 flags, `--max-semi-space-size=4` as `npm start`; the echo
 * agent runs with them too),
 * BENCH_NODE_ARGS (more node flags for the app, e.g. `--cpu-prof --cpu-prof-dir=/tmp/prof`);
 * for `flood`: BENCH_FLOOD_HOSTILE (5000), BENCH_FLOOD_SECONDS (10), BENCH_FLOOD_SETTLE (6).
 */
import { availableParallelism } from "node:os";
import { join } from "node:path";
import { type RedisServer, type ServerBinary, startRedis } from "@spoekit/harness";
import { type Agent, startApp, startEcho } from "./agents.ts";
import { type FloodReport, printFlood, runFlood } from "./flood.ts";
import { type BenchHaproxy, benchBinaries, parseInfo, parseStat, startBenchHaproxy } from "./haproxy.ts";
import { openIdle } from "./idle.ts";
import {
  atHalfLoad,
  family,
  loadAverage,
  machineTimes,
  median,
  minus,
  PACING_DELAY_MS,
  pin,
  type Rss,
  sampleRss,
  socketErrors,
  type Usage,
  usage,
  type WrkResult,
  wrk,
  wrkBinary,
} from "./measure.ts";

const env = process.env;
const ROUNDS = Number(env.BENCH_ROUNDS ?? 3);
const SECONDS = Number(env.BENCH_SECONDS ?? 3);
const CONNECTIONS = Number(env.BENCH_CONNECTIONS ?? 64);
const CLIENTS = Number(env.BENCH_CLIENTS ?? 10_000);
const IDLE = Number(env.BENCH_IDLE ?? 3000);
const ANALYSIS_ROUNDS = Number(env.BENCH_ANALYSIS_ROUNDS ?? 2);
const VERSIONS = (env.BENCH_HAPROXY ?? "2.6,3.0").split(",");
const GROUPS = (env.BENCH_ONLY ?? "embedded,valkey,analysis").split(",");
const LATENCY = (env.BENCH_LATENCY ?? "2.6").split(",");
const CPUS = availableParallelism();

const PLACEMENT: Partial<Record<"haproxy" | "agent" | "redis" | "wrk", number>> = Object.fromEntries(
  (env.BENCH_PLACEMENT ?? "")
    .split(",")
    .filter(Boolean)
    .map((pair) => pair.split("="))
    .filter(([, cpu]) => cpu !== "any")
    .map(([name, cpu]) => [name, Number(cpu)]),
);

/** The deployment's example rules: CIDR lists, a route rule, a shadow tenant rule, the per-IP rule. */
const RULES = { SPOA_RULES_FILE: join(import.meta.dirname, "../../../deploy/base/agent/rules.yaml") };

/** One wrk run against one frontend, with what every process used meanwhile. */
interface Window {
  frontend: string;
  wrk: WrkResult;
  /** By process: `haproxy`, each agent's name, `redis`. */
  used: Record<string, Usage>;
  /** Requests the frontend's agent answered (its own count of ACKs). */
  answered: number;
  /** New SPOE connections HAProxy opened to the frontend's agent (`stot` of its backend). */
  connections: number;
  /** CPUs the machine left idle, on average, and the load average after the window. */
  idle: number;
  load: number;
}

interface Stage {
  haproxy: BenchHaproxy;
  agents: Agent[];
  redis?: RedisServer;
}

async function backendStat(stage: Stage, frontend: string): Promise<Record<string, string> | undefined> {
  const rows = parseStat(await stage.haproxy.command("show stat"));
  return rows.find((row) => row.pxname === `agents_${frontend}` && row.svname === "BACKEND");
}

async function measure(
  stage: Stage,
  frontend: string,
  connections = CONNECTIONS,
  delayMs?: number,
): Promise<Window> {
  const pids: Record<string, number> = { haproxy: stage.haproxy.process.process.pid };
  for (const agent of stage.agents) pids[agent.name] = agent.process.pid;
  if (stage.redis) pids.redis = stage.redis.process().pid;
  const agent = stage.agents.find((a) => a.name === frontend);
  const countsBefore = await agent?.counts();
  const statBefore = await backendStat(stage, frontend);
  const before = Object.fromEntries(Object.entries(pids).map(([name, pid]) => [name, usage(pid)]));
  const machineBefore = machineTimes();
  const result = await wrk({
    port: stage.haproxy.ports[frontend] as number,
    connections,
    seconds: SECONDS,
    clients: CLIENTS,
    ...(delayMs !== undefined ? { delayMs } : {}),
    ...(PLACEMENT.wrk !== undefined ? { cpu: PLACEMENT.wrk } : {}),
  });
  const machine = machineTimes();
  const used = Object.fromEntries(
    Object.entries(pids).map(([name, pid]) => [name, minus(usage(pid), before[name] as Usage)]),
  );
  const countsAfter = await agent?.counts();
  const statAfter = await backendStat(stage, frontend);
  return {
    frontend,
    wrk: result,
    used,
    answered: countsAfter && countsBefore ? countsAfter.acks - countsBefore.acks : result.requests,
    connections: Number(statAfter?.stot ?? 0) - Number(statBefore?.stot ?? 0),
    idle: ((machine.idle - machineBefore.idle) / (machine.total - machineBefore.total)) * CPUS,
    load: loadAverage(),
  };
}

/** `count` rounds over `frontends`, the order rotated each round; windows by round. */
async function rounds(stage: Stage, label: string, frontends: string[], count: number): Promise<Window[][]> {
  const all: Window[][] = [];
  for (let round = 0; round < count; round++) {
    const order = frontends.map((_, i) => frontends[(i + round) % frontends.length] as string);
    const windows: Window[] = [];
    for (const frontend of order) windows.push(await measure(stage, frontend));
    all.push(windows);
    console.error(
      `  ${label} round ${round + 1}: ${frontends
        .map((f) => `${f} ${Math.round(windows.find((w) => w.frontend === f)?.wrk.rps ?? 0)}`)
        .join(
          ", ",
        )} req/s; idle ${(windows.reduce((s, w) => s + w.idle, 0) / windows.length).toFixed(2)} CPUs`,
    );
  }
  return all;
}

/** Per frontend, the medians over rounds; per pair, the median of the rounds' ratios. */
interface FrontendFigures {
  frontend: string;
  rps: number;
  haproxyUs: number;
  agentUs: number | undefined;
  notifiesPerRead: number | undefined;
  acksPerWrite: number | undefined;
  answered: number;
  connections: number;
  socketErrors: number;
  statusErrors: number;
}

function figures(all: Window[][], frontend: string): FrontendFigures {
  const windows = all.flatMap((round) => round.filter((w) => w.frontend === frontend));
  const per = (f: (w: Window) => number | undefined) => {
    const values = windows.map(f).filter((v): v is number => v !== undefined && Number.isFinite(v));
    return values.length === 0 ? undefined : median(values);
  };
  const agent = (w: Window) => w.used[frontend];
  return {
    frontend,
    rps: per((w) => w.wrk.rps) ?? 0,
    haproxyUs: per((w) => ((w.used.haproxy?.cpu ?? 0) / w.wrk.requests) * 1e6) ?? 0,
    agentUs: per((w) => (agent(w) ? ((agent(w)?.cpu ?? 0) / w.wrk.requests) * 1e6 : undefined)),
    notifiesPerRead: per((w) => (agent(w) ? w.answered / (agent(w)?.reads ?? 0) : undefined)),
    acksPerWrite: per((w) => (agent(w) ? w.answered / (agent(w)?.writes ?? 0) : undefined)),
    answered: windows.reduce((s, w) => s + w.answered, 0) / windows.reduce((s, w) => s + w.wrk.requests, 0),
    connections: per((w) => w.connections) ?? 0,
    socketErrors: windows.reduce((s, w) => s + socketErrors(w.wrk), 0),
    statusErrors: windows.reduce((s, w) => s + w.wrk.statusErrors, 0),
  };
}

function ratio(
  all: Window[][],
  numerator: string,
  denominator: string,
): { median: number; rounds: number[] } {
  const values = all.map(
    (round) =>
      (round.find((w) => w.frontend === numerator)?.wrk.rps ?? Number.NaN) /
      (round.find((w) => w.frontend === denominator)?.wrk.rps ?? Number.NaN),
  );
  return { median: median(values), rounds: values };
}

const mib = (r: Rss): Rss => ({ rss: r.rss / 2 ** 20, anon: r.anon / 2 ** 20, file: r.file / 2 ** 20 });

/** The app's memory from its /metrics (prom-client's process and V8 heap metrics), MiB. */
async function memoryBreakdown(agent: Agent): Promise<Record<string, number> | undefined> {
  const text = await agent.metrics();
  if (text === undefined) return undefined;
  const breakdown: Record<string, number> = {};
  for (const line of text.split("\n")) {
    const match =
      /^(process_resident_memory_bytes|nodejs_heap_size_total_bytes|nodejs_heap_size_used_bytes|nodejs_external_memory_bytes|nodejs_heap_space_size_total_bytes\{space="([a-z_]+)"\}) (\d+)/.exec(
        line,
      );
    if (!match) continue;
    const name = (match[2] ? `space ${match[2]}` : (match[1] as string))
      .replace(/^nodejs_|_bytes$/g, "")
      .replace(/^process_/, "");
    breakdown[name] = Number(match[3]) / 2 ** 20;
  }
  return breakdown;
}

/** Half the app frontend's throughput, paced (each connection waits 1 ms after each answer); the same pacing on the baseline. */
async function latency(stage: Stage, frontend: string, maxRps: number) {
  const { connections, window: filter } = await atHalfLoad(maxRps, (c) =>
    measure(stage, frontend, c, PACING_DELAY_MS),
  );
  const baseline = await measure(stage, "baseline", connections, PACING_DELAY_MS);
  return {
    connections,
    filter: filter.wrk,
    baseline: baseline.wrk,
    addedP99Ms: (filter.wrk.p99 - baseline.wrk.p99) / 1000,
  };
}

interface Report {
  group: string;
  haproxy: string;
  rounds: number;
  frontends: FrontendFigures[];
  ratios: Record<string, { median: number; rounds: number[] }>;
  idle: number;
  load: number;
  /** Peak VmRSS per agent (the highest of its processes), with its anonymous and file-backed parts, MiB. */
  rssMiB: Record<string, Rss>;
  memory: Record<string, Record<string, number>>;
  info: Record<string, string>;
  backends: Record<string, Record<string, string>>;
  latency?: Awaited<ReturnType<typeof latency>>;
  flood?: Flood;
}

interface Flood {
  held: number;
  refused: number;
  window: FrontendFigures;
  rssMiB: Rss;
}

const INFO_FIELDS = ["Idle_pct", "CurrConns", "CumConns", "Run_queue", "Tasks", "CumReq"] as const;
const STAT_FIELDS = ["scur", "smax", "stot", "bin", "bout", "econ", "eresp", "cli_abrt", "srv_abrt"] as const;

/** Runs one group on one HAProxy release. */
async function runGroup(
  group: string,
  haproxy: ServerBinary,
  makeAgents: () => Promise<Agent[]>,
  pairs: [string, string][],
  roundCount = ROUNDS,
  redis?: RedisServer,
): Promise<Report> {
  const agents = await makeAgents();
  let stage: Stage | undefined;
  const rss = sampleRss(agents.map((a) => a.process.pid));
  try {
    for (const agent of agents) for (const pid of family(agent.process.pid)) pin(pid, PLACEMENT.agent);
    stage = {
      haproxy: await startBenchHaproxy(
        haproxy,
        agents.map((a) => ({ name: a.name, port: a.port })),
      ),
      agents,
      ...(redis ? { redis } : {}),
    };
    pin(stage.haproxy.process.process.pid, PLACEMENT.haproxy);
    const label = `${group} on ${haproxy.name}`;
    // Warm-up: the agents' code gets optimised, HAProxy opens its SPOE connections.
    for (const agent of agents)
      await wrk({
        port: stage.haproxy.ports[agent.name] as number,
        connections: CONNECTIONS,
        seconds: 2,
        clients: CLIENTS,
      });
    const frontends = ["baseline", ...agents.map((a) => a.name)];
    const all = await rounds(stage, label, frontends, roundCount);
    const report: Report = {
      group,
      haproxy: haproxy.name,
      rounds: roundCount,
      frontends: frontends.map((f) => figures(all, f)),
      ratios: Object.fromEntries(pairs.map(([a, b]) => [`${a}/${b}`, ratio(all, a, b)])),
      idle: median(all.flat().map((w) => w.idle)),
      load: median(all.flat().map((w) => w.load)),
      rssMiB: {},
      memory: {},
      info: {},
      backends: {},
    };
    for (const agent of agents) {
      const memory = await memoryBreakdown(agent);
      if (memory) report.memory[agent.name] = memory;
    }
    const info = parseInfo(await stage.haproxy.command("show info"));
    report.info = Object.fromEntries(INFO_FIELDS.map((field) => [field, info[field] ?? "?"]));
    for (const row of parseStat(await stage.haproxy.command("show stat"))) {
      if (row.pxname?.startsWith("agents_") && row.svname === "BACKEND") {
        report.backends[row.pxname.slice(7)] = Object.fromEntries(STAT_FIELDS.map((f) => [f, row[f] ?? "?"]));
      }
    }
    const app = agents.find((a) => a.name === "app");
    if (app && LATENCY.includes(haproxy.version)) {
      report.latency = await latency(
        stage,
        "app",
        report.frontends.find((f) => f.frontend === "app")?.rps ?? 0,
      );
    }
    const peaks = rss.stop();
    for (const agent of agents) {
      const highest = family(agent.process.pid)
        .map((pid) => peaks.get(pid))
        .reduce((a, b) => ((b?.rss ?? 0) > (a?.rss ?? 0) ? b : a), undefined);
      if (highest) report.rssMiB[agent.name] = mib(highest);
    }
    if (app && group === "embedded" && IDLE > 0) report.flood = await flood(stage, app);
    return report;
  } finally {
    rss.stop();
    await stage?.haproxy.stop();
    for (const agent of agents) await agent.stop();
  }
}

/** BENCH_IDLE idle SPOP connections to `app`, then one window at full load on it. */
async function flood(stage: Stage, app: Agent): Promise<Flood> {
  const idle = await openIdle(app.port, IDLE);
  const rss = sampleRss([app.process.pid]);
  try {
    const window = await measure(stage, "app");
    const peak = rss.stop().get(app.process.pid) ?? { rss: 0, anon: 0, file: 0 };
    return {
      held: idle.held(),
      refused: idle.refused(),
      window: figures([[window]], "app"),
      rssMiB: mib(peak),
    };
  } finally {
    rss.stop();
    idle.close();
  }
}

// --- the run -------------------------------------------------------------------------------

wrkBinary();
const binaries = benchBinaries(VERSIONS);

const started = performance.now();
const reports: Report[] = [];
const floods: FloodReport[] = [];
const FLOOD = {
  hostile: Number(env.BENCH_FLOOD_HOSTILE ?? 5000),
  seconds: Number(env.BENCH_FLOOD_SECONDS ?? 10),
  settle: Number(env.BENCH_FLOOD_SETTLE ?? 6),
  connections: CONNECTIONS,
  clients: CLIENTS,
};
for (const haproxy of binaries) {
  if (GROUPS.includes("embedded")) {
    reports.push(
      await runGroup(
        "embedded",
        haproxy,
        async () => [await startEcho("echo"), await startApp("app", {}), await startApp("rules", RULES)],
        [
          ["app", "echo"],
          ["echo", "baseline"],
          ["app", "baseline"],
          ["rules", "app"],
        ],
      ),
    );
  }
  if (GROUPS.includes("valkey")) {
    const redis = await startRedis();
    pin(redis.process().pid, PLACEMENT.redis);
    try {
      const workers = { SPOA_WORKERS: env.BENCH_VALKEY_WORKERS ?? "1", VALKEY_NODES: redis.url };
      reports.push(
        await runGroup(
          "valkey",
          haproxy,
          async () => [await startApp("app", workers), await startApp("rules", { ...workers, ...RULES })],
          [
            ["app", "baseline"],
            ["rules", "app"],
          ],
          ROUNDS,
          redis,
        ),
      );
    } finally {
      await redis.stop();
    }
  }
  if (GROUPS.includes("analysis")) {
    reports.push(
      await runGroup(
        "analysis",
        haproxy,
        async () => [
          await startEcho("echo"),
          await startEcho("per_ack", { ECHO_WRITE: "frame" }),
          await startEcho("per_turn", { ECHO_WRITE: "turn" }),
          await startEcho("mfs_1k", { ECHO_MAX_FRAME: "1024" }),
          await startEcho("no_pipelining", { ECHO_PIPELINING: "0" }),
        ],
        [
          ["per_ack", "echo"],
          ["per_turn", "echo"],
          ["mfs_1k", "echo"],
          ["no_pipelining", "echo"],
          ["echo", "baseline"],
        ],
        ANALYSIS_ROUNDS,
      ),
    );
  }
  if (GROUPS.includes("flood")) floods.push(await runFlood(haproxy, FLOOD));
}

// --- the report ------------------------------------------------------------------------------

const f0 = (n: number) => Math.round(n).toLocaleString("en-US");
const f1 = (n: number | undefined) => (n === undefined ? "–" : n.toFixed(1));
const f2 = (n: number | undefined) => (n === undefined ? "–" : n.toFixed(2));
console.log(
  `\ngcra-rate-limiting benchmark: nbthread 1, wrk ${CONNECTIONS} connections, ${CLIENTS} client addresses, ${ROUNDS} rounds × ${SECONDS} s per frontend, Node ${process.versions.node}, ${CPUS} CPUs, ${((performance.now() - started) / 1000).toFixed(0)} s`,
);
for (const r of reports) {
  console.log(
    `\n${r.haproxy} — ${r.group} (${r.rounds} rounds; machine idle ${r.idle.toFixed(2)} of ${CPUS} CPUs, load ${r.load.toFixed(1)})`,
  );
  console.log(
    "  frontend        req/s   HAProxy µs/req  agent µs/req  NOTIFY/read  ACK/write  answered  new conns  errors",
  );
  for (const f of r.frontends) {
    console.log(
      `  ${f.frontend.padEnd(14)} ${f0(f.rps).padStart(7)}   ${f1(f.haproxyUs).padStart(14)}  ${f1(f.agentUs).padStart(12)}  ${f1(f.notifiesPerRead).padStart(11)}  ${f1(f.acksPerWrite).padStart(9)}  ${f.frontend === "baseline" ? "        " : `${(100 * f.answered).toFixed(1).padStart(6)} %`}  ${f0(f.connections).padStart(9)}  ${f.socketErrors}/${f.statusErrors}`,
    );
  }
  for (const [name, value] of Object.entries(r.ratios)) {
    console.log(`  ratio ${name.padEnd(24)} ${f2(value.median)} (rounds ${value.rounds.map(f2).join(", ")})`);
  }
  console.log(
    `  peak RSS     ${Object.entries(r.rssMiB)
      .map(
        ([name, m]) =>
          `${name} ${m.rss.toFixed(1)} MiB (anon ${m.anon.toFixed(1)}, file ${m.file.toFixed(1)})`,
      )
      .join(", ")}`,
  );
  for (const [name, memory] of Object.entries(r.memory)) {
    console.log(
      `  memory ${name}: ${Object.entries(memory)
        .map(([k, v]) => `${k} ${v.toFixed(1)}`)
        .join(", ")} (MiB)`,
    );
  }
  console.log(
    `  show info    ${Object.entries(r.info)
      .map(([k, v]) => `${k} ${v}`)
      .join(", ")}`,
  );
  for (const [name, stat] of Object.entries(r.backends)) {
    console.log(
      `  show stat    agents_${name}: ${Object.entries(stat)
        .map(([k, v]) => `${k} ${v}`)
        .join(", ")}`,
    );
  }
  if (r.latency) {
    const { latency: l } = r;
    const ms = (us: number) => (us / 1000).toFixed(2);
    console.log(
      `  at ~50 %     ${l.connections} connections × (answer + ${PACING_DELAY_MS} ms): app ${f0(l.filter.rps)} req/s p50 ${ms(l.filter.p50)} / p99 ${ms(l.filter.p99)} / p99.9 ${ms(l.filter.p999)} ms; baseline ${f0(l.baseline.rps)} req/s p99 ${ms(l.baseline.p99)} ms; added p99 ${l.addedP99Ms.toFixed(2)} ms`,
    );
  }
  if (r.flood) {
    const { flood: fl } = r;
    console.log(
      `  flood        ${IDLE} idle SPOP connections: ${fl.held} held, ${fl.refused} refused; app then ${f0(fl.window.rps)} req/s, ${f1(fl.window.agentUs)} µs/req, answered ${(100 * fl.window.answered).toFixed(1)} %, peak RSS ${fl.rssMiB.rss.toFixed(1)} MiB (anon ${fl.rssMiB.anon.toFixed(1)}, file ${fl.rssMiB.file.toFixed(1)})`,
    );
  }
}
printFlood(floods, FLOOD);
console.log(`\n${JSON.stringify(reports)}`);
if (floods.length > 0) console.log(JSON.stringify(floods));
