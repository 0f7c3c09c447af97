/**
 * Real parts for the end-to-end tests: the app as a process of its own (from source, Node 24
 * strips the types), the canonical HAProxy configuration of deploy/base/haproxy (run by HAProxy
 * 2.6 or 3.0, see `haproxyBinaries`), a tiny HTTP
 * backend, and helpers to read the app's admin API and metrics. Everything on 127.0.0.1.
 */
import { createServer } from "node:http";
import { join } from "node:path";
import {
  agentEnvironment,
  canonicalHaproxy,
  freePort,
  type HaproxyProcess,
  type HttpReply,
  httpGet,
  type ManagedProcess,
  parseMetrics,
  type Sample,
  type ServerBinary,
  spawnAgent,
  startAgent,
  startHaproxy,
  total,
  waitFor,
} from "@spoekit/harness";
import { deprecatedAliases, settings } from "../src/settings.ts";

export type { HttpReply, Sample };
export { parseMetrics, total };

export const appDir = join(import.meta.dirname, "..");

/** Every variable the app reads: none is taken from the test process's environment. */
const appVariables = [...Object.keys(settings), ...Object.keys(deprecatedAliases)];

/** The environment the app gets: the test process's, without any variable the app reads, plus `env`. */
export function appEnvironment(env: Record<string, string>): NodeJS.ProcessEnv {
  return agentEnvironment(env, appVariables);
}

/** Runs `src/main.ts` with `env` (see {@link appEnvironment}). */
export function spawnApp(env: Record<string, string>, outputLimit?: number): ManagedProcess {
  return spawnAgent(appDir, appEnvironment(env), outputLimit);
}

/** An app process started for a test, with its admin API. */
export interface AppProcess {
  readonly spopPort: number;
  readonly adminPort: number;
  readonly process: ManagedProcess;
  /** GET on the admin server. */
  admin(path: string): Promise<HttpReply>;
  metrics(): Promise<Sample[]>;
  output(): string;
  /** Sends `signal` (default SIGTERM) and resolves with the exit code; SIGKILL after `graceMs`. */
  stop(signal?: NodeJS.Signals, graceMs?: number): Promise<number | string>;
}

/**
 * Starts the app on free loopback ports (`spopPort` to share one with another instance) and
 * waits for its `/startz`. Without DRAIN_DELAY in `env` it drains at once on SIGTERM (the tests
 * of the delay set it).
 */
export async function startApp(
  env: Record<string, string> = {},
  options: { spopPort?: number; outputLimit?: number } = {},
): Promise<AppProcess> {
  const {
    spopPort,
    adminPort,
    process: proc,
  } = await startAgent({
    appDir,
    appVariables,
    env: { DRAIN_DELAY: "0s", ...env },
    waitForPath: "/startz",
    ...options,
  });
  const admin = (path: string) => httpGet(adminPort, { path });
  return {
    spopPort,
    adminPort,
    process: proc,
    admin,
    metrics: async () => parseMetrics((await admin("/metrics")).body),
    output: () => proc.output(),
    stop: (signal = "SIGTERM", graceMs = 15_000) => proc.stop(signal, graceMs),
  };
}

/** A tiny HTTP backend answering `backend` to everything. */
export async function startBackend(): Promise<{ port: number; close(): Promise<void> }> {
  const server = createServer((_req, res) => res.end("backend"));
  const port = await freePort();
  await new Promise<void>((resolve) => server.listen({ host: "127.0.0.1", port }, resolve));
  return {
    port,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

/**
 * The canonical haproxy.cfg with its agent `server-template` (one DNS name, one port) replaced by
 * one `server` per port, with the template's options: for tests that run two agents on loopback.
 */
export function withAgentServers(haproxyCfg: string, ports: readonly number[]): string {
  const template = /^(\s*)server-template agent \S+ \S+( check .*)$/m.exec(haproxyCfg);
  if (!template) throw new Error("haproxy.cfg has no `server-template agent … check …` line any more");
  const [line, indent, options] = template;
  return haproxyCfg.replace(
    line,
    ports.map((port, i) => `${indent}server agent${i + 1} 127.0.0.1:${port}${options}`).join("\n"),
  );
}

/**
 * The variables the canonical haproxy.cfg reads, for HAProxy on loopback: its ports, one agent
 * port (an IP address, so no DNS query), the backend, `threads` threads, the SPOE file beside
 * haproxy.cfg, and a nameserver on loopback (nothing is asked; HAProxy needs no route to the
 * machine's resolver).
 */
export function loopbackEnvironment(
  ports: { http: number; stats: number; agent: number; backend: number },
  threads = 1,
  maxconn = 1000,
): Record<string, string> {
  return {
    HTTP_BIND: `127.0.0.1:${ports.http}`,
    STATS_BIND: `127.0.0.1:${ports.stats}`,
    AGENT_HOST: "127.0.0.1",
    AGENT_PORT: String(ports.agent),
    AGENT_SLOTS: "1",
    BACKEND_HOST: "127.0.0.1",
    BACKEND_PORT: String(ports.backend),
    SPOE_CONFIG: "spoe-rate-limit.conf",
    MAXCONN: String(maxconn),
    NBTHREAD: String(threads),
    NAMESERVER: "127.0.0.1:53",
  };
}

export interface Front {
  readonly haproxy: HaproxyProcess;
  readonly httpPort: number;
  /** GET through HAProxy on a connection of its own. */
  get(headers?: Record<string, string>, path?: string, timeoutMs?: number): Promise<HttpReply>;
  /** The status (`UP`, `DOWN`, `MAINT`, …) of each agent server, from HAProxy's stats CSV. */
  agentStates(): Promise<string[]>;
  stop(): Promise<void>;
}

/**
 * `haproxy` (one of `haproxyBinaries()`) with the canonical files, in front of agents on
 * `agentPorts` (one: the canonical file as is; more: {@link withAgentServers}) and the backend on
 * `backendPort`. Each HAProxy thread keeps SPOE connections of its own: `threads` > 1 spreads
 * them over several agents. Tests that count verdicts pass a `processingTimeout` (see
 * `CanonicalHaproxyOptions`); `masterWorker` runs HAProxy as master and worker, for `reload()`.
 */
export async function startProxy(
  haproxy: ServerBinary,
  agentPorts: readonly number[],
  backendPort: number,
  {
    threads = 1,
    processingTimeout,
    masterWorker = false,
  }: { threads?: number; processingTimeout?: string; masterWorker?: boolean } = {},
): Promise<Front> {
  const httpPort = await freePort();
  const statsPort = await freePort();
  const [agentPort] = agentPorts;
  const canonical = canonicalHaproxy(processingTimeout === undefined ? {} : { processingTimeout });
  const proxy = await startHaproxy({
    haproxy,
    config:
      agentPorts.length === 1 ? canonical.haproxyCfg : withAgentServers(canonical.haproxyCfg, agentPorts),
    files: { "spoe-rate-limit.conf": canonical.spoeConf },
    waitForPorts: [httpPort, statsPort],
    masterWorker,
    env: loopbackEnvironment(
      { http: httpPort, stats: statsPort, agent: agentPort ?? 0, backend: backendPort },
      threads,
    ),
  });
  return {
    haproxy: proxy,
    httpPort,
    get: (headers = {}, path = "/", timeoutMs = 5000) => httpGet(httpPort, { path, headers, timeoutMs }),
    async agentStates() {
      const [header = "", ...rows] = (await httpGet(statsPort, { path: "/stats;csv" })).body
        .trim()
        .split("\n");
      const columns = header.replace(/^# /, "").split(",");
      const status = columns.indexOf("status");
      return rows
        .map((row) => row.split(","))
        .filter((cells) => cells[0] === "spoe-agents" && cells[1]?.startsWith("agent"))
        .map((cells) => cells[status] ?? "");
    },
    stop: () => proxy.stop(),
  };
}

/**
 * Waits for the first verdict through `proxy` (HAProxy resolves the agent server at run time):
 * a reply whose RateLimit-Limit is `limit`, each probe from a client address of its own.
 */
export async function waitForFirstVerdict(proxy: Front, limit: string, app?: AppProcess): Promise<void> {
  let probe = 0;
  await waitFor(
    async () =>
      (await proxy.get({ "X-Forwarded-For": `198.18.0.${++probe}` })).headers["ratelimit-limit"] === limit,
    { what: "a first verdict through HAProxy" },
    () => `${proxy.haproxy.output()}\n${app?.output() ?? ""}`,
  );
}
