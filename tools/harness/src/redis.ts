import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePort } from "./ports.ts";
import { type ManagedProcess, spawnManaged, waitFor } from "./process.ts";
import { type RespReply, rawCommands } from "./resp.ts";
import { createTlsMaterial, type TlsMaterial } from "./tls.ts";
import { type DataServerKind, dataServers } from "./versions.ts";

/** A valkey-server (or redis-server) started on loopback for a test. */
export interface RedisServer {
  readonly host: string;
  readonly port: number;
  /** `redis://127.0.0.1:<port>`, or `rediss://127.0.0.1:<port>` when started with `tls`. */
  readonly url: string;
  /** The CA and certificates the server was started with (`tls` option), in `dir`. */
  readonly tls: TlsMaterial | undefined;
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
  /** `valkey` (valkey-server 8, the default) or `redis` (redis-server 7, for compatibility runs). */
  server?: DataServerKind;
  /** Fixed port; default: a free one (with its +10000 bus port free too when `cluster`). */
  port?: number;
  /** Extra server arguments, e.g. `["--requirepass", "secret"]`. */
  args?: string[];
  /** Start with `cluster-enabled yes`. */
  cluster?: boolean;
  /**
   * Configuration file text, written to `redis.conf` in the server's directory and passed as
   * the first argument (the command-line arguments still apply on top of it). Sentinels need one:
   * they rewrite it with what they learn.
   */
  config?: string;
  /** Run as a Sentinel (`valkey-server redis.conf --sentinel`); needs `config` with `sentinel monitor …`. */
  sentinel?: boolean;
  /**
   * Serve TLS only (`--tls-port`, `--port 0`) with a CA and certificates made at start in the
   * server's directory (see {@link createTlsMaterial}). `requireClientCert` makes the server
   * demand a client certificate signed by that CA (`tls-auth-clients yes`); by default it asks
   * for none. Not for cluster or sentinel nodes.
   */
  tls?: boolean | { requireClientCert?: boolean };
  /** How long to wait for PONG. */
  readyTimeoutMs?: number;
}

/** Starts valkey-server 8 (or redis-server 7, `server: "redis"`) on 127.0.0.1 and waits until it answers. */
export async function startRedis(options: RedisOptions = {}): Promise<RedisServer> {
  const binary = dataServers[options.server ?? "valkey"].server.path();
  const host = "127.0.0.1";
  const port = options.port ?? (await freePort({ alsoFree: options.cluster ? [10000] : [] }));
  const dir = mkdtempSync(join(tmpdir(), `spoekit-redis-${port}-`));
  if (options.config !== undefined) writeFileSync(join(dir, "redis.conf"), options.config);
  let tls: TlsMaterial | undefined;
  if (options.tls) {
    if (options.cluster || options.sentinel) {
      rmSync(dir, { recursive: true, force: true });
      throw new RangeError("startRedis: tls is for standalone servers");
    }
    try {
      tls = createTlsMaterial(dir);
    } catch (error) {
      rmSync(dir, { recursive: true, force: true });
      throw error;
    }
  }
  const requireClientCert = typeof options.tls === "object" && options.tls.requireClientCert === true;
  const args = [
    ...(options.config !== undefined ? ["redis.conf"] : []),
    ...(options.sentinel ? ["--sentinel"] : []),
    ...(tls
      ? [
          "--port",
          "0",
          "--tls-port",
          String(port),
          "--tls-cert-file",
          tls.certFile,
          "--tls-key-file",
          tls.keyFile,
          "--tls-ca-cert-file",
          tls.caFile,
          "--tls-auth-clients",
          requireClientCert ? "yes" : "no",
        ]
      : ["--port", String(port)]),
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
  const tlsOptions = tls && {
    ca: tls.ca,
    cert: readFileSync(tls.clientCertFile),
    key: readFileSync(tls.clientKeyFile),
  };
  const command = async (...commandArgs: string[]): Promise<RespReply> => {
    const replies = await rawCommands(port, password ? [["AUTH", password], commandArgs] : [commandArgs], {
      ...(tlsOptions ? { tls: tlsOptions } : {}),
    });
    return replies[replies.length - 1] ?? null;
  };
  let current: ManagedProcess | undefined;
  const stopProcess = async (signal: NodeJS.Signals = "SIGKILL") => {
    await current?.stop(signal);
  };
  const launch = async () => {
    current = spawnManaged(binary, args, { cwd: dir });
    const proc = current;
    await waitFor(
      async () => (await command("PING")) === "PONG",
      { what: `${binary} on port ${port}`, timeoutMs: options.readyTimeoutMs ?? 10_000 },
      () => proc.output(),
    );
  };
  try {
    await launch();
  } catch (error) {
    await stopProcess();
    rmSync(dir, { recursive: true, force: true });
    throw error;
  }
  return {
    host,
    port,
    url: `${tls ? "rediss" : "redis"}://${host}:${port}`,
    dir,
    tls,
    command,
    async kill() {
      await stopProcess("SIGKILL");
    },
    async restart() {
      await stopProcess("SIGKILL");
      await launch();
    },
    async stop() {
      await stopProcess("SIGTERM");
      rmSync(dir, { recursive: true, force: true });
    },
    process: () => {
      if (!current) throw new Error(`${binary} on port ${port} was never started`);
      return current;
    },
  };
}

function passwordFrom(args: readonly string[]): string | undefined {
  const at = args.indexOf("--requirepass");
  return at >= 0 ? args[at + 1] : undefined;
}

/** Whether the server's process is running now (false after `kill()` or `stop()`). */
export function isRunning(server: RedisServer): boolean {
  try {
    const child = server.process().child;
    return child.exitCode === null && child.signalCode === null;
  } catch {
    return false;
  }
}
