#!/usr/bin/env node
// Entry point for `npm start` / `npm test` on a machine that has only Node.js and npm.
// Plain JavaScript on purpose: it runs on whatever Node the machine has (even an end-of-life
// one) and installs everything else — pnpm, the workspace (which pins Node 24 for every
// script), and on Debian/Ubuntu the real HAProxy and redis-server the tests drive.
import { spawn, spawnSync } from "node:child_process";
import {
  appendFileSync,
  existsSync,
  mkdirSync,
  openSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { constants } from "node:os";
import { dirname, join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import { ensureHaproxy3 } from "./haproxy3.mjs";
import { nodeRuntime, pinnedNodeVersion } from "./node-runtime.mjs";
import { ensureValkey8 } from "./valkey8.mjs";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const mode = process.argv[2];
const passThrough = process.argv.slice(3);
const rootManifest = JSON.parse(readFileSync(join(root, "package.json"), "utf8"));
const pnpmVersion = rootManifest.packageManager.replace(/^pnpm@/, "");

/**
 * Tools the real-component tests and the benchmarks start, with the Debian package that provides
 * each (wrk drives HAProxy in apps/gcra-rate-limiting/bench).
 */
const systemTools = [
  { bin: "haproxy", pkg: "haproxy" },
  { bin: "redis-server", pkg: "redis-server" },
  { bin: "redis-cli", pkg: "redis-tools" },
  { bin: "openssl", pkg: "openssl" },
  { bin: "wrk", pkg: "wrk" },
];

function log(message) {
  process.stderr.write(`[spoekit] ${message}\n`);
}

/**
 * Where the set-up steps (pinned Node, pnpm install, build) write their output: they run quietly,
 * and a failing step names this file. One file per mode, rewritten on every run.
 */
const setupLog = join(root, ".cache", "bootstrap", `${mode}.log`);

/** What every set-up step runs with: no turbo telemetry notice, no update notices. */
const setupEnv = { ...process.env, TURBO_TELEMETRY_DISABLED: "1", NO_UPDATE_NOTIFIER: "1" };

function startSetupLog() {
  mkdirSync(dirname(setupLog), { recursive: true });
  writeFileSync(setupLog, "");
}

/** Runs a set-up step with its output in {@link setupLog}; when it fails, says so and exits. */
function quietStep(description, command, args, options = {}) {
  appendFileSync(setupLog, `\n$ ${command} ${args.join(" ")}\n`);
  const out = openSync(setupLog, "a");
  const result = spawnSync(command, args, {
    cwd: root,
    env: setupEnv,
    stdio: ["ignore", out, out],
    ...options,
  });
  const status = result.error ? 1 : (result.status ?? 1);
  if (status !== 0) {
    const reason = result.error ? String(result.error) : `exit code ${status}`;
    log(`${description} failed (${reason}); its output is in ${relative(process.cwd(), setupLog)}`);
    process.exit(1);
  }
}

/**
 * The Node.js the workspace pins (its `node` devDependency) — what pnpm and the app run on, whatever
 * Node runs this script. Before the first install it comes from the npm registry into `.cache/`.
 */
let pinnedNode;
function pinnedNodeBinary() {
  if (pinnedNode) return pinnedNode;
  try {
    pinnedNode = nodeRuntime(pinnedNodeVersion(), { logFile: setupLog });
  } catch (error) {
    log(error instanceof Error ? error.message : String(error));
    process.exit(1);
  }
  return pinnedNode;
}

function run(command, args, options = {}) {
  const result = spawnSync(command, args, { cwd: root, stdio: "inherit", ...options });
  if (result.error) throw result.error;
  return result.status ?? 1;
}

function runOrExit(command, args, options) {
  const status = run(command, args, options);
  if (status !== 0) {
    log(`\`${command} ${args.join(" ")}\` failed with exit code ${status}`);
    process.exit(status);
  }
}

function hasCommand(bin) {
  return spawnSync("sh", ["-c", `command -v ${bin}`], { stdio: "ignore" }).status === 0;
}

/**
 * pnpm itself — the one running us, one on PATH, or a pinned copy fetched through npx — on the
 * pinned Node: first on PATH for pnpm and every script it runs, so no engine warnings.
 */
function pnpmCommand() {
  const node = pinnedNodeBinary();
  const env = { ...setupEnv, PATH: `${dirname(node)}:${process.env.PATH ?? ""}` };
  const execPath = process.env.npm_execpath ?? "";
  if (execPath.includes("pnpm")) return { command: node, prefix: [execPath], env };
  if (hasCommand("pnpm")) return { command: "pnpm", prefix: [], env };
  return { command: "npx", prefix: ["-y", `pnpm@${pnpmVersion}`], env };
}

function pnpm(args) {
  const { command, prefix, env } = pnpmCommand();
  return run(command, [...prefix, ...args], { env });
}

/** A quiet set-up step that runs pnpm. */
function pnpmStep(description, args) {
  const { command, prefix, env } = pnpmCommand();
  quietStep(description, command, [...prefix, ...args], { env });
}

function ensureWorkspaceInstalled() {
  const marker = join(root, "node_modules", ".modules.yaml");
  if (existsSync(marker) && !process.env.CI) return;
  log(`installing the workspace (first run: about a minute; log in ${relative(process.cwd(), setupLog)})`);
  pnpmStep("installing the workspace (pnpm install --frozen-lockfile)", ["install", "--frozen-lockfile"]);
}

/** Packages are run, linted and published from dist: a fresh build (turbo, cached). */
function buildWorkspace() {
  pnpmStep("building the workspace (turbo run build)", ["exec", "turbo", "run", "build"]);
}

function ensureSystemTools() {
  const missing = systemTools.filter((tool) => !hasCommand(tool.bin));
  if (missing.length === 0) return;
  const packages = [...new Set(missing.map((tool) => tool.pkg))];
  if (!hasCommand("apt-get")) {
    log(`missing ${missing.map((t) => t.bin).join(", ")} and no apt-get: install them, then run again`);
    process.exit(1);
  }
  const sudo = process.getuid?.() === 0 ? [] : ["sudo", "-n"];
  log(`installing ${packages.join(" ")} from the distribution's packages`);
  const env = { ...process.env, DEBIAN_FRONTEND: "noninteractive" };
  const apt = (args) =>
    sudo.length
      ? run(sudo[0], [...sudo.slice(1), "apt-get", ...args], { env })
      : run("apt-get", args, { env });
  if (
    apt(["update", "-qq"]) !== 0 ||
    apt(["install", "-y", "-qq", "--no-install-recommends", ...packages]) !== 0
  ) {
    log(`could not install ${packages.join(" ")}: install them by hand, then run again`);
    process.exit(1);
  }
}

/** The servers the suite runs on beside the distribution's: Valkey 8 and HAProxy 3.0 (see their scripts). */
function ensureTestServers() {
  try {
    ensureValkey8();
    ensureHaproxy3();
  } catch (error) {
    log(`${error instanceof Error ? error.message : String(error)}: fix it, then run again`);
    process.exit(1);
  }
}

/** podman, its companions and the base and stand-in images the container tests run on. */
function ensureContainerImages() {
  runOrExit(process.execPath, [join(root, "scripts", "container-images.mjs"), "setup"]);
}

/** Runs the whole suite once (every workspace as a vitest project) and prints the totals. */
function testSuite() {
  ensureSystemTools();
  ensureTestServers();
  ensureContainerImages();
  startSetupLog();
  ensureWorkspaceInstalled();
  buildWorkspace();
  const resultsDir = join(root, "test-results");
  const resultsFile = join(resultsDir, "vitest.json");
  rmSync(resultsFile, { force: true });
  mkdirSync(resultsDir, { recursive: true });
  const status = pnpm([
    "exec",
    "vitest",
    "run",
    "--reporter=default",
    "--reporter=json",
    `--outputFile.json=${resultsFile}`,
    ...passThrough,
  ]);
  let passed = 0;
  let failed = 0;
  if (existsSync(resultsFile)) {
    const results = JSON.parse(readFileSync(resultsFile, "utf8"));
    passed = results.numPassedTests;
    failed = results.numFailedTests;
    // A file that fails to load has no failed test of its own: count it, or it would vanish.
    for (const file of results.testResults) {
      if (file.status === "failed" && file.assertionResults.every((t) => t.status !== "failed")) failed += 1;
    }
  } else {
    failed = 1;
  }
  if (status !== 0 && failed === 0) failed = 1;
  process.stdout.write(`${passed} passed, ${failed} failed\n`);
  process.exit(status === 0 && failed === 0 ? 0 : 1);
}

/**
 * The app as its package's `start` script runs it (`node <flags> dist/main.js`), on the pinned
 * Node, without a package manager in between: its output and exit status are the agent's own.
 */
function appCommand() {
  const appDir = join(root, "apps", "gcra-rate-limiting");
  const script = JSON.parse(readFileSync(join(appDir, "package.json"), "utf8")).scripts.start;
  const [program, ...args] = script.split(/\s+/);
  if (program !== "node")
    throw new Error(`apps/gcra-rate-limiting's start script does not run node: ${script}`);
  return {
    command: pinnedNodeBinary(),
    args: args.map((arg) => (arg.startsWith("-") ? arg : join(appDir, arg))),
  };
}

/** Signals that stop the agent: it drains on SIGINT and SIGTERM; a closed terminal drains too. */
const stopSignals = { SIGINT: "SIGINT", SIGTERM: "SIGTERM", SIGHUP: "SIGTERM" };

/**
 * A terminal's Ctrl-C reaches npm, the shell and this script at once, and npm forwards it again:
 * copies of one signal arriving within this window are one stop request. A signal after it is
 * forwarded too (a second Ctrl-C makes the agent exit at once).
 */
const duplicateSignalWindowMs = 500;

function start() {
  startSetupLog();
  ensureWorkspaceInstalled();
  buildWorkspace();
  const { command, args } = appCommand();
  // Its own process group: the terminal's Ctrl-C reaches the agent once, through this script.
  const agent = spawn(command, [...args, ...passThrough], {
    cwd: root,
    stdio: ["ignore", "inherit", "inherit"],
    detached: true,
  });
  let lastForwarded = Number.NEGATIVE_INFINITY;
  for (const [received, forwarded] of Object.entries(stopSignals)) {
    process.on(received, () => {
      const now = performance.now();
      if (now - lastForwarded < duplicateSignalWindowMs) return;
      lastForwarded = now;
      agent.kill(forwarded);
    });
  }
  // If this script dies first, the agent must not outlive it.
  process.on("exit", () => {
    if (agent.exitCode === null && agent.signalCode === null) agent.kill("SIGKILL");
  });
  agent.on("error", (error) => {
    log(`cannot start the agent: ${error.message}`);
    process.exit(1);
  });
  agent.on("exit", (code, signal) => {
    process.exit(code ?? 128 + (constants.signals[signal] ?? 0));
  });
}

/** What the benchmarks need beside the workspace: the system tools (wrk among them), Valkey 8 and HAProxy 3.0. */
function benchSetup() {
  ensureSystemTools();
  ensureTestServers();
}

if (mode === "test") testSuite();
else if (mode === "start") start();
else if (mode === "bench-setup") benchSetup();
else {
  log("usage: node scripts/bootstrap.mjs start|test|bench-setup [args…]");
  process.exit(2);
}
