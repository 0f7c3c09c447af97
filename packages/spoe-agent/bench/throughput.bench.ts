/**
 * `pnpm bench`: the agent against a bare-bones echo SPOA on the same codec, driven by the same
 * load generator in the same run. The server under test runs on core 0, the generator on core 1
 * (`taskset`), each in its own process; both servers stay up for the whole run.
 *
 * 1. `--rounds` rounds (default 3), each running the echo server and the agent (a handler
 *    setting one variable) at full load — 64 connections × 20 NOTIFYs in flight for
 *    `--duration` seconds — in an order that alternates from round to round, so that a change
 *    in the machine's load hits both alike: NOTIFY/s, the CPU each server used per NOTIFY (from
 *    /proc), the bytes it allocated per NOTIFY (from V8's GC trace: the servers run with
 *    `--trace-gc --trace-gc-nvp`, which print a line per GC and change nothing else), and each
 *    round's agent/echo ratios with their median (the cost of the library).
 * 2. Latency in open loop at 75 000 NOTIFY/s (half the 150 000 the agent is asked to reach), for
 *    both servers.
 * 3. RSS: the peak (sampled every 500 ms), and at the end split into file pages and the
 *    process's own memory; the machine's load average.
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
import { parseArgs } from "node:util";
import type { LoadReport } from "../src/testing/index.ts";

const { values } = parseArgs({
  args: process.argv.slice(2).filter((arg) => arg !== "--"),
  options: {
    duration: { type: "string" },
    long: { type: "boolean", default: false },
    connections: { type: "string", default: "64" },
    depth: { type: "string", default: "20" },
    rounds: { type: "string", default: "3" },
  },
});
const packageDir = join(import.meta.dirname, "..");
const node = process.execPath;
const generator = join("dist", "bin", "spop-bench.js");
for (const built of [generator, join("..", "spop-codec", "dist", "index.js")]) {
  if (!existsSync(join(packageDir, built))) throw new Error(`${built} is missing: run \`pnpm build\` first`);
}
/** Half the throughput the agent is asked to reach: where its p99 latency is judged. */
const JUDGED_RATE = 75_000;
const pinned = spawnSync("taskset", ["-c", "0", "true"]).status === 0;
if (!pinned) console.warn("taskset is not available: the processes are not pinned to cores");
const onCore = (core: number, command: string[]) =>
  pinned ? ["taskset", "-c", String(core), ...command] : command;

interface Server {
  pid: number;
  port: number;
  /** Started with V8's GC trace: `allocated()` is known. */
  traced: boolean;
  /** Starts counting the bytes the server allocates (a traced server only). */
  countAllocation(): void;
  /** Stops counting: the bytes allocated since `countAllocation()`, as the GC trace reports them. */
  allocated(): Promise<number>;
  stop(): Promise<void>;
  /** What the server reports of its memory (the `memory` line it prints at each mark), parsed. */
  memory(): Promise<MemoryReport>;
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
    // After "listening": the GC trace's lines, and a "mark" line for each SIGUSR2.
    let counting = false;
    let allocated = 0;
    let onAllocated: ((bytes: number) => void) | undefined;
    let onMemory: ((report: MemoryReport) => void) | undefined;
    const traceLine = (line: string) => {
      if (line.startsWith("memory ")) {
        onMemory?.(JSON.parse(line.slice("memory ".length)) as MemoryReport);
      } else if (line === "mark") {
        if (counting) onAllocated?.(allocated);
        counting = !counting;
        allocated = 0;
      } else if (counting) {
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
      resolve({
        pid,
        port: Number(port),
        traced: nodeFlags.includes("--trace-gc-nvp"),
        countAllocation: () => process.kill(pid, "SIGUSR2"),
        allocated: () =>
          new Promise((done) => {
            onAllocated = done;
            process.kill(pid, "SIGUSR2");
          }),
        memory: () =>
          new Promise((done) => {
            onMemory = done;
            process.kill(pid, "SIGUSR2");
          }),
        async stop() {
          child.kill("SIGTERM");
          await exited;
        },
      });
    });
  });
}

/** CPU seconds (user + system) `pid` has used. */
function cpuSeconds(pid: number): number {
  // /proc/<pid>/stat: fields 14 and 15 (utime, stime) in clock ticks of 1/100 s, after "(comm)".
  const fields = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]?.split(" ") ?? [];
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

/** Resident set size of `pid` in MiB. */
function rss(pid: number): number {
  const match = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  return Number(match?.[1] ?? 0) / 1024;
}

/** Runs spop-bench on core 1 against `port`; samples the server's RSS meanwhile. */
async function load(
  server: Server,
  seconds: number,
  extra: string[] = [],
  onSample?: (mib: number, at: number) => void,
): Promise<{
  report: LoadReport;
  peakRss: number;
  cpuPerNotify: number;
  busy: number;
  bytesPerNotify: number;
}> {
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
    "2",
    "--json",
    ...extra,
  ];
  const [command, ...args] = onCore(1, argv) as [string, ...string[]];
  let peakRss = 0;
  const started = performance.now();
  // CPU used by the server while measured: from the end of the warm-up to the end of the run.
  let cpuFrom: [number, number] | undefined;
  let cpuTo: [number, number] = [started, cpuSeconds(server.pid)];
  // Bytes a traced server allocated over the same window, with the time it ended.
  let allocation: Promise<[number, number]> | undefined;
  const sampler = setInterval(() => {
    const mib = rss(server.pid);
    peakRss = Math.max(peakRss, mib);
    const now = performance.now();
    const at = (now - started) / 1000;
    onSample?.(mib, at);
    if (at < 2.2) return;
    if (at > seconds + 1.8) {
      if (server.traced && cpuFrom !== undefined && allocation === undefined) {
        allocation = server.allocated().then((bytes) => [bytes, now]);
      }
      return;
    }
    cpuTo = [now, cpuSeconds(server.pid)];
    if (cpuFrom === undefined) {
      cpuFrom = cpuTo;
      if (server.traced) server.countAllocation();
    }
  }, 500);
  const child = spawn(command, args, { cwd: packageDir, stdio: ["ignore", "pipe", "inherit"] });
  let output = "";
  child.stdout.on("data", (chunk: Buffer) => {
    output += chunk.toString();
  });
  await new Promise((resolve) => child.once("exit", resolve));
  clearInterval(sampler);
  const report = JSON.parse(output) as LoadReport;
  const [from, to] = [cpuFrom ?? cpuTo, cpuTo];
  const busy = to[0] > from[0] ? (to[1] - from[1]) / ((to[0] - from[0]) / 1000) : Number.NaN;
  let bytesPerNotify = Number.NaN;
  if (allocation !== undefined && cpuFrom !== undefined) {
    const [bytes, until] = await allocation;
    bytesPerNotify = bytes / ((report.rate * (until - cpuFrom[0])) / 1000);
  }
  return { report, peakRss, busy, cpuPerNotify: (busy / report.rate) * 1e6, bytesPerNotify };
}

const fmt = (n: number, digits = 0) =>
  n.toLocaleString("en-US", { minimumFractionDigits: digits, maximumFractionDigits: digits });
const latency = (r: LoadReport) =>
  `p50 ${fmt(r.latency.p50, 2)}  p90 ${fmt(r.latency.p90, 2)}  p99 ${fmt(r.latency.p99, 2)}  p99.9 ${fmt(r.latency.p999, 2)} ms`;
const missed = (r: LoadReport) => (r.missed === 0 ? "" : `, ${fmt(r.missed)} not sent on time`);
const errors = (r: LoadReport) =>
  r.errors.total === 0 ? "no errors" : `${r.errors.total} errors: ${r.errors.samples[0]}`;

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

/** One full-load run's figures. */
interface Round {
  rate: number;
  cpuPerNotify: number;
  busy: number;
  bytesPerNotify: number;
  peakRss: number;
  report: LoadReport;
}

async function fullLoad(server: Server, seconds: number): Promise<Round> {
  const run = await load(server, seconds);
  return { ...run, rate: run.report.rate };
}

const median = (values: number[]) =>
  [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)] as number;

const shape = `${values.connections} connections × ${values.depth} in flight`;
console.log(`Node ${process.version}, ${pinned ? "server on core 0, load generator on core 1" : "unpinned"}`);

if (values.long) {
  const seconds = Number(values.duration ?? 60);
  const server = await startServer("agent-server.mjs");
  try {
    console.log(`\nthe agent (Node's default flags), ${shape}, ${seconds} s — RSS every 5 s:`);
    const samples: number[] = [];
    const { report, peakRss } = await load(server, seconds, [], (mib, at) => {
      samples.push(mib);
      if (samples.length % 10 === 0) console.log(`  ${fmt(at, 0).padStart(3)} s  ${fmt(mib, 1)} MiB`);
    });
    const settled = samples.slice(Math.floor(samples.length / 4));
    const [loadOne, loadFive] = loadavg();
    console.log(`  ${fmt(report.rate)} NOTIFY/s, ${latency(report)}, ${errors(report)}`);
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
  // Both servers stay up; the rounds alternate which goes first, so that a change in the
  // machine's load hits both alike. Each ratio compares the two runs of one round.
  const echoServer = await startServer("echo-server.mjs", GC_TRACE);
  const agentServer = await startServer("agent-server.mjs", GC_TRACE);
  const echo: Round[] = [];
  const agent: Round[] = [];
  try {
    for (let round = 0; round < rounds; round++) {
      if (round % 2 === 0) {
        echo.push(await fullLoad(echoServer, seconds));
        agent.push(await fullLoad(agentServer, seconds));
      } else {
        agent.push(await fullLoad(agentServer, seconds));
        echo.push(await fullLoad(echoServer, seconds));
      }
    }
    const echoJudged = await load(echoServer, seconds, ["--rate", String(JUDGED_RATE)]);
    const agentJudged = await load(agentServer, seconds, ["--rate", String(JUDGED_RATE)]);
    const [echoParts, agentParts] = [rssParts(echoServer.pid), rssParts(agentServer.pid)];
    const pairs = echo.map((e, i) => [e, agent[i] as Round] as const);
    const cpuRatios = pairs.map(([e, a]) => a.cpuPerNotify / e.cpuPerNotify);
    const rateRatios = pairs.map(([e, a]) => a.rate / e.rate);
    const [loadOne, loadFive] = loadavg();
    console.log(
      `\n${shape}, ${seconds} s measured (+2 s warm-up) per run, ${rounds} rounds alternating; machine load average ${fmt(loadOne ?? 0, 1)} (1 min), ${fmt(loadFive ?? 0, 1)} (5 min) at the end\n`,
    );
    const row = (name: string, r: Round) =>
      `  ${name.padEnd(22)} ${fmt(r.rate).padStart(9)} NOTIFY/s  core ${fmt(r.busy * 100).padStart(3)} % busy  ${fmt(r.cpuPerNotify, 2)} µs CPU per NOTIFY  ${fmt(r.bytesPerNotify)} B allocated per NOTIFY  ${errors(r.report)}`;
    for (const [i, [e, a]] of pairs.entries()) {
      console.log(`round ${i + 1}`);
      console.log(row("echo server (baseline)", e));
      console.log(row("spoe-agent", a));
      console.log(
        `  agent / echo           rate ${fmt(rateRatios[i] as number, 2)}×, CPU per NOTIFY ${fmt(cpuRatios[i] as number, 3)}×`,
      );
    }
    console.log(
      `\nagent / echo, median of the rounds: CPU per NOTIFY ${fmt(median(cpuRatios), 3)}× (target ≤ 1.05), rate ${fmt(median(rateRatios), 2)}×`,
    );
    console.log(
      `latency at full load, last round: echo ${latency((echo.at(-1) as Round).report)}; agent ${latency((agent.at(-1) as Round).report)}`,
    );
    console.log(`\nat ${fmt(JUDGED_RATE)} NOTIFY/s (half the 150,000 target), open loop\n`);
    console.log(
      `  echo server             ${latency(echoJudged.report)}  ${errors(echoJudged.report)}${missed(echoJudged.report)}`,
    );
    console.log(
      `  spoe-agent              ${latency(agentJudged.report)}  ${errors(agentJudged.report)}${missed(agentJudged.report)}`,
    );
    const peak = (runs: { peakRss: number }[]) => fmt(Math.max(...runs.map((r) => r.peakRss)), 1);
    console.log(
      `\nRSS peak over the runs: echo server ${peak([...echo, echoJudged])} MiB, spoe-agent ${peak([...agent, agentJudged])} MiB`,
    );
    console.log(
      `RSS at the end: echo server ${fmt(echoParts.anon, 1)} MiB own + ${fmt(echoParts.file, 1)} MiB file pages, spoe-agent ${fmt(agentParts.anon, 1)} MiB own + ${fmt(agentParts.file, 1)} MiB file pages`,
    );
  } finally {
    await Promise.all([echoServer.stop(), agentServer.stop()]);
  }
}
