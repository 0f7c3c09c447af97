import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type ManagedProcess, spawnManaged, waitFor } from "./process.ts";
import { haproxyBinaries, type ServerBinary } from "./versions.ts";

export interface HaproxyOptions {
  /** The HAProxy to run, one of {@link haproxyBinaries}; default the first (2.6, Debian bookworm's). */
  haproxy?: ServerBinary;
  /** haproxy.cfg text. Relative paths in it (e.g. an SPOE `config` file) resolve in `dir`. */
  config: string;
  /** Extra files written beside haproxy.cfg, by name (e.g. `{ "spoe.conf": "…" }`). */
  files?: Record<string, string>;
  /** TCP ports on 127.0.0.1 that must accept connections before HAProxy counts as started. */
  waitForPorts: number[];
  /**
   * Environment overrides for the haproxy process (HAProxy expands `"${NAME}"` in its
   * configuration); an `undefined` value removes the variable.
   */
  env?: Record<string, string | undefined>;
  readyTimeoutMs?: number;
  /**
   * Run in master-worker mode (`-W`, still in the foreground): the process is the master, and
   * `reload()` replaces its worker as an operator's reload does.
   */
  masterWorker?: boolean;
}

/** A real haproxy process running in the foreground (`-db`) for a test. */
export interface HaproxyProcess {
  /** The HAProxy release running. */
  readonly haproxy: ServerBinary;
  readonly dir: string;
  readonly process: ManagedProcess;
  /** What haproxy printed so far (its log goes to stdout when configured `log stdout`). */
  output(): string;
  /** Soft stop (SIGUSR1: HAProxy finishes its streams, 2.6 sends HAPROXY-DISCONNECT to agents). */
  softStop(): Promise<number | string>;
  /** Hard stop (SIGTERM) and removal of the working directory. */
  stop(): Promise<void>;
  /**
   * Reloads (SIGUSR2 to the master; `masterWorker` only): resolves once the master reports the
   * new worker loaded and the former one exited.
   */
  reload(timeoutMs?: number): Promise<void>;
}

export interface HaproxyCheckResult {
  valid: boolean;
  output: string;
}

function environment(overrides: Record<string, string | undefined> = {}): NodeJS.ProcessEnv {
  const env = { ...process.env };
  for (const [name, value] of Object.entries(overrides)) {
    if (value === undefined) delete env[name];
    else env[name] = value;
  }
  return env;
}

function writeConfig(config: string, files: Record<string, string> = {}): string {
  const dir = mkdtempSync(join(tmpdir(), "spoekit-haproxy-"));
  writeFileSync(join(dir, "haproxy.cfg"), config);
  for (const [name, text] of Object.entries(files)) writeFileSync(join(dir, name), text);
  return dir;
}

/**
 * Runs `haproxy -c` on a configuration (and its companion files, with `env` overrides as in
 * {@link HaproxyOptions.env}) and reports what it said; `haproxy` picks the release (default 2.6).
 */
export function checkHaproxyConfig(
  config: string,
  files: Record<string, string> = {},
  env: Record<string, string | undefined> = {},
  haproxy: ServerBinary = defaultHaproxy(),
): HaproxyCheckResult {
  const binary = haproxy.path();
  const dir = writeConfig(config, files);
  try {
    const result = spawnSync(binary, ["-c", "-f", "haproxy.cfg"], {
      cwd: dir,
      encoding: "utf8",
      env: environment(env),
    });
    return { valid: result.status === 0, output: `${result.stdout}${result.stderr}` };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function defaultHaproxy(): ServerBinary {
  const [oldest] = haproxyBinaries();
  if (!oldest) throw new Error("haproxyBinaries() names no HAProxy");
  return oldest;
}

function portAccepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ port, host: "127.0.0.1" });
    socket.once("connect", () => {
      socket.destroy();
      resolve(true);
    });
    socket.once("error", () => resolve(false));
  });
}

/** Validates the configuration with `haproxy -c`, then starts haproxy and waits for its ports. */
export async function startHaproxy(options: HaproxyOptions): Promise<HaproxyProcess> {
  const haproxy = options.haproxy ?? defaultHaproxy();
  const binary = haproxy.path();
  const check = checkHaproxyConfig(options.config, options.files, options.env, haproxy);
  if (!check.valid) throw new Error(`${haproxy.name} rejected the test configuration:\n${check.output}`);
  const dir = writeConfig(options.config, options.files);
  const proc = spawnManaged(binary, [...(options.masterWorker ? ["-W"] : []), "-db", "-f", "haproxy.cfg"], {
    cwd: dir,
    env: environment(options.env),
  });
  try {
    await waitFor(
      async () => {
        if (proc.child.exitCode !== null) throw new Error("haproxy exited");
        for (const port of options.waitForPorts) if (!(await portAccepts(port))) return false;
        return true;
      },
      {
        what: `haproxy listening on ${options.waitForPorts.join(", ")}`,
        timeoutMs: options.readyTimeoutMs ?? 10_000,
      },
      () => proc.output(),
    );
  } catch (error) {
    await proc.stop("SIGKILL");
    rmSync(dir, { recursive: true, force: true });
    throw error;
  }
  return {
    haproxy,
    dir,
    process: proc,
    output: () => proc.output(),
    softStop: () => proc.stop("SIGUSR1", 15_000),
    async reload(timeoutMs = 30_000) {
      if (!options.masterWorker) throw new Error("reload() needs HAProxy started with masterWorker");
      // What the master says from the signal on (its output is also kept, but only a tail).
      let said = "";
      const listen = (chunk: Buffer) => {
        said += chunk.toString("utf8");
      };
      proc.child.stdout?.on("data", listen);
      proc.child.stderr?.on("data", listen);
      try {
        proc.child.kill("SIGUSR2");
        await waitFor(
          () => /Loading success/.test(said) && /Former worker \(\d+\) exited/.test(said),
          { what: `${haproxy.name} reloaded`, timeoutMs },
          () => said,
        );
      } finally {
        proc.child.stdout?.off("data", listen);
        proc.child.stderr?.off("data", listen);
      }
    },
    async stop() {
      await proc.stop("SIGTERM");
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
