/**
 * `pnpm bench`: the CPU the agent spends per NOTIFY against a bare-bones echo SPOA on the same
 * codec, both driven by the same load generator in the same run — a ratio, measured so that the
 * load of a shared machine hits both alike. Each server and each generator run in processes of
 * their own; the servers share one core, the generators the other (`taskset`); both servers stay
 * up for the whole run.
 *
 * 1. `--rounds` rounds (default 6). In each, both servers are loaded at the same time, each by
 *    its own generator, by default open loop at `--rate` NOTIFY/s each (50 000): both get the
 *    same NOTIFYs in the same pattern — as many per socket read — whatever their speed, and
 *    whatever else runs on the machine meanwhile hits both at once. `--closed` instead loads
 *    each as fast as it answers (64 connections × 20 NOTIFYs in flight). The cores swap from
 *    round to round (servers on core 0 and generators on core 1, then the other way round).
 *    `--apart` runs the two servers one after the other instead, alternating which goes first,
 *    the cores swapping every two rounds.
 * 2. What a run measures, over the same window inside its `--duration` (default 10 s, after 2 s
 *    of warm-up): the server reports at a mark (SIGUSR2) the NOTIFYs it answered so far and its
 *    CPU time (`process.cpuUsage()`, user + system, every thread, µs); CPU per NOTIFY is the
 *    difference of two marks' CPU over the difference of their counts — the server's own count,
 *    not the wall clock's. The bytes allocated per NOTIFY come from V8's GC trace over the same
 *    window (`--trace-gc --trace-gc-nvp`, a line per GC, nothing else changed).
 * 3. Each round's agent/echo ratio, and their median: the cost of the library. Latency and RSS;
 *    the machine's load average.
 *
 * The servers and the generator run the built JavaScript (`dist`), as deployed agents do: the
 * package script builds first and takes the machine-wide benchmark lock
 * (`flock /tmp/spoekit-bench.lock`).
 * `--long` instead runs the agent alone at full load for 60 s (or `--duration`), with Node's
 * default flags, printing its RSS every 5 s and at the end where it goes: file pages, V8's heap
 * spaces, buffers, the rest (the servers print their memory at each SIGUSR2 mark).
 * What an idle connection costs is measured by `bench/idle.bench.ts` (`pnpm bench:idle`).
 */
import { spawn, spawnSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { loadavg } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { parseArgs } from "node:util";
import type { LoadReport } from "../src/testing/index.ts";

const { values } = parseArgs({
  args: process.argv.slice(2).filter((arg) => arg !== "--"),
  options: {
    duration: { type: "string" },
    long: { type: "boolean", default: false },
    connections: { type: "string", default: "64" },
    depth: { type: "string", default: "20" },
    rounds: { type: "string", default: "6" },
    rate: { type: "string", default: "50000" },
    closed: { type: "boolean", default: false },
    apart: { type: "boolean", default: false },
  },
});
const packageDir = join(import.meta.dirname, "..");
const node = process.execPath;
const generator = join("dist", "bin", "spop-bench.js");
for (const built of [generator, join("..", "spop-codec", "dist", "index.js")]) {
  if (!existsSync(join(packageDir, built))) throw new Error(`${built} is missing: run \`pnpm build\` first`);
}
const pinned = spawnSync("taskset", ["-c", "0", "true"]).status === 0;
if (!pinned) console.warn("taskset is not available: the processes are not pinned to cores");
const onCore = (core: number, command: string[]) =>
  pinned ? ["taskset", "-c", String(core), ...command] : command;
/** Seconds the generator loads before measuring; the window measured here starts after them. */
const WARMUP = 2;

interface Server {
  pid: number;
  port: number;
  /** Started with V8's GC trace: a mark's `allocated` is known. */
  traced: boolean;
  /**
   * Marks a point of the run: the NOTIFYs the server answered and the CPU it used so far, and
   * the bytes it allocated since the previous mark (a traced server only).
   */
  mark(): Promise<Mark>;
  /** Moves the server (every thread) to `core`. */
  pin(core: number): void;
  stop(): Promise<void>;
  /** What the server reports of its memory (the `memory` line it prints at each mark), parsed. */
  memory(): Promise<MemoryReport>;
}

/** The `mark` line of the bench servers, with what the GC trace reported since the last mark. */
interface Mark {
  /** NOTIFYs answered since the server started. */
  notifies: number;
  /** User + system CPU time of the process since it started (`process.cpuUsage()`), µs. */
  cpu: number;
  /** Bytes allocated since the previous mark, as the GC trace reports them. */
  allocated: number;
  /** `performance.now()` in the bench when the mark arrived. */
  at: number;
}

/** The `memory` line of the bench servers: `process.memoryUsage()` and V8's heap spaces, bytes. */
interface MemoryReport {
  usage: NodeJS.MemoryUsage;
  spaces: Record<string, number>;
}

const GC_TRACE = ["--trace-gc", "--trace-gc-nvp"];

function startServer(script: string, nodeFlags: string[] = []): Promise<Server> {
  const [command, ...args] = onCore(0, [node, ...nodeFlags, join("bench", script), "0"]) as [
    string,
    ...string[],
  ];
  const child = spawn(command, args, { cwd: packageDir, stdio: ["ignore", "pipe", "inherit"] });
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  return new Promise((resolve, reject) => {
    let output = "";
    let listening = false;
    // After "listening": the GC trace's lines, and a "mark" and a "memory" line for each SIGUSR2.
    let allocated = 0;
    const onMark: ((mark: Mark) => void)[] = [];
    const onMemory: ((report: MemoryReport) => void)[] = [];
    const traceLine = (line: string) => {
      if (line.startsWith("memory ")) {
        onMemory.shift()?.(JSON.parse(line.slice("memory ".length)) as MemoryReport);
      } else if (line.startsWith("mark ")) {
        const [notifies = 0, user = 0, system = 0] = line.slice("mark ".length).split(" ").map(Number);
        onMark.shift()?.({ notifies, cpu: user + system, allocated, at: performance.now() });
        allocated = 0;
      } else {
        allocated += Number(/ allocated=(\d+)/.exec(line)?.[1] ?? 0);
      }
    };
    child.once("exit", (code, signal) => {
      if (!listening) reject(new Error(`${script} exited with ${code ?? signal}: ${output}`));
      else if (signal !== "SIGTERM" && code !== 0) console.error(`${script} exited early: ${code ?? signal}`);
    });
    child.stdout.on("data", (chunk: Buffer) => {
      output += chunk.toString();
      if (listening) {
        const lines = output.split("\n");
        output = lines.pop() ?? "";
        for (const line of lines) traceLine(line);
        return;
      }
      const port = /listening (\d+)/.exec(output)?.[1];
      if (port === undefined) return;
      listening = true;
      output = output.slice(output.indexOf("\n", output.indexOf("listening")) + 1);
      const pid = child.pid as number;
      // Each SIGUSR2 prints a mark line, then a memory line: one waiter of each per signal.
      const signal = (mark: (mark: Mark) => void, memory: (report: MemoryReport) => void) => {
        onMark.push(mark);
        onMemory.push(memory);
        process.kill(pid, "SIGUSR2");
      };
      resolve({
        pid,
        port: Number(port),
        traced: nodeFlags.includes("--trace-gc-nvp"),
        mark: () => new Promise((done) => signal(done, () => {})),
        memory: () => new Promise((done) => signal(() => {}, done)),
        pin(core: number) {
          if (pinned)
            spawnSync("taskset", ["-a", "-p", "-c", String(core), String(pid)], { stdio: "ignore" });
        },
        async stop() {
          child.kill("SIGTERM");
          await exited;
        },
      });
    });
  });
}

/** Resident set size of `pid` in MiB. */
function rss(pid: number): number {
  const match = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  return Number(match?.[1] ?? 0) / 1024;
}

/** One run's figures, over the window between the server's two marks. */
interface Run {
  /** The generator's report; `undefined` if it had to be stopped. */
  report: LoadReport | undefined;
  peakRss: number;
  /** NOTIFY/s the server answered. */
  rate: number;
  /** µs of the server's CPU time per NOTIFY it answered. */
  cpuPerNotify: number;
  /** The share of one core the server used. */
  busy: number;
  /** Bytes allocated per NOTIFY (a traced server), else NaN. */
  bytesPerNotify: number;
}

/**
 * Runs spop-bench on `generatorCore` against the server for `WARMUP` + `seconds` s; marks the
 * server at the end of the warm-up and just before the end of the load; samples its RSS meanwhile.
 */
async function load(
  server: Server,
  seconds: number,
  {
    extra = [],
    generatorCore = 1,
    onSample,
  }: {
    extra?: string[];
    generatorCore?: number;
    onSample?: (mib: number, at: number) => void;
  } = {},
): Promise<Run> {
  const argv = [
    node,
    generator,
    "--port",
    String(server.port),
    "-c",
    values.connections,
    "-d",
    values.depth,
    "-t",
    String(seconds),
    "--warmup",
    String(WARMUP),
    "--json",
    ...extra,
  ];
  const [command, ...args] = onCore(generatorCore, argv) as [string, ...string[]];
  let peakRss = 0;
  const started = performance.now();
  const sampler = setInterval(() => {
    const mib = rss(server.pid);
    peakRss = Math.max(peakRss, mib);
    onSample?.(mib, (performance.now() - started) / 1000);
  }, 500);
  const child = spawn(command, args, { cwd: packageDir, stdio: ["ignore", "pipe", "inherit"] });
  let output = "";
  child.stdout.on("data", (chunk: Buffer) => {
    output += chunk.toString();
  });
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  // The generator starts (a few hundred ms), warms up, then loads for `seconds`: the window
  // measured lies inside its load, whatever its start-up took within half a second.
  const from = sleep(WARMUP * 1000 + 500).then(() => server.mark());
  const to = sleep((WARMUP + seconds) * 1000 - 100).then(() => server.mark());
  // A generator that does not end (seen now and then, after its load) is stopped.
  const watchdog = setTimeout(
    () => {
      console.error("  the load generator did not end: stopped");
      child.kill("SIGKILL");
    },
    (WARMUP + seconds + 30) * 1000,
  );
  await exited;
  clearTimeout(watchdog);
  clearInterval(sampler);
  const [first, last] = await Promise.all([from, to]);
  const notifies = last.notifies - first.notifies;
  const cpu = last.cpu - first.cpu;
  const wall = (last.at - first.at) / 1000;
  let report: LoadReport | undefined;
  try {
    report = JSON.parse(output) as LoadReport;
  } catch {
    report = undefined;
  }
  return {
    report,
    peakRss,
    rate: notifies / wall,
    cpuPerNotify: cpu / notifies,
    busy: cpu / 1e6 / wall,
    bytesPerNotify: server.traced ? last.allocated / notifies : Number.NaN,
  };
}

const fmt = (n: number, digits = 0) =>
  n.toLocaleString("en-US", { minimumFractionDigits: digits, maximumFractionDigits: digits });
const latency = (r: LoadReport | undefined) =>
  r === undefined
    ? "no report"
    : `p50 ${fmt(r.latency.p50, 2)}  p90 ${fmt(r.latency.p90, 2)}  p99 ${fmt(r.latency.p99, 2)}  p99.9 ${fmt(r.latency.p999, 2)} ms`;
const errors = (r: LoadReport | undefined) =>
  r === undefined
    ? "the generator was stopped"
    : r.errors.total === 0
      ? "no errors"
      : `${r.errors.total} errors: ${r.errors.samples[0]}`;
const missed = (r: LoadReport | undefined) =>
  r === undefined || r.missed === 0 ? "" : `, ${fmt(r.missed)} not sent on time`;

/** RssAnon and RssFile of `pid` in MiB: the process's own memory, and the pages of the files it maps. */
function rssParts(pid: number): { anon: number; file: number } {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const kib = (field: string) => Number(new RegExp(`${field}:\\s+(\\d+) kB`).exec(status)?.[1] ?? 0) / 1024;
  return { anon: kib("RssAnon"), file: kib("RssFile") };
}

const MiB = (bytes: number) => `${fmt(bytes / 1048576, 1)} MiB`;

/** Where the RSS goes: file pages, V8's heap by space, buffers, the rest of the process's own. */
function printBreakdown(rss: { anon: number; file: number }, { usage, spaces }: MemoryReport): void {
  const heap = Object.values(spaces).reduce((sum, bytes) => sum + bytes, 0);
  const space = (name: string) => spaces[name] ?? 0;
  const known = ["new_space", "old_space", "code_space", "trusted_space", "large_object_space"];
  const other = heap - known.reduce((sum, name) => sum + space(name), 0);
  console.log(`  RSS at the end: ${fmt(rss.anon + rss.file, 1)} MiB =`);
  console.log(
    `    ${fmt(rss.file, 1).padStart(6)} MiB  file pages (the node binary and libraries, shared, read-only)`,
  );
  console.log(`    ${fmt(rss.anon, 1).padStart(6)} MiB  the process's own (RssAnon), of which:`);
  console.log(
    `      V8 heap ${MiB(heap)}: new space ${MiB(space("new_space"))} (young generation), old ${MiB(space("old_space"))}, code ${MiB(space("code_space"))}, trusted ${MiB(space("trusted_space"))}, large objects ${MiB(space("large_object_space"))}, other ${MiB(other)}`,
  );
  console.log(
    `      buffers and other memory V8 is told about: ${MiB(usage.external)} (ArrayBuffers ${MiB(usage.arrayBuffers)})`,
  );
  console.log(
    `      the rest, ${fmt(Math.max(0, rss.anon - (heap + usage.external) / 1048576), 1)} MiB: malloc (Node, V8's compilers and threads), stacks`,
  );
}

const median = (values: number[]) => {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = sorted.length / 2;
  return sorted.length % 2 === 1
    ? (sorted[Math.floor(middle)] as number)
    : ((sorted[middle - 1] as number) + (sorted[middle] as number)) / 2;
};

const shape = `${values.connections} connections × ${values.depth} in flight`;
console.log(
  `Node ${process.version}, ${pinned ? "servers and load generator on separate cores" : "unpinned"}`,
);

if (values.long) {
  const seconds = Number(values.duration ?? 60);
  const server = await startServer("agent-server.mjs");
  try {
    console.log(`\nthe agent (Node's default flags), ${shape}, ${seconds} s — RSS every 5 s:`);
    const samples: number[] = [];
    const { rate, report, peakRss } = await load(server, seconds, {
      onSample: (mib, at) => {
        samples.push(mib);
        if (samples.length % 10 === 0) console.log(`  ${fmt(at, 0).padStart(3)} s  ${fmt(mib, 1)} MiB`);
      },
    });
    const settled = samples.slice(Math.floor(samples.length / 4));
    const [loadOne, loadFive] = loadavg();
    console.log(`  ${fmt(rate)} NOTIFY/s, ${latency(report)}, ${errors(report)}`);
    console.log(`  machine load average ${fmt(loadOne ?? 0, 1)} (1 min), ${fmt(loadFive ?? 0, 1)} (5 min)`);
    console.log(
      `  RSS peak ${fmt(peakRss, 1)} MiB; after the first quarter between ${fmt(Math.min(...settled), 1)} and ${fmt(Math.max(...settled), 1)} MiB`,
    );
    printBreakdown(rssParts(server.pid), await server.memory());
  } finally {
    await server.stop();
  }
} else {
  const seconds = Number(values.duration ?? 10);
  const rounds = Number(values.rounds);
  const rate = values.closed ? undefined : Number(values.rate);
  const extra = rate === undefined ? [] : ["--rate", String(rate)];
  // Both servers stay up; the rounds alternate which goes first, and every two rounds which
  // core the servers and the generator get, so that a change in the machine's load, or a busier
  // core, hits both alike. Each ratio compares the two runs of one round.
  const echoServer = await startServer("echo-server.mjs", GC_TRACE);
  const agentServer = await startServer("agent-server.mjs", GC_TRACE);
  const echo: Run[] = [];
  const agent: Run[] = [];
  const layouts: number[] = [];
  const loadFrom = loadavg()[0] ?? 0;
  try {
    for (let round = 0; round < rounds; round++) {
      const core = pinned ? (values.apart ? Math.floor(round / 2) : round) % 2 : 0;
      layouts.push(core);
      echoServer.pin(core);
      agentServer.pin(core);
      const run = (server: Server) => load(server, seconds, { extra, generatorCore: 1 - core });
      if (!values.apart) {
        const [e, a] = await Promise.all([run(echoServer), run(agentServer)]);
        echo.push(e);
        agent.push(a);
      } else if (round % 2 === 0) {
        echo.push(await run(echoServer));
        agent.push(await run(agentServer));
      } else {
        agent.push(await run(agentServer));
        echo.push(await run(echoServer));
      }
    }
    const [echoParts, agentParts] = [rssParts(echoServer.pid), rssParts(agentServer.pid)];
    const pairs = echo.map((e, i) => [e, agent[i] as Run] as const);
    const cpuRatios = pairs.map(([e, a]) => a.cpuPerNotify / e.cpuPerNotify);
    const [loadTo] = loadavg();
    const mode =
      rate === undefined
        ? `closed loop (${shape}, as fast as each server answers)`
        : `open loop at ${fmt(rate)} NOTIFY/s to each server (${shape} at most)`;
    console.log(
      `\n${mode}, ${seconds} s per run (+${WARMUP} s warm-up), ${rounds} rounds ${values.apart ? "one server after the other, alternating" : "both servers at once"}; machine load average (1 min) ${fmt(loadFrom, 1)} at the start, ${fmt(loadTo ?? 0, 1)} at the end\n`,
    );
    const row = (name: string, r: Run) =>
      `  ${name.padEnd(22)} ${fmt(r.rate).padStart(9)} NOTIFY/s  core ${fmt(r.busy * 100).padStart(3)} % busy  ${fmt(r.cpuPerNotify, 3)} µs CPU per NOTIFY  ${fmt(r.bytesPerNotify)} B allocated per NOTIFY  p99 ${r.report === undefined ? "?" : fmt(r.report.latency.p99, 2)} ms  ${errors(r.report)}${missed(r.report)}`;
    for (const [i, [e, a]] of pairs.entries()) {
      const core = layouts[i] as number;
      const when = !values.apart ? "both at once" : i % 2 === 0 ? "echo first" : "agent first";
      console.log(`round ${i + 1} (servers on core ${core}, load generators on core ${1 - core}, ${when})`);
      console.log(row("echo server (baseline)", e));
      console.log(row("spoe-agent", a));
      console.log(`  agent / echo           CPU per NOTIFY ${fmt(cpuRatios[i] as number, 3)}×`);
    }
    const perNotify = (runs: Run[]) => fmt(median(runs.map((r) => r.cpuPerNotify)), 3);
    const bytes = (runs: Run[]) => fmt(median(runs.map((r) => r.bytesPerNotify)));
    console.log(
      `\nagent / echo CPU per NOTIFY, median of ${rounds} rounds: ${fmt(median(cpuRatios), 3)}× (target ≤ 1.05; rounds from ${fmt(Math.min(...cpuRatios), 3)}× to ${fmt(Math.max(...cpuRatios), 3)}×)`,
    );
    console.log(
      `medians: echo ${perNotify(echo)} µs, agent ${perNotify(agent)} µs CPU per NOTIFY; echo ${bytes(echo)} B, agent ${bytes(agent)} B allocated per NOTIFY`,
    );
    console.log(
      `latency, last round: echo ${latency(echo.at(-1)?.report)}; agent ${latency(agent.at(-1)?.report)}`,
    );
    const peak = (runs: { peakRss: number }[]) => fmt(Math.max(...runs.map((r) => r.peakRss)), 1);
    console.log(`\nRSS peak over the runs: echo server ${peak(echo)} MiB, spoe-agent ${peak(agent)} MiB`);
    console.log(
      `RSS at the end: echo server ${fmt(echoParts.anon, 1)} MiB own + ${fmt(echoParts.file, 1)} MiB file pages, spoe-agent ${fmt(agentParts.anon, 1)} MiB own + ${fmt(agentParts.file, 1)} MiB file pages`,
    );
  } finally {
    await Promise.all([echoServer.stop(), agentServer.stop()]);
  }
}
