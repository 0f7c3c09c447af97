/**
 * `pnpm bench`: the agent against a bare-bones echo SPOA on the same codec, driven by the same
 * load generator in the same run. The server under test runs on core 0, the generator on core 1
 * (`taskset`), each in its own process.
 *
 * 1. Throughput: 64 connections × 20 NOTIFYs in flight for `--duration` seconds, against the
 *    echo server, then the agent (a handler setting one variable): NOTIFY/s, latency, and the
 *    agent's rate as a fraction of the echo server's (the cost of the library).
 * 2. Latency in open loop at 75 000 NOTIFY/s (half the 150 000 the agent is asked to reach), for
 *    both servers.
 * 3. The CPU each server used per NOTIFY at full load (from /proc), the bytes it allocated per
 *    NOTIFY (from V8's GC trace: these runs start the servers with `--trace-gc --trace-gc-nvp`,
 *    which print a line per GC and change nothing else), and its RSS, sampled every 500 ms.
 *
 * The servers and the generator run the built JavaScript (`dist`), as deployed agents do: the
 * package script builds first.
 * `--long` instead runs the agent alone at full load for 60 s (or `--duration`), with Node's
 * default flags, printing its RSS every 5 s.
 *
 * On a machine where others benchmark too, serialise the runs (e.g. `flock <lock file> pnpm bench`).
 */
import { spawn, spawnSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
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
    const traceLine = (line: string) => {
      if (line === "mark") {
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

/** Full load, then open loop at the judged rate. */
async function measure(script: string, seconds: number) {
  const server = await startServer(script, GC_TRACE);
  try {
    const full = await load(server, seconds);
    const judged = await load(server, seconds, ["--rate", String(JUDGED_RATE)]);
    return {
      full: full.report,
      judged: judged.report,
      peakRss: Math.max(full.peakRss, judged.peakRss),
      cpu: `core ${fmt(full.busy * 100)} % busy, ${fmt(full.cpuPerNotify, 2)} µs CPU per NOTIFY`,
      cpuPerNotify: full.cpuPerNotify,
      bytesPerNotify: full.bytesPerNotify,
    };
  } finally {
    await server.stop();
  }
}

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
    console.log(`  ${fmt(report.rate)} NOTIFY/s, ${latency(report)}, ${errors(report)}`);
    console.log(
      `  RSS peak ${fmt(peakRss, 1)} MiB; after the first quarter between ${fmt(Math.min(...settled), 1)} and ${fmt(Math.max(...settled), 1)} MiB`,
    );
  } finally {
    await server.stop();
  }
} else {
  const seconds = Number(values.duration ?? 10);
  const agent = await measure("agent-server.mjs", seconds);
  const echo = await measure("echo-server.mjs", seconds);
  console.log(`\n${shape}, ${seconds} s measured (+2 s warm-up) per run\n`);
  console.log(
    `  echo server (baseline)  ${fmt(echo.full.rate).padStart(9)} NOTIFY/s  ${latency(echo.full)}  ${errors(echo.full)}`,
  );
  console.log(
    `  spoe-agent              ${fmt(agent.full.rate).padStart(9)} NOTIFY/s  ${latency(agent.full)}  ${errors(agent.full)}`,
  );
  console.log(`  agent / echo            ${fmt(agent.full.rate / echo.full.rate, 2)}`);
  console.log(`\n  echo server             ${echo.cpu}`);
  console.log(`  spoe-agent              ${agent.cpu}`);
  console.log(
    `  agent / echo            ${fmt(agent.cpuPerNotify / echo.cpuPerNotify, 2)} × the CPU per NOTIFY`,
  );
  console.log(`\n  echo server             ${fmt(echo.bytesPerNotify)} bytes allocated per NOTIFY`);
  console.log(`  spoe-agent              ${fmt(agent.bytesPerNotify)} bytes allocated per NOTIFY`);
  console.log(`\nat ${fmt(JUDGED_RATE)} NOTIFY/s (half the 150,000 target), open loop\n`);
  console.log(
    `  echo server             ${latency(echo.judged)}  ${errors(echo.judged)}${missed(echo.judged)}`,
  );
  console.log(
    `  spoe-agent              ${latency(agent.judged)}  ${errors(agent.judged)}${missed(agent.judged)}`,
  );
  console.log(`\nRSS peak: echo server ${fmt(echo.peakRss, 1)} MiB, spoe-agent ${fmt(agent.peakRss, 1)} MiB`);
}
