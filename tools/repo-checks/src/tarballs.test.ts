/**
 * What teams install: the three packages as `pnpm pack` makes their tarballs, installed with npm
 * into a folder outside the workspace (no `@spoekit/source` condition, no workspace links), each
 * README's example run there on Node 22 and on Node 24 — the runtimes from the npm registry's
 * `node` packages, cached under the repository's `.cache/node/`.
 */
import { spawn, spawnSync } from "node:child_process";
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePort, waitFor } from "@spoekit/harness";
import { checkRateMessage, connectClient } from "@spoekit/spoe-agent/testing";
import { Scope, setVar, TypedValue } from "@spoekit/spop-codec";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const root = join(import.meta.dirname, "..", "..", "..");
const packages = ["spop-codec", "spoe-agent", "gcra"] as const;

/** Each package's README example, as the README names it. */
const examples = {
  "spop-codec": "quick-start.ts",
  "spoe-agent": "quick-start.ts",
  gcra: "http-server.ts",
} as const;

/**
 * Runs a command to its end. At its share of the CPU: at the lowest priority, a machine whose
 * cores other processes keep busy would starve it (an `npm install` for minutes).
 */
function run(command: string, args: string[], cwd: string, env: NodeJS.ProcessEnv = {}) {
  const result = spawnSync(command, args, {
    cwd,
    encoding: "utf8",
    env: { ...process.env, ...env },
    timeout: 240_000,
  });
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

/** A `node` binary matching `spec`, from `scripts/node-runtime.mjs` (cached under `.cache/node/`). */
function nodeBinary(spec: string): string {
  const result = run(process.execPath, [join(root, "scripts", "node-runtime.mjs"), spec], root);
  expect(result.status, `Node.js ${spec}: ${result.stderr}`).toBe(0);
  return result.stdout.trim();
}

/** Outside the workspace nothing may set a condition or a preload the examples would depend on. */
const plainEnvironment: NodeJS.ProcessEnv = { NODE_OPTIONS: "", NODE_PATH: "" };

let project: string;

beforeAll(() => {
  const dir = mkdtempSync(join(tmpdir(), "spoekit-tarballs-"));
  const tarballs = join(dir, "tarballs");
  project = join(dir, "project");
  mkdirSync(tarballs);
  mkdirSync(project);
  for (const name of packages) {
    const packageDir = join(root, "packages", name);
    expect(existsSync(join(packageDir, "dist", "index.js")), `${name}: run \`pnpm build\` first`).toBe(true);
    const pack = run("pnpm", ["pack", "--pack-destination", tarballs], packageDir);
    expect(pack.status, pack.stderr).toBe(0);
    copyFileSync(join(packageDir, "examples", examples[name]), join(project, `${name}-${examples[name]}`));
  }
  writeFileSync(
    join(project, "package.json"),
    `${JSON.stringify({ name: "spoekit-consumer", private: true, type: "module" }, null, 2)}\n`,
  );
  const files = readdirSync(tarballs).map((file) => join(tarballs, file));
  expect(files).toHaveLength(packages.length);
  const install = run("npm", ["install", "--no-audit", "--no-fund", "--loglevel=error", ...files], project);
  expect(install.status, install.stderr).toBe(0);
}, 300_000);

afterAll(() => {
  if (project) rmSync(join(project, ".."), { recursive: true, force: true });
});

describe.each([
  ["22", "22"],
  ["24 (the pinned one)", "pinned"],
])("the packed packages on Node %s", (_name, spec) => {
  let node: string;
  beforeAll(() => {
    node = nodeBinary(spec);
  }, 120_000);

  it("resolve to their build (dist), not to TypeScript source", () => {
    const script = packages.map((name) => `console.log(import.meta.resolve("@spoekit/${name}"));`).join("");
    const result = run(node, ["--input-type=module", "-e", script], project, plainEnvironment);
    expect(result.status, result.stderr).toBe(0);
    const resolved = result.stdout.trim().split("\n");
    expect(resolved).toHaveLength(3);
    for (const url of resolved) expect(url).toMatch(/\/node_modules\/@spoekit\/[\w-]+\/dist\/index\.js$/);
  });

  it("run @spoekit/spop-codec's example: a NOTIFY in, its ACK out", () => {
    const result = run(node, ["spop-codec-quick-start.ts"], project, plainEnvironment);
    expect(result.status, result.stderr).toBe(0);
    expect(result.stderr).toBe("");
    expect(result.stdout).toBe(
      "check-rate for 127.0.0.1 (stream 0, frame 1)\nACK: 00000015670000000100010103010869705f73636f72650200\n",
    );
  });

  it("run @spoekit/spoe-agent's example: an agent that scores clients and stops on SIGTERM", async () => {
    const port = await freePort();
    const agent = spawn(node, ["spoe-agent-quick-start.ts"], {
      cwd: project,
      env: { ...process.env, ...plainEnvironment, SPOE_ADDR: `127.0.0.1:${port}` },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let output = "";
    agent.stdout.on("data", (chunk: Buffer) => {
      output += chunk;
    });
    agent.stderr.on("data", (chunk: Buffer) => {
      output += chunk;
    });
    const exited = new Promise<number | null>((resolve) => agent.on("exit", (code) => resolve(code)));
    try {
      await waitFor(
        () => output.includes('"msg":"listening"'),
        { what: "the example agent" },
        () => output,
      );
      const haproxy = await connectClient({ port });
      await haproxy.hello();
      const [denied, allowed] = await Promise.all([
        haproxy.notify([checkRateMessage("127.0.0.1", { ipXff: TypedValue.ipv4("203.0.113.7") })]),
        haproxy.notify([checkRateMessage("192.0.2.1")]),
      ]);
      expect(denied.actions).toEqual([setVar(Scope.SESS, "ip_score", TypedValue.int32(100))]);
      expect(allowed.actions).toEqual([setVar(Scope.SESS, "ip_score", TypedValue.int32(0))]);
      agent.kill("SIGTERM");
      expect(await exited, output).toBe(0);
      expect((await haproxy.closed).disconnect).toEqual({ status: 0, message: "normal" });
    } finally {
      if (agent.exitCode === null) agent.kill("SIGKILL");
    }
  }, 30_000);

  it("run @spoekit/gcra's example: the burst passes, the rest gets 429", () => {
    // One request per 1000 s after a burst of 5: however slowly the 40 requests arrive, no
    // refill comes in between.
    const result = run(node, ["gcra-http-server.ts"], project, {
      ...plainEnvironment,
      EXAMPLE_SELF_TEST: "1",
      PORT: "0",
      RATE: "0.001",
      BURST: "5",
      VALKEY_NODES: "",
    });
    expect(result.status, result.stderr).toBe(0);
    const [listening, report] = result.stdout.trim().split("\n");
    expect(listening).toMatch(
      /^listening on http:\/\/127\.0\.0\.1:\d+ \(in-memory store\): 5 requests at once/,
    );
    const { statuses } = JSON.parse(report ?? "{}") as { statuses: number[] };
    // In whatever order they arrive: the first 5 pass.
    expect([...statuses].sort()).toEqual([
      ...new Array<number>(5).fill(200),
      ...new Array<number>(35).fill(429),
    ]);
  }, 30_000);
});
