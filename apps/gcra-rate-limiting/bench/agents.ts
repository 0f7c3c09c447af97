/**
 * The agents of the benchmark, each a process of its own: the app from `dist` as deployed, and
 * the bare echo agent (bench/echo-agent.ts) on the same codec. Both also from `dist`: the
 * benchmark runs them without the workspace's source condition.
 */
import { join } from "node:path";
import { freePort, type ManagedProcess, spawnManaged, waitFor } from "@spoekit/harness";
import { appDir } from "../test/stack.ts";

export interface Agent {
  readonly name: string;
  readonly process: ManagedProcess;
  readonly port: number;
  /** NOTIFYs received and ACKs sent so far, by the agent's own count. */
  counts(): Promise<{ notifies: number; acks: number }>;
  /** The app's /metrics text (memory, heap spaces); `undefined` for the echo agent. */
  metrics(): Promise<string | undefined>;
  stop(): Promise<void>;
}

/** The agents' V8 flags: BENCH_V8_FLAGS, default `--max-semi-space-size=4` as `npm start`. */
const v8Flags = (): string[] =>
  (process.env.BENCH_V8_FLAGS ?? "--max-semi-space-size=4").split(" ").filter(Boolean);

/** The app's node flags: the V8 flags and BENCH_NODE_ARGS (e.g. `--cpu-prof`). */
const nodeFlags = (): string[] => [
  ...v8Flags(),
  ...(process.env.BENCH_NODE_ARGS ?? "").split(" ").filter(Boolean),
];

const metricValue = (text: string, series: string): number =>
  Number(
    text
      .split("\n")
      .find((line) => line.startsWith(`${series} `))
      ?.split(" ")[1] ?? Number.NaN,
  );

/**
 * The app (`node <flags> dist/main.js`) with `env` on top of the benchmark's defaults; its
 * output kept up to `outputLimit` bytes (the tail; default the harness's).
 */
export async function startApp(
  name: string,
  env: Record<string, string>,
  outputLimit?: number,
): Promise<Agent> {
  const port = await freePort();
  const adminPort = await freePort();
  const child = spawnManaged(process.execPath, [...nodeFlags(), "dist/main.js"], {
    cwd: appDir,
    env: {
      ...process.env,
      SPOE_ADDR: `127.0.0.1:${port}`,
      ADMIN_ADDR: `127.0.0.1:${adminPort}`,
      LOG_LEVEL: "warn",
      ...env,
    },
    ...(outputLimit !== undefined ? { outputLimit } : {}),
  });
  await waitFor(
    async () => (await fetch(`http://127.0.0.1:${adminPort}/readyz`)).status === 200,
    { what: `the agent ${name}'s /readyz`, timeoutMs: 20_000 },
    () => child.output(),
  );
  const metrics = async () => (await fetch(`http://127.0.0.1:${adminPort}/metrics`)).text();
  return {
    name,
    process: child,
    port,
    async counts() {
      const text = await metrics();
      return {
        notifies: metricValue(text, 'spoa_frames_received_total{type="notify"}'),
        acks: metricValue(text, 'spoa_frames_sent_total{type="ack"}'),
      };
    },
    metrics,
    stop: async () => {
      await child.stop("SIGTERM", 30_000);
    },
  };
}

/** The echo agent, with ECHO_* knobs (see bench/echo-agent.ts). */
export async function startEcho(name: string, env: Record<string, string> = {}): Promise<Agent> {
  // The app's V8 flags too: the same runtime, so that the difference is the app's code.
  const child = spawnManaged(
    process.execPath,
    [...v8Flags(), join(import.meta.dirname, "echo-agent.ts"), "0"],
    {
      cwd: appDir,
      env: { ...process.env, NODE_OPTIONS: "", ...env },
    },
  );
  let port = 0;
  await waitFor(
    () => {
      port = Number(/^listening (\d+)$/m.exec(child.output())?.[1] ?? 0);
      return port > 0;
    },
    { what: `the echo agent ${name}`, timeoutMs: 10_000 },
    () => child.output(),
  );
  const lines = () =>
    child
      .output()
      .split("\n")
      .filter((line) => line.startsWith("{"));
  return {
    name,
    process: child,
    port,
    async counts() {
      const before = lines().length;
      child.child.kill("SIGUSR2");
      await waitFor(() => lines().length > before, { what: "the echo agent's counters", timeoutMs: 5000 });
      const counters = JSON.parse(lines().at(-1) ?? "{}") as { notifies: number };
      return { notifies: counters.notifies, acks: counters.notifies };
    },
    metrics: async () => undefined,
    stop: async () => {
      await child.stop("SIGTERM", 5000);
    },
  };
}
