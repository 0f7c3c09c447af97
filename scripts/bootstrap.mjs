#!/usr/bin/env node
// Entry point for `npm start` / `npm test` on a machine that has only Node.js and npm.
// Plain JavaScript on purpose: it runs on whatever Node the machine has (even an end-of-life
// one) and installs everything else — pnpm, the workspace (which pins Node 24 for every
// script), and on Debian/Ubuntu the real HAProxy and redis-server the tests drive.
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, rmSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const mode = process.argv[2];
const passThrough = process.argv.slice(3);
const rootManifest = JSON.parse(readFileSync(join(root, "package.json"), "utf8"));
const pnpmVersion = rootManifest.packageManager.replace(/^pnpm@/, "");

/** Tools the real-component tests start, with the Debian package that provides each. */
const systemTools = [
  { bin: "haproxy", pkg: "haproxy" },
  { bin: "redis-server", pkg: "redis-server" },
  { bin: "redis-cli", pkg: "redis-tools" },
  { bin: "openssl", pkg: "openssl" },
];

function log(message) {
  process.stderr.write(`[spoekit] ${message}\n`);
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

/** pnpm itself: the one running us, one on PATH, or a pinned copy fetched through npx. */
function pnpmCommand() {
  const execPath = process.env.npm_execpath ?? "";
  if (execPath.includes("pnpm")) return { command: process.execPath, prefix: [execPath] };
  if (hasCommand("pnpm")) return { command: "pnpm", prefix: [] };
  return { command: "npx", prefix: ["-y", `pnpm@${pnpmVersion}`] };
}

function pnpm(args) {
  const { command, prefix } = pnpmCommand();
  return run(command, [...prefix, ...args]);
}

function ensureWorkspaceInstalled() {
  const marker = join(root, "node_modules", ".modules.yaml");
  if (existsSync(marker) && !process.env.CI) return;
  log("installing the workspace (pnpm install --frozen-lockfile)");
  if (pnpm(["install", "--frozen-lockfile"]) !== 0) process.exit(1);
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

/** podman, its companions and the base and stand-in images the container tests run on. */
function ensureContainerImages() {
  runOrExit(process.execPath, [join(root, "scripts", "container-images.mjs"), "setup"]);
}

/** Runs the whole suite once (every workspace as a vitest project) and prints the totals. */
function testSuite() {
  ensureSystemTools();
  ensureContainerImages();
  ensureWorkspaceInstalled();
  // Packages are linted and published from dist, so the suite checks a fresh build.
  runOrExit(pnpmCommand().command, [
    ...pnpmCommand().prefix,
    "exec",
    "turbo",
    "run",
    "build",
    "--output-logs=errors-only",
  ]);
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

function start() {
  ensureWorkspaceInstalled();
  runOrExit(pnpmCommand().command, [
    ...pnpmCommand().prefix,
    "exec",
    "turbo",
    "run",
    "build",
    "--output-logs=errors-only",
  ]);
  process.exit(pnpm(["run", "main", ...passThrough]));
}

if (mode === "test") testSuite();
else if (mode === "start") start();
else {
  log("usage: node scripts/bootstrap.mjs start|test [args…]");
  process.exit(2);
}
