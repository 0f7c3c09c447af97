import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { requireBinary } from "./binaries.ts";
import { freePort } from "./ports.ts";
import { type ManagedProcess, spawnManaged, waitFor } from "./process.ts";
import { type RespReply, rawCommands } from "./resp.ts";

/** A redis-server started on loopback for a test. */
export interface RedisServer {
  readonly host: string;
  readonly port: number;
  /** `redis://127.0.0.1:<port>` */
  readonly url: string;
  /** Working directory (AOF, RDB, nodes.conf), removed by `stop()`. */
  readonly dir: string;
  /** Sends one command (authenticated when the server has a password) and returns its reply. */
  command(...args: string[]): Promise<RespReply>;
  /** Kills the server (SIGKILL: a crash, not a shutdown) but keeps its directory. */
  kill(): Promise<void>;
  /** Starts the server again on the same port with the same arguments and directory. */
  restart(): Promise<void>;
  /** Stops the server and removes its directory. */
  stop(): Promise<void>;
  /** The running process (changes after `restart()`). */
  process(): ManagedProcess;
}

export interface RedisOptions {
  /** Fixed port; default: a free one (with its +10000 bus port free too when `cluster`). */
  port?: number;
  /** Extra `redis-server` arguments, e.g. `["--requirepass", "secret"]`. */
  args?: string[];
  /** Start with `cluster-enabled yes`. */
  cluster?: boolean;
  /** How long to wait for PONG. */
  readyTimeoutMs?: number;
}

/** Starts `redis-server` (Debian's, Valkey-compatible) on 127.0.0.1 and waits until it answers. */
export async function startRedis(options: RedisOptions = {}): Promise<RedisServer> {
  const binary = requireBinary("redis-server");
  const host = "127.0.0.1";
  const port = options.port ?? (await freePort({ alsoFree: options.cluster ? [10000] : [] }));
  const dir = mkdtempSync(join(tmpdir(), `spoekit-redis-${port}-`));
  const args = [
    "--port",
    String(port),
    "--bind",
    host,
    "--dir",
    dir,
    "--save",
    "",
    "--appendonly",
    "no",
    "--daemonize",
    "no",
    "--logfile",
    "",
    ...(options.cluster
      ? ["--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf", "--cluster-node-timeout", "2000"]
      : []),
    ...(options.args ?? []),
  ];
  const password = passwordFrom(options.args ?? []);
  const command = async (...commandArgs: string[]): Promise<RespReply> => {
    const replies = await rawCommands(port, password ? [["AUTH", password], commandArgs] : [commandArgs]);
    return replies[replies.length - 1] ?? null;
  };
  let current: ManagedProcess;
  const launch = async () => {
    current = spawnManaged(binary, args, { cwd: dir });
    const proc = current;
    await waitFor(
      async () => (await command("PING")) === "PONG",
      { what: `redis-server on port ${port}`, timeoutMs: options.readyTimeoutMs ?? 10_000 },
      () => proc.output(),
    );
  };
  await launch();
  return {
    host,
    port,
    url: `redis://${host}:${port}`,
    dir,
    command,
    async kill() {
      await current.stop("SIGKILL");
    },
    async restart() {
      await current.stop("SIGKILL");
      await launch();
    },
    async stop() {
      await current.stop("SIGTERM");
      rmSync(dir, { recursive: true, force: true });
    },
    process: () => current,
  };
}

function passwordFrom(args: readonly string[]): string | undefined {
  const at = args.indexOf("--requirepass");
  return at >= 0 ? args[at + 1] : undefined;
}
