import { join } from "node:path";
import { httpGet } from "./http.ts";
import { freePort } from "./ports.ts";
import { type ManagedProcess, spawnManaged, waitFor } from "./process.ts";

/**
 * The environment an agent app gets: the test process's, without any of `appVariables` (the
 * variables the app reads, so that none leaks in from the caller's shell), plus `env`.
 */
export function agentEnvironment(
  env: Record<string, string>,
  appVariables: readonly string[],
): NodeJS.ProcessEnv {
  const base = { ...process.env };
  for (const name of appVariables) delete base[name];
  return { ...base, ...env };
}

/** Runs the app in `appDir` from source (`src/main.ts`; Node strips the types) with `env` as it is. */
export function spawnAgent(appDir: string, env: NodeJS.ProcessEnv, outputLimit?: number): ManagedProcess {
  return spawnManaged(process.execPath, ["--conditions=@spoekit/source", join("src", "main.ts")], {
    cwd: appDir,
    env,
    ...(outputLimit !== undefined ? { outputLimit } : {}),
  });
}

/** What {@link startAgent} starts. */
export interface AgentStartOptions {
  /** The app's directory (`apps/gcra-rate-limiting`). */
  readonly appDir: string;
  /** The variables the app reads: none of them is taken from the test process. */
  readonly appVariables: readonly string[];
  /** The app's settings; `SPOE_ADDR` and `ADMIN_ADDR` are set to the ports chosen here. */
  readonly env?: Record<string, string>;
  /** The SPOP port (to share one with another instance); default a free one. */
  readonly spopPort?: number;
  /** The admin path that answers 200 once the app is up: `/startz` (started) or `/readyz` (ready). */
  readonly waitForPath: "/startz" | "/readyz";
  /** Keep at most this many bytes of the app's output (see `SpawnOptions`). */
  readonly outputLimit?: number;
}

/** An agent app started by {@link startAgent}, listening on loopback. */
export interface StartedAgent {
  readonly spopPort: number;
  readonly adminPort: number;
  readonly process: ManagedProcess;
}

/**
 * Starts an agent app on free loopback ports (SPOP on `SPOE_ADDR`, the admin API on
 * `ADMIN_ADDR`) and waits until its `waitForPath` answers 200; kills it if that never comes.
 */
export async function startAgent(options: AgentStartOptions): Promise<StartedAgent> {
  const spopPort = options.spopPort ?? (await freePort());
  const adminPort = await freePort();
  const env = agentEnvironment(
    { SPOE_ADDR: `127.0.0.1:${spopPort}`, ADMIN_ADDR: `127.0.0.1:${adminPort}`, ...options.env },
    options.appVariables,
  );
  const proc = spawnAgent(options.appDir, env, options.outputLimit);
  try {
    await waitFor(
      async () => (await httpGet(adminPort, { path: options.waitForPath })).status === 200,
      // A guard against hangs: with every core busy, starting Node and connecting take long.
      { what: `the agent's ${options.waitForPath}`, timeoutMs: 60_000 },
      () => proc.output(),
    );
  } catch (error) {
    await proc.stop("SIGKILL");
    throw error;
  }
  return { spopPort, adminPort, process: proc };
}
