/**
 * `pnpm bench:idle`: what a held connection costs — a bare Node `net` server (the baseline:
 * Node's own cost per socket) against the agent, in the same run.
 *
 * For each server and each phase a fresh child process (`bench/idle-server.mjs`, from `dist`,
 * `--expose-gc`): `--warmup` connections first (default 500, so that the code they run is
 * compiled and the heap and malloc's arenas have grown past their start: with 50, the next
 * thousand also pay those one-time costs), a report, `--connections` more (default 1 000), a
 * report. Each report follows full GCs and gives RssAnon (from /proc), the V8 heap in use and
 * external memory; the difference divided by the connections is the cost of one.
 *
 * - `pre-HELLO`: the connections send nothing (a connection before its handshake, a flood).
 * - `HELLO'd`: each sends a HAPROXY-HELLO and waits for the answer (the bare server answers
 *   every read with an AGENT-HELLO's bytes), then stays idle, as HAProxy's idle connections do.
 *
 * `--rounds` (default 3) repeats the four measurements, alternating which server goes first;
 * the figures printed are each one's median. The client sockets live in this process.
 * `--node-flags "…"` passes flags to the servers' node (the environment, e.g. `MALLOC_*`, passes
 * through).
 */
import { type ChildProcess, spawn } from "node:child_process";
import { connect, type Socket } from "node:net";
import { loadavg } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { parseArgs } from "node:util";
import { encodeFrame, haproxyHelloFrame } from "@spoekit/spop-codec";

const { values } = parseArgs({
  args: process.argv.slice(2).filter((arg) => arg !== "--"),
  options: {
    connections: { type: "string", default: "1000" },
    warmup: { type: "string", default: "500" },
    rounds: { type: "string", default: "3" },
    "node-flags": { type: "string", default: "" },
  },
});
const packageDir = join(import.meta.dirname, "..");
const COUNT = Number(values.connections);
const WARMUP = Number(values.warmup);
const ROUNDS = Number(values.rounds);
/** Extra flags for the servers' node, e.g. `--max-semi-space-size=1`. */
const NODE_FLAGS = values["node-flags"].split(" ").filter((flag) => flag !== "");
/** Connections opened at once. */
const BATCH = 100;
const HELLO = encodeFrame(
  haproxyHelloFrame({ supportedVersions: ["2.0"], maxFrameSize: 16380, capabilities: ["pipelining"] }),
);

type Kind = "net" | "agent";
type Phase = "pre-HELLO" | "HELLO'd";

/** What `idle-server.mjs` reports, bytes. */
interface MemoryReport {
  connections: number;
  rssAnon: number;
  heapUsed: number;
  external: number;
  arrayBuffers: number;
  /** V8's heap spaces: the bytes of each backed by memory. */
  spaces: Record<string, number>;
}

/** The figures compared, bytes: the report's, and where RssAnon goes. */
const FIELDS = ["rssAnon", "heapUsed", "external", "youngGen", "heapPages", "rest"] as const;
const HEADERS = ["RssAnon", "V8 heap", "external", "new space", "old etc.", "malloc"];
type Figures = Record<(typeof FIELDS)[number], number>;

function figures(report: MemoryReport): Figures {
  const pages = Object.values(report.spaces).reduce((sum, bytes) => sum + bytes, 0);
  const young = report.spaces.new_space ?? 0;
  return {
    rssAnon: report.rssAnon,
    heapUsed: report.heapUsed,
    external: report.external,
    youngGen: young,
    heapPages: pages - young,
    rest: report.rssAnon - pages - report.external,
  };
}

class ServerProcess {
  readonly #child: ChildProcess;
  readonly #lines: AsyncIterator<string>;

  constructor(kind: Kind) {
    this.#child = spawn(
      process.execPath,
      [...NODE_FLAGS, "--expose-gc", join("bench", "idle-server.mjs"), kind],
      {
        cwd: packageDir,
        stdio: ["pipe", "pipe", "inherit"],
      },
    );
    const stdout = this.#child.stdout;
    if (stdout === null) throw new Error("the server's stdout is not a pipe");
    this.#lines = createInterface({ input: stdout })[Symbol.asyncIterator]();
  }

  /** The next line of output that starts with `prefix`, without it (pino's lines are skipped). */
  async #expect(prefix: string): Promise<string> {
    for (;;) {
      const { value, done } = await this.#lines.next();
      if (done === true) throw new Error(`the server exited before printing "${prefix}"`);
      if (value.startsWith(prefix)) return value.slice(prefix.length);
    }
  }

  async port(): Promise<number> {
    return Number(await this.#expect("listening "));
  }

  /** Full GCs, then the server's memory, once it holds `connections` connections. */
  async memory(connections: number): Promise<MemoryReport> {
    for (let attempt = 0; ; attempt++) {
      this.#child.stdin?.write("report\n");
      const report = JSON.parse(await this.#expect("memory ")) as MemoryReport;
      if (report.connections === connections) return report;
      if (attempt === 100)
        throw new Error(`the server holds ${report.connections} connections, not ${connections}`);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  }

  async stop(): Promise<void> {
    const exited = new Promise((resolve) => this.#child.once("exit", resolve));
    this.#child.kill("SIGTERM");
    await exited;
  }
}

/** Opens `count` connections to `port`; with `hello`, each past its handshake. */
async function open(port: number, count: number, hello: boolean, into: Socket[]): Promise<void> {
  for (let done = 0; done < count; ) {
    const batch = Math.min(BATCH, count - done);
    await Promise.all(
      Array.from(
        { length: batch },
        () =>
          new Promise<void>((resolve, reject) => {
            const socket = connect(port, "127.0.0.1");
            into.push(socket);
            socket.once("error", reject);
            if (!hello) {
              socket.once("connect", () => resolve());
              return;
            }
            // The answer back: the connection is past its handshake.
            socket.once("data", () => resolve());
            socket.write(HELLO);
          }),
      ),
    );
    done += batch;
  }
}

/** Per held connection, bytes: the growth of each figure divided by the connections. */
type Cost = Figures;

async function measure(kind: Kind, phase: Phase): Promise<Cost> {
  const server = new ServerProcess(kind);
  const sockets: Socket[] = [];
  try {
    const port = await server.port();
    const hello = phase === "HELLO'd";
    await open(port, WARMUP, hello, sockets);
    const before = figures(await server.memory(WARMUP));
    await open(port, COUNT, hello, sockets);
    const after = figures(await server.memory(WARMUP + COUNT));
    const cost = {} as Cost;
    for (const field of FIELDS) cost[field] = (after[field] - before[field]) / COUNT;
    return cost;
  } finally {
    for (const socket of sockets) socket.destroy();
    await server.stop();
  }
}

const median = (values: number[]) =>
  [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)] as number;
const fmt = (n: number, digits = 0) =>
  n.toLocaleString("en-US", { minimumFractionDigits: digits, maximumFractionDigits: digits });
const KiB = (bytes: number) => `${fmt(bytes / 1024, 1)} KiB`.padStart(9);

console.log(
  `Node ${process.version}: ${fmt(COUNT)} connections after ${fmt(WARMUP)} warm-up ones, ${ROUNDS} rounds, each in a fresh process`,
);
const phases: Phase[] = ["pre-HELLO", "HELLO'd"];
const results = new Map<string, Cost[]>();
for (let round = 0; round < ROUNDS; round++) {
  const kinds: Kind[] = round % 2 === 0 ? ["net", "agent"] : ["agent", "net"];
  for (const phase of phases) {
    for (const kind of kinds) {
      const key = `${kind} ${phase}`;
      const cost = await measure(kind, phase);
      results.set(key, [...(results.get(key) ?? []), cost]);
    }
  }
}

const [loadOne, loadFive] = loadavg();
console.log(
  `machine load average ${fmt(loadOne ?? 0, 1)} (1 min), ${fmt(loadFive ?? 0, 1)} (5 min); per held connection, median of the rounds:\n`,
);
console.log(`  ${"".padEnd(30)} ${HEADERS.map((header) => header.padStart(9)).join(" ")}`);
for (const phase of phases) {
  const cost = (kind: Kind) => {
    const runs = results.get(`${kind} ${phase}`) ?? [];
    return Object.fromEntries(FIELDS.map((field) => [field, median(runs.map((run) => run[field]))])) as Cost;
  };
  const [net, agent] = [cost("net"), cost("agent")];
  const row = (name: string, c: Cost) =>
    `  ${name.padEnd(30)} ${FIELDS.map((field) => KiB(c[field])).join(" ")}`;
  console.log(row(`${phase}: bare net server`, net));
  console.log(row(`${phase}: agent`, agent));
  console.log(
    `  ${`${phase}: agent − bare`.padEnd(30)} ${FIELDS.map((field) => KiB(agent[field] - net[field])).join(" ")}`,
  );
  console.log(
    `  ${`${phase}: agent / bare`.padEnd(30)} ${FIELDS.map((field) => (net[field] > 0 ? `${fmt(agent[field] / net[field], 2)}×` : "—").padStart(9)).join(" ")}\n`,
  );
}
