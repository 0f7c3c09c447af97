/**
 * The first five minutes, as a newcomer lives them: a fresh clone, `npm start` in a terminal
 * whose only tools are the machine's Node.js and npm, the agent ready and answering SPOP,
 * Ctrl-C — and nothing on the screen but the agent's own words, and exit status 0.
 */
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePort, httpGet, waitFor } from "@spoekit/harness";
import { checkRateMessage, connectClient } from "@spoekit/spoe-agent/testing";
import { ActionType } from "@spoekit/spop-codec";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const root = join(import.meta.dirname, "..", "..", "..");

/**
 * A terminal's environment: the test's, without what pnpm, npm and vitest add (their variables,
 * the workspace's `node_modules/.bin` on PATH, which holds the pinned Node), without `CI` (with
 * it set, every `npm start` installs the workspace again and says so) and without the agent's
 * settings, plus `env`.
 */
function terminalEnvironment(env: Record<string, string>): NodeJS.ProcessEnv {
  const clean: NodeJS.ProcessEnv = {};
  for (const [name, value] of Object.entries(process.env)) {
    if (/^(npm_|pnpm_|PNPM_|VITEST|TURBO_|INIT_CWD$|NODE_OPTIONS$|NODE_PATH$|CI$)/i.test(name)) continue;
    clean[name] = value;
  }
  clean.PATH = (process.env.PATH ?? "")
    .split(":")
    .filter((dir) => !dir.includes("node_modules"))
    .join(":");
  return { ...clean, ...env };
}

interface Session {
  readonly child: ChildProcess;
  /** stdout and stderr as a terminal shows them, interleaved. */
  screen(): string;
  readonly exited: Promise<number | null>;
}

/**
 * `npm start` in `cwd` as a terminal's foreground job: a process group of its own. At the lowest
 * CPU priority: its install and build must not slow the suite's timing-sensitive tests beside it.
 */
function npmStart(cwd: string, env: Record<string, string>): Session {
  const child = spawn("nice", ["-n", "19", "npm", "start"], {
    cwd,
    env: terminalEnvironment(env),
    stdio: ["ignore", "pipe", "pipe"],
    detached: true,
  });
  let screen = "";
  child.stdout?.on("data", (chunk: Buffer) => {
    screen += chunk;
  });
  child.stderr?.on("data", (chunk: Buffer) => {
    screen += chunk;
  });
  const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)));
  return { child, screen: () => screen, exited };
}

/** Lines a newcomer must never see: package-manager errors, warnings, stack traces. */
function noiseIn(screen: string): string[] {
  return screen
    .split("\n")
    .filter((line) => /ERR_|ELIFECYCLE|WARN|^\s+at \S.*(:\d+:\d+\)?|\(native\))$|^\w*Error\b/.test(line));
}

describe("a newcomer's first `npm start`, on a fresh clone", () => {
  let clone: string;
  let spopPort: number;
  let adminPort: number;
  const running: ChildProcess[] = [];

  beforeAll(async () => {
    clone = join(mkdtempSync(join(tmpdir(), "spoekit-newcomer-")), "spoekit");
    const git = spawnSync("git", ["clone", "--quiet", root, clone], { encoding: "utf8" });
    expect(git.status, git.stderr).toBe(0);
    spopPort = await freePort();
    adminPort = await freePort();
  });

  afterAll(() => {
    for (const child of running) {
      if (child.pid !== undefined && child.exitCode === null) process.kill(-child.pid, "SIGKILL");
    }
    rmSync(join(clone, ".."), { recursive: true, force: true });
  });

  const addresses = () => ({ SPOE_ADDR: `127.0.0.1:${spopPort}`, ADMIN_ADDR: `127.0.0.1:${adminPort}` });

  it("installs, builds and starts the agent, which answers SPOP; Ctrl-C drains it and exits 0, quietly", async () => {
    const session = npmStart(clone, addresses());
    running.push(session.child);
    // The first run installs the pinned Node, the workspace and builds it.
    await waitFor(
      async () => (await httpGet(adminPort, { path: "/readyz", timeoutMs: 1000 })).status === 200,
      { timeoutMs: 280_000, intervalMs: 250, what: "/readyz after a fresh `npm start`" },
      session.screen,
    );

    const haproxy = await connectClient({ port: spopPort });
    await haproxy.hello();
    const ack = await haproxy.notify([checkRateMessage("192.0.2.7")]);
    expect(ack.actions).toContainEqual(
      expect.objectContaining({ type: ActionType.SET_VAR, name: "ip_score" }),
    );
    await haproxy.disconnect();

    // What a terminal does on Ctrl-C: SIGINT to every process of the foreground job.
    process.kill(-(session.child.pid ?? 0), "SIGINT");
    const code = await session.exited;
    const screen = session.screen();
    expect(code, screen).toBe(0);
    expect(screen).toContain(
      `listening on 127.0.0.1:${spopPort} (SPOP), admin on 127.0.0.1:${adminPort}\n  SPOE_ADDR `,
    );
    expect(screen).toContain('"signal":"SIGINT","msg":"draining"');
    expect(screen).toContain('"msg":"stopped"');
    expect(noiseIn(screen), screen).toEqual([]);
  }, 300_000);

  it("drains and exits 0 on SIGTERM to npm alone, quietly", async () => {
    const session = npmStart(clone, addresses());
    running.push(session.child);
    await waitFor(() => session.screen().includes('"msg":"started"'), { timeoutMs: 60_000 }, session.screen);
    session.child.kill("SIGTERM");
    const code = await session.exited;
    expect(code, session.screen()).toBe(0);
    expect(session.screen()).toContain('"signal":"SIGTERM","msg":"draining"');
    expect(session.screen()).toContain('"msg":"stopped"');
    expect(noiseIn(session.screen()), session.screen()).toEqual([]);
  }, 90_000);

  it("prints exactly one line and exits 2 on a bad setting", async () => {
    const session = npmStart(clone, { ...addresses(), SPOA_RATE_BURST: "5000" });
    running.push(session.child);
    const code = await session.exited;
    expect(code, session.screen()).toBe(2);
    expect(session.screen()).toBe(
      'gcra-rate-limiting: configuration error: SPOA_RATE_BURST="5000" is invalid: expected a whole number of microseconds from SPOA_RATE_INTERVAL to 2^46\n',
    );
  }, 90_000);
});
