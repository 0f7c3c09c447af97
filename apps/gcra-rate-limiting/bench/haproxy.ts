/**
 * One HAProxy process for the benchmark, built from the canonical deploy/base/haproxy files:
 * a `baseline` frontend without the SPOE filter, and one frontend per agent with the filter,
 * each with an SPOE engine and backend of its own. Every frontend is the canonical `http-in`
 * (its rules on the agent's variables included), answering locally (`http-request return 200`)
 * instead of forwarding, without request logs. A stats socket answers `show info` / `show stat`.
 */
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  canonicalHaproxy,
  freePort,
  type HaproxyProcess,
  haproxyBinaries,
  type ServerBinary,
  startHaproxy,
} from "@spoekit/harness";

/** An agent HAProxy sends `check-rate` to, behind a frontend of its own. */
export interface AgentTarget {
  /** Frontend, SPOE engine and backend name: letters, digits, `_`. */
  readonly name: string;
  readonly port: number;
  /** HAProxy's `timeout processing` for this agent (e.g. `15ms`); unset: the canonical one. */
  readonly processing?: string;
}

export interface BenchHaproxy {
  readonly process: HaproxyProcess;
  /** The HTTP port of each frontend: `baseline` and each agent target's name. */
  readonly ports: Readonly<Record<string, number>>;
  /** Sends a command to the stats socket and returns the answer. */
  command(text: string): Promise<string>;
  stop(): Promise<void>;
}

function section(config: string, header: string): string {
  const start = config.indexOf(`\n${header}`);
  if (start < 0) throw new Error(`haproxy.cfg has no \`${header}\` section: update bench/haproxy.ts`);
  const next = config.slice(start + 1).search(/\n(frontend|backend|listen|global|defaults|resolvers) /);
  return config.slice(start + 1, next < 0 ? undefined : start + 1 + next + 1);
}

/** The configuration text and SPOE files for `targets`, with the frontends on `ports`. */
export function benchConfig(
  targets: readonly AgentTarget[],
  ports: Readonly<Record<string, number>>,
  socket: string,
): { config: string; files: Record<string, string> } {
  const { haproxyCfg, spoeConf } = canonicalHaproxy();
  const head = haproxyCfg
    .slice(0, haproxyCfg.indexOf("\nfrontend http-in"))
    .replace(/^global\n/m, `global\n  stats socket ${socket} level admin\n`);
  const frontend = section(haproxyCfg, "frontend http-in")
    .replace(/^\s*option httplog\n/m, "  no log\n")
    .replace(
      /^(\s*)default_backend app$/m,
      "$1http-request return status 200 content-type text/plain string ok",
    );
  if (!frontend.includes("http-request return") || !/^\s*filter spoe .*$/m.test(frontend)) {
    throw new Error("haproxy.cfg's frontend http-in changed shape: update bench/haproxy.ts");
  }
  const backend = section(haproxyCfg, "backend spoe-agents");
  const bind = (name: string) => `  bind 127.0.0.1:${ports[name]}`;
  const parts = [
    head,
    frontend
      .replace("frontend http-in", "frontend baseline")
      .replace(/^\s*bind .*$/m, bind("baseline"))
      .replace(/^\s*filter spoe .*\n/m, ""),
  ];
  const files: Record<string, string> = {};
  for (const { name, port, processing } of targets) {
    parts.push(
      frontend
        .replace("frontend http-in", `frontend ${name}`)
        .replace(/^\s*bind .*$/m, bind(name))
        .replace(/^(\s*)filter spoe .*$/m, `$1filter spoe engine ${name} config spoe-${name}.conf`),
      backend
        .replace("backend spoe-agents", `backend agents_${name}`)
        .replace(/"\$\{AGENT_HOST[^"]*"/, `127.0.0.1:${port}`)
        .replace(/"\$\{AGENT_SLOTS[^"]*"/, "1"),
    );
    const spoe = spoeConf
      .replace("[rate-limit]", `[${name}]`)
      .replace("spoe-agent rate-limit", `spoe-agent ${name}`)
      .replace("use-backend spoe-agents", `use-backend agents_${name}`);
    if (processing !== undefined && !/^\s*timeout processing \S+$/m.test(spoe)) {
      throw new Error("spoe-rate-limit.conf has no `timeout processing` line: update bench/haproxy.ts");
    }
    files[`spoe-${name}.conf`] =
      processing === undefined ? spoe : spoe.replace(/^(\s*timeout processing) \S+$/m, `$1 ${processing}`);
  }
  parts.push(section(haproxyCfg, "listen stats"));
  return { config: parts.join("\n"), files };
}

/** The HAProxy releases `versions` (BENCH_HAPROXY) names, installed; an error if it names none. */
export function benchBinaries(versions: readonly string[]): ServerBinary[] {
  const binaries = haproxyBinaries().filter((b) => versions.includes(b.version));
  if (binaries.length === 0) {
    throw new Error(
      `BENCH_HAPROXY names no release of ${haproxyBinaries()
        .map((b) => b.version)
        .join(", ")}`,
    );
  }
  for (const binary of binaries) binary.path();
  return binaries;
}

/** Starts `haproxy` (nbthread 1) with a baseline frontend and one frontend per target. */
export async function startBenchHaproxy(
  haproxy: ServerBinary,
  targets: readonly AgentTarget[],
): Promise<BenchHaproxy> {
  const names = ["baseline", ...targets.map((t) => t.name)];
  const ports: Record<string, number> = {};
  for (const name of names) ports[name] = await freePort();
  const statsPort = await freePort();
  const socket = join(tmpdir(), `spoekit-bench-${process.pid}-${statsPort}.sock`);
  const { config, files } = benchConfig(targets, ports, socket);
  const process_ = await startHaproxy({
    haproxy,
    config,
    files,
    waitForPorts: [...Object.values(ports), statsPort],
    env: { STATS_BIND: `127.0.0.1:${statsPort}`, NAMESERVER: "127.0.0.1:53", MAXCONN: "8000", NBTHREAD: "1" },
  });
  return {
    process: process_,
    ports,
    command: (text) => statsCommand(socket, text),
    stop: () => process_.stop(),
  };
}

function statsCommand(path: string, text: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect(path);
    let answer = "";
    socket.on("data", (chunk: Buffer) => {
      answer += chunk;
    });
    socket.on("error", reject);
    socket.on("end", () => resolve(answer));
    socket.write(`${text}\n`);
  });
}

/** `show info` as name → value. */
export function parseInfo(text: string): Record<string, string> {
  return Object.fromEntries(
    text
      .split("\n")
      .map((line) => line.split(": "))
      .filter((pair) => pair.length === 2)
      .map(([name, value]) => [name as string, (value as string).trim()]),
  );
}

/** The rows of `show stat` (CSV) as objects, by column name. */
export function parseStat(text: string): Record<string, string>[] {
  const [header = "", ...rows] = text.trim().split("\n");
  const columns = header.replace(/^# /, "").split(",");
  return rows.map((row) => Object.fromEntries(row.split(",").map((cell, i) => [columns[i] ?? i, cell])));
}
