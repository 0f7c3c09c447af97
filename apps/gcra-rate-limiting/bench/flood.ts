/**
 * The `flood` group of the benchmark: HAProxy's latency at a moderate, fixed load while 5 000
 * hostile connections are held against the agent, against the same load without them, in one
 * run per HAProxy release.
 *
 * One app (`dist`, its defaults: the connection cap SPOA_MAX_CONNECTIONS 1024, HELLO timeout 5 s)
 * behind one HAProxy (nbthread 1, the canonical configuration). wrk first measures the app
 * frontend's throughput at full load, then finds the number of connections that, each waiting
 * 1 ms after each answer, make about half of it (as the half-load latency of bench.ts); that load
 * runs for BENCH_FLOOD_SECONDS twice: without hostile clients (the baseline), then with
 * bench/hostile.ts (a process of its own) holding BENCH_FLOOD_HOSTILE connections — idle before
 * HELLO, slowloris, idle after HELLO, each opened again as soon as it closes — from
 * BENCH_FLOOD_SETTLE seconds after all of them first connected.
 *
 * Per window: wrk's p50/p99/p99.9 and throughput, requests answered without the agent's verdict
 * (no `RateLimit-Limit` header), the app's decisions (`gcra_decisions_total`, by source), its
 * refusals (AGENT-DISCONNECT status 13) and errors by kind, the CPU of the agent, HAProxy and the
 * hostile process (/proc), the agent's peak RSS (sampled every 250 ms), the new SPOE connections
 * HAProxy opened and its SPOE warning lines, the machine's idle CPUs and load average.
 */
import { join } from "node:path";
import { parseMetrics, type ServerBinary, spawnManaged, total, waitFor } from "@spoekit/harness";
import { type Agent, startApp } from "./agents.ts";
import { type BenchHaproxy, parseStat, startBenchHaproxy } from "./haproxy.ts";
import {
  atHalfLoad,
  loadAverage,
  machineTimes,
  minus,
  PACING_DELAY_MS,
  type Rss,
  sampleRss,
  socketErrors,
  type Usage,
  usage,
  type WrkResult,
  wrk,
} from "./measure.ts";

export interface FloodOptions {
  /** Hostile connections held. */
  hostile: number;
  /** Seconds per measured window. */
  seconds: number;
  /** Seconds between the last hostile connection's first connect and the window. */
  settle: number;
  /** wrk's connections at full load, and the client addresses of bench/wrk.lua. */
  connections: number;
  clients: number;
}

/** The agent's own counts, from its /metrics. */
interface AppCounts {
  decisions: number;
  bySource: Record<string, number>;
  notifies: number;
  acks: number;
  /** Errors of kind `limit`: connections refused at the cap (AGENT-DISCONNECT status 13). */
  refused: number;
  errors: Record<string, number>;
  opened: number;
  open: number;
}

/** bench/hostile.ts's counters (see its `Counters`). */
interface HostileCounters {
  opened: number;
  open: number;
  openHello: number;
  openByKind: Record<string, number>;
  refused: number;
  timedOut: number;
  otherDisconnect: number;
  closedSilently: number;
  connectErrors: number;
}

export interface FloodWindow {
  wrk: WrkResult;
  app: AppCounts;
  /** CPU seconds over the window. */
  cpu: { agent: number; haproxy: number; hostile?: number };
  rss: Rss;
  /** New SPOE connections HAProxy opened (`stot`) and failed to open (`econ`). */
  spoe: { opened: number; failed: number };
  /** HAProxy's SPOE warning lines over the window, and up to three kinds of them (digits as `#`, but the status `st=`). */
  spoeLogLines: number;
  spoeLogKinds: string[];
  idle: number;
  load: number;
  /** The hostile process's counters over the window (totals: differences; `open*`: at its end). */
  hostile?: HostileCounters;
}

export interface FloodReport {
  haproxy: string;
  saturatedRps: number;
  connections: number;
  baseline: FloodWindow;
  flood: FloodWindow;
  /** Seconds from the hostile process's start until all its connections had connected once. */
  rampSeconds: number;
}

async function appCounts(agent: Agent): Promise<AppCounts> {
  const samples = parseMetrics((await agent.metrics()) ?? "");
  const bySource: Record<string, number> = {};
  const errors: Record<string, number> = {};
  for (const s of samples) {
    if (s.name === "gcra_decisions_total") {
      const source = s.labels.source ?? "?";
      bySource[source] = (bySource[source] ?? 0) + s.value;
    }
    if (s.name === "spoa_errors_total") errors[s.labels.kind ?? "?"] = s.value;
  }
  return {
    decisions: total(samples, "gcra_decisions_total"),
    bySource,
    notifies: total(samples, "spoa_frames_received_total", { type: "notify" }),
    acks: total(samples, "spoa_frames_sent_total", { type: "ack" }),
    refused: total(samples, "spoa_errors_total", { kind: "limit" }),
    errors,
    opened: total(samples, "spoa_connections_opened_total"),
    open: total(samples, "spoa_connections"),
  };
}

const subtract = (a: Record<string, number>, b: Record<string, number>): Record<string, number> =>
  Object.fromEntries(Object.entries(a).map(([k, v]) => [k, v - (b[k] ?? 0)]));

function countsDelta(after: AppCounts, before: AppCounts): AppCounts {
  return {
    decisions: after.decisions - before.decisions,
    bySource: subtract(after.bySource, before.bySource),
    notifies: after.notifies - before.notifies,
    acks: after.acks - before.acks,
    refused: after.refused - before.refused,
    errors: subtract(after.errors, before.errors),
    opened: after.opened - before.opened,
    open: after.open,
  };
}

function hostileDelta(after: HostileCounters, before: HostileCounters): HostileCounters {
  const sum = (k: keyof HostileCounters) => (after[k] as number) - (before[k] as number);
  return {
    ...after,
    opened: sum("opened"),
    refused: sum("refused"),
    timedOut: sum("timedOut"),
    otherDisconnect: sum("otherDisconnect"),
    closedSilently: sum("closedSilently"),
    connectErrors: sum("connectErrors"),
  };
}

async function spoeStat(haproxy: BenchHaproxy): Promise<{ opened: number; failed: number }> {
  const row = parseStat(await haproxy.command("show stat")).find(
    (r) => r.pxname === "agents_app" && r.svname === "BACKEND",
  );
  return { opened: Number(row?.stot ?? 0), failed: Number(row?.econ ?? 0) };
}

const spoeLines = (haproxy: BenchHaproxy): string[] =>
  haproxy.process
    .output()
    .split("\n")
    .filter((line) => line.includes("SPOE"));

/** A running bench/hostile.ts: its last counters line. */
interface Hostile {
  pid: number;
  counters(): HostileCounters | undefined;
  stop(): Promise<void>;
}

function startHostile(port: number, count: number): Hostile {
  // The soft fd limit raised to the hard one: `count` sockets and then some.
  const child = spawnManaged(
    "sh",
    [
      "-c",
      `ulimit -n "$(ulimit -Hn)" && exec "$0" "$@"`,
      process.execPath,
      join(import.meta.dirname, "hostile.ts"),
      String(port),
      String(count),
    ],
    { cwd: join(import.meta.dirname, ".."), env: { ...process.env, NODE_OPTIONS: "" } },
  );
  return {
    pid: child.pid,
    counters() {
      const line = child
        .output()
        .split("\n")
        .findLast((l) => l.startsWith('{"opened"'));
      return line ? (JSON.parse(line) as HostileCounters) : undefined;
    },
    stop: async () => {
      await child.stop("SIGTERM", 5000);
    },
  };
}

/** One measured window of paced load on the app frontend. */
async function window(
  haproxy: BenchHaproxy,
  app: Agent,
  options: FloodOptions,
  connections: number,
  hostile?: Hostile,
): Promise<FloodWindow> {
  const pids = { agent: app.process.pid, haproxy: haproxy.process.process.pid, hostile: hostile?.pid };
  const countsBefore = await appCounts(app);
  const statBefore = await spoeStat(haproxy);
  const linesBefore = spoeLines(haproxy).length;
  const hostileBefore = hostile?.counters();
  const before = Object.fromEntries(
    Object.entries(pids).flatMap(([name, pid]) => (pid === undefined ? [] : [[name, usage(pid)]])),
  ) as Record<string, Usage>;
  const machineBefore = machineTimes();
  const rss = sampleRss([app.process.pid]);
  let result: WrkResult;
  try {
    result = await wrk({
      port: haproxy.ports.app as number,
      connections,
      seconds: options.seconds,
      clients: options.clients,
      delayMs: PACING_DELAY_MS,
      countUnchecked: true,
    });
  } finally {
    rss.stop();
  }
  const machine = machineTimes();
  const cpu = (name: keyof typeof pids) => {
    const pid = pids[name];
    return pid === undefined ? undefined : minus(usage(pid), before[name] as Usage).cpu;
  };
  const statAfter = await spoeStat(haproxy);
  const hostileAfter = hostile?.counters();
  const peak = rss.stop().get(app.process.pid) ?? { rss: 0, anon: 0, file: 0 };
  const hostileCpu = cpu("hostile");
  return {
    wrk: result,
    app: countsDelta(await appCounts(app), countsBefore),
    cpu: {
      agent: cpu("agent") ?? 0,
      haproxy: cpu("haproxy") ?? 0,
      ...(hostileCpu !== undefined ? { hostile: hostileCpu } : {}),
    },
    rss: peak,
    spoe: { opened: statAfter.opened - statBefore.opened, failed: statAfter.failed - statBefore.failed },
    spoeLogLines: spoeLines(haproxy).length - linesBefore,
    spoeLogKinds: [
      ...new Set(
        spoeLines(haproxy)
          .slice(linesBefore)
          .map((line) => line.replace(/(?<!st=\d*)\d+/g, "#")),
      ),
    ].slice(0, 3),
    idle: ((machine.idle - machineBefore.idle) / (machine.total - machineBefore.total)) * 2,
    load: loadAverage(),
    ...(hostileBefore && hostileAfter ? { hostile: hostileDelta(hostileAfter, hostileBefore) } : {}),
  };
}

/** The flood scenario on one HAProxy release. */
export async function runFlood(binary: ServerBinary, options: FloodOptions): Promise<FloodReport> {
  const app = await startApp("app", {});
  let haproxy: BenchHaproxy | undefined;
  let hostile: Hostile | undefined;
  try {
    haproxy = await startBenchHaproxy(binary, [{ name: "app", port: app.port }]);
    const port = haproxy.ports.app as number;
    const full = { port, connections: options.connections, clients: options.clients };
    await wrk({ ...full, seconds: 2 }); // warm-up
    const saturated = await wrk({ ...full, seconds: 3 });
    const { connections } = await atHalfLoad(saturated.rps, (c) =>
      wrk({ port, connections: c, seconds: 3, clients: options.clients, delayMs: PACING_DELAY_MS }).then(
        (r) => ({ wrk: r }),
      ),
    );
    const baseline = await window(haproxy, app, options, connections);
    console.error(
      `  flood on ${binary.name}: baseline ${connections} connections, ${Math.round(baseline.wrk.rps)} req/s, p99 ${(baseline.wrk.p99 / 1000).toFixed(2)} ms`,
    );
    const started = performance.now();
    hostile = startHostile(app.port, options.hostile);
    const running = hostile;
    await waitFor(() => (running.counters()?.opened ?? 0) >= options.hostile, {
      what: `${options.hostile} hostile connections`,
      timeoutMs: 60_000,
    });
    const rampSeconds = (performance.now() - started) / 1000;
    await new Promise((resolve) => setTimeout(resolve, options.settle * 1000));
    const flood = await window(haproxy, app, options, connections, hostile);
    console.error(
      `  flood on ${binary.name}: with ${options.hostile} hostile, ${Math.round(flood.wrk.rps)} req/s, p99 ${(flood.wrk.p99 / 1000).toFixed(2)} ms`,
    );
    return { haproxy: binary.name, saturatedRps: saturated.rps, connections, baseline, flood, rampSeconds };
  } finally {
    await hostile?.stop();
    await haproxy?.stop();
    await app.stop();
  }
}

const ms = (us: number) => (us / 1000).toFixed(2);
const mib = (bytes: number) => (bytes / 2 ** 20).toFixed(1);

function describe(name: string, w: FloodWindow, seconds: number): string[] {
  const r = w.wrk;
  const sources = Object.entries(w.app.bySource)
    .filter(([, v]) => v > 0)
    .map(([k, v]) => `${k} ${v}`)
    .join(", ");
  const errors = Object.entries(w.app.errors)
    .filter(([, v]) => v > 0)
    .map(([k, v]) => `${k} ${v}`)
    .join(", ");
  const lines = [
    `  ${name.padEnd(9)} ${Math.round(r.rps)} req/s, p50 ${ms(r.p50)} / p99 ${ms(r.p99)} / p99.9 ${ms(r.p999)} / max ${ms(r.max)} ms; requests ${r.requests}, decisions ${w.app.decisions} (${sources || "none"}), unchecked ${r.unchecked ?? "?"}, socket errors ${socketErrors(r)}, non-2xx ${r.statusErrors}`,
    `            agent CPU ${((100 * w.cpu.agent) / seconds).toFixed(0)} % (${((w.cpu.agent / r.requests) * 1e6).toFixed(1)} µs/req), HAProxy ${((100 * w.cpu.haproxy) / seconds).toFixed(0)} %${w.cpu.hostile !== undefined ? `, hostile process ${((100 * w.cpu.hostile) / seconds).toFixed(0)} %` : ""}; agent peak RSS ${mib(w.rss.rss)} MiB (anon ${mib(w.rss.anon)}, file ${mib(w.rss.file)}); machine idle ${w.idle.toFixed(2)} CPUs, load ${w.load.toFixed(1)}`,
    `            agent: ${w.app.open} SPOP connections open at the end, ${w.app.opened} accepted, ${w.app.refused} refused at the cap, errors ${errors || "none"}; HAProxy: ${w.spoe.opened} new SPOE connections (${w.spoe.failed} failed), ${w.spoeLogLines} SPOE warning lines`,
    ...w.spoeLogKinds.map((line) => `            HAProxy: ${line}`),
  ];
  const h = w.hostile;
  if (h) {
    lines.push(
      `            hostile: ${h.open} open at the end (${h.openHello} greeted; ${Object.entries(h.openByKind)
        .map(([k, v]) => `${k} ${v}`)
        .join(
          ", ",
        )}); over the window ${h.opened} connects, ${h.refused} refused by the cap, ${h.timedOut} HELLO timeouts, ${h.otherDisconnect} other disconnects, ${h.closedSilently} closed without a frame, ${h.connectErrors} failed connects`,
    );
  }
  return lines;
}

/** The report's text. */
export function printFlood(reports: readonly FloodReport[], options: FloodOptions): void {
  for (const r of reports) {
    console.log(
      `\n${r.haproxy} — flood: ${options.hostile} hostile connections (reached in ${r.rampSeconds.toFixed(1)} s, window from ${options.settle} s later), ${options.seconds} s windows, ${r.connections} wrk connections × (answer + ${PACING_DELAY_MS} ms); full load ${Math.round(r.saturatedRps)} req/s`,
    );
    for (const line of describe("baseline", r.baseline, options.seconds)) console.log(line);
    for (const line of describe("flood", r.flood, options.seconds)) console.log(line);
    console.log(
      `  ratio     p99 flood / baseline ${(r.flood.wrk.p99 / r.baseline.wrk.p99).toFixed(2)}, req/s ${(r.flood.wrk.rps / r.baseline.wrk.rps).toFixed(2)}, agent peak RSS ${mib(r.flood.rss.rss)} / ${mib(r.baseline.rss.rss)} MiB`,
    );
  }
}
