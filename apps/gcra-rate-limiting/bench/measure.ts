/**
 * What the benchmark reads: wrk's results, and from /proc the CPU time, socket syscalls and RSS
 * of the processes under test and the machine's idle time.
 */
import { spawn, spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";

const wrkScript = join(import.meta.dirname, "wrk.lua");

/** The wrk binary, or an error naming the command that installs it. */
export function wrkBinary(): string {
  const found = spawnSync("sh", ["-c", "command -v wrk"], { encoding: "utf8" });
  const path = found.stdout.trim();
  if (found.status === 0 && path) return path;
  throw new Error(
    "wrk is not installed: the benchmark drives HAProxy with it. Run `node scripts/bootstrap.mjs bench-setup` (or `apt-get install wrk`).",
  );
}

export interface WrkResult {
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
  /** Answers without the agent's `RateLimit-Limit` header (with `countUnchecked`). */
  unchecked?: number;
}

export interface WrkOptions {
  port: number;
  connections: number;
  seconds: number;
  /** Distinct client addresses (X-Forwarded-For) the requests are drawn from. */
  clients: number;
  /** Each connection waits this long after each answer (pacing); unset: as fast as answered. */
  delayMs?: number;
  /** A CPU to pin wrk to. */
  cpu?: number;
  /**
   * Count the answers HAProxy gave without the agent's verdict (no `RateLimit-Limit` header):
   * requests that passed unchecked. Costs wrk a Lua call per answer.
   */
  countUnchecked?: boolean;
}

/** Runs wrk with bench/wrk.lua and parses the JSON line its `done()` prints. */
export function wrk(options: WrkOptions): Promise<WrkResult> {
  const command = [
    wrkBinary(),
    "-t1",
    `-c${options.connections}`,
    `-d${options.seconds}s`,
    "--timeout",
    "2s",
    "-s",
    wrkScript,
    `http://127.0.0.1:${options.port}/`,
  ];
  const [file = "", ...rest] =
    options.cpu === undefined ? command : ["taskset", "-c", String(options.cpu), ...command];
  return new Promise((resolve, reject) => {
    const child = spawn(file, rest, {
      env: {
        ...process.env,
        WRK_CLIENTS: String(options.clients),
        ...(options.delayMs !== undefined ? { WRK_DELAY_MS: String(options.delayMs) } : {}),
        ...(options.countUnchecked ? { WRK_COUNT_UNCHECKED: "1" } : {}),
      },
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
      const { unchecked, ...result } = JSON.parse(line) as Omit<WrkResult, "rps"> & { unchecked: number };
      resolve({
        ...result,
        rps: result.requests / (result.durationUs / 1e6),
        ...(options.countUnchecked ? { unchecked } : {}),
      });
    });
  });
}

/** Socket errors and timeouts of a wrk run (not HTTP statuses). */
export const socketErrors = (r: WrkResult): number =>
  r.connectErrors + r.readErrors + r.writeErrors + r.timeouts;

export const median = (values: readonly number[]): number =>
  [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)] ?? Number.NaN;

/** The direct children of a process. */
export function childrenOf(pid: number): number[] {
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

/** A process and its children (the app's cluster workers). */
export const family = (pid: number): number[] => [pid, ...childrenOf(pid)];

function statFields(pid: number): string[] {
  try {
    return readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]?.split(" ") ?? [];
  } catch {
    return [];
  }
}

/** What a process (with its children) has used so far: CPU seconds and read/write syscalls. */
export interface Usage {
  cpu: number;
  reads: number;
  writes: number;
}

/** CPU seconds (utime + stime of every thread) and `syscr`/`syscw` of `pid` and its children. */
export function usage(pid: number): Usage {
  const total: Usage = { cpu: 0, reads: 0, writes: 0 };
  for (const p of family(pid)) {
    const fields = statFields(p);
    total.cpu += (Number(fields[11] ?? 0) + Number(fields[12] ?? 0)) / 100;
    try {
      const io = readFileSync(`/proc/${p}/io`, "utf8");
      total.reads += Number(/syscr: (\d+)/.exec(io)?.[1] ?? 0);
      total.writes += Number(/syscw: (\d+)/.exec(io)?.[1] ?? 0);
    } catch {
      // exited
    }
  }
  return total;
}

export const minus = (after: Usage, before: Usage): Usage => ({
  cpu: after.cpu - before.cpu,
  reads: after.reads - before.reads,
  writes: after.writes - before.writes,
});

/** The machine's CPU times so far: idle and total (seconds over all CPUs). */
export function machineTimes(): { idle: number; total: number } {
  const fields = (readFileSync("/proc/stat", "utf8").split("\n")[0] ?? "").trim().split(/\s+/).slice(1);
  const values = fields.map(Number);
  return {
    idle: ((values[3] ?? 0) + (values[4] ?? 0)) / 100,
    total: values.slice(0, 8).reduce((a, b) => a + b, 0) / 100,
  };
}

/** The 1-minute load average. */
export const loadAverage = (): number => Number(readFileSync("/proc/loadavg", "utf8").split(" ")[0]);

/** A process's resident memory, bytes: all of it, anonymous, and file-backed (the node binary's pages). */
export interface Rss {
  rss: number;
  anon: number;
  file: number;
}

/** VmRSS, RssAnon and RssFile of a process (0 once it exited). */
export function rssOf(pid: number): Rss {
  try {
    const status = readFileSync(`/proc/${pid}/status`, "utf8");
    const kb = (field: string) => Number(new RegExp(`${field}:\\s+(\\d+) kB`).exec(status)?.[1] ?? 0) * 1024;
    return { rss: kb("VmRSS"), anon: kb("RssAnon"), file: kb("RssFile") };
  } catch {
    return { rss: 0, anon: 0, file: 0 };
  }
}

/** The sample of highest VmRSS of each process of the families of `roots`, every 250 ms until `stop()`. */
export function sampleRss(roots: readonly number[]): { stop(): Map<number, Rss> } {
  const peaks = new Map<number, Rss>();
  const timer = setInterval(() => {
    for (const root of roots)
      for (const pid of family(root)) {
        const now = rssOf(pid);
        if (now.rss > (peaks.get(pid)?.rss ?? 0)) peaks.set(pid, now);
      }
  }, 250);
  return {
    stop() {
      clearInterval(timer);
      return peaks;
    },
  };
}

/** Pins every thread of `pid` to `cpu` (nothing when `cpu` is undefined). */
export function pin(pid: number, cpu: number | undefined): void {
  if (cpu === undefined) return;
  const result = spawnSync("taskset", ["-a", "-p", "-c", String(cpu), String(pid)], { encoding: "utf8" });
  if (result.status !== 0) throw new Error(`taskset failed: ${result.stderr}`);
}

/** What each connection of a paced run waits after each answer (wrk.lua's WRK_DELAY_MS). */
export const PACING_DELAY_MS = 1;

/**
 * Finds the number of paced connections (each waiting {@link PACING_DELAY_MS} after each
 * answer) that make about half of `maxRps`: a first guess, then up to two corrections while
 * the run is more than 10 % off. `run` measures one window with that many connections.
 */
export async function atHalfLoad<T extends { wrk: WrkResult }>(
  maxRps: number,
  run: (connections: number) => Promise<T>,
): Promise<{ connections: number; window: T }> {
  const target = maxRps / 2;
  let connections = Math.max(1, Math.round(target / 700));
  let window = await run(connections);
  for (let attempt = 0; attempt < 2 && Math.abs(window.wrk.rps / target - 1) > 0.1; attempt++) {
    connections = Math.max(1, Math.round((connections * target) / window.wrk.rps));
    window = await run(connections);
  }
  return { connections, window };
}
