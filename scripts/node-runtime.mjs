// Node.js runtimes from the npm registry, where every release is published as the package
// `node-<platform>-<arch>` (the `node` package the workspace pins installs the same one). They are
// installed once with npm into the repository's git-ignored `.cache/node/<spec>/` and reused.
//
// Plain JavaScript on purpose, like bootstrap.mjs: it runs on whatever Node the machine has.
//
//   node scripts/node-runtime.mjs <spec>     prints the path of a `node` binary matching <spec>
//   node scripts/node-runtime.mjs pinned     the version the workspace pins (pnpm-lock.yaml)
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, openSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const repositoryRoot = join(dirname(fileURLToPath(import.meta.url)), "..");
const cacheDir = join(repositoryRoot, ".cache", "node");

/** Stable `code` for every failure of this module. */
export class NodeRuntimeError extends Error {
  /**
   * @param {string} code
   * @param {string} message
   * @param {{ cause?: unknown }} [options]
   */
  constructor(code, message, options) {
    super(message, options);
    this.name = "NodeRuntimeError";
    this.code = code;
  }
}

/** The exact Node.js version the workspace's `node` devDependency resolves to, from pnpm-lock.yaml. */
export function pinnedNodeVersion() {
  const lockfile = readFileSync(join(repositoryRoot, "pnpm-lock.yaml"), "utf8");
  const version = /^ {6}node:\n {8}specifier: .+\n {8}version: (\d+\.\d+\.\d+)$/m.exec(lockfile)?.[1];
  if (!version) throw new NodeRuntimeError("ENOPIN", "pnpm-lock.yaml pins no `node` devDependency");
  return version;
}

/** The npm package that holds the binary for this machine, named as the `node` package names it. */
function platformPackage() {
  if (process.platform === "win32") throw new NodeRuntimeError("EPLATFORM", "Windows is not supported");
  const prefix = process.platform === "darwin" && process.arch === "arm64" ? "node-bin" : "node";
  return `${prefix}-${process.platform}-${process.arch}`;
}

/** The version a binary reports (`24.21.0`), or undefined when it does not run. */
export function versionOf(binary) {
  const result = spawnSync(binary, ["--version"], { encoding: "utf8" });
  return result.status === 0 ? result.stdout.trim().replace(/^v/, "") : undefined;
}

/**
 * A `node` binary for `spec` (an exact version such as `24.21.0` or a major such as `22`): the
 * workspace's own when it matches, else the one cached under `.cache/node/<spec>/`, installed there
 * with npm on first use. npm's output goes to `logFile` (default: `<that folder>/install.log`).
 * @param {string} spec
 * @param {{ logFile?: string }} [options]
 * @returns {string}
 */
export function nodeRuntime(spec, options = {}) {
  const matches = (version) => version !== undefined && (version === spec || version.startsWith(`${spec}.`));
  const workspaceNode = join(repositoryRoot, "node_modules", "node", "bin", "node");
  if (existsSync(workspaceNode) && matches(versionOf(workspaceNode))) return workspaceNode;
  if (matches(process.versions.node)) return process.execPath;

  const pkg = platformPackage();
  const prefix = join(cacheDir, spec);
  const binary = join(prefix, "node_modules", pkg, "bin", "node");
  if (existsSync(binary) && matches(versionOf(binary))) return binary;
  mkdirSync(prefix, { recursive: true });
  const logFile = options.logFile ?? join(prefix, "install.log");
  const log = openSync(logFile, "a");
  const npm = spawnSync(
    "npm",
    [
      "install",
      "--prefix",
      prefix,
      "--no-save",
      "--no-package-lock",
      "--ignore-scripts",
      "--no-audit",
      "--no-fund",
      `${pkg}@${spec}`,
    ],
    { cwd: prefix, stdio: ["ignore", log, log] },
  );
  if (npm.error || npm.status !== 0 || !matches(versionOf(binary))) {
    throw new NodeRuntimeError(
      "EINSTALL",
      `could not install Node.js ${spec} (${pkg}) with npm; its output is in ${logFile}`,
      npm.error ? { cause: npm.error } : undefined,
    );
  }
  return binary;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const spec = process.argv[2];
  if (!spec) {
    process.stderr.write("usage: node scripts/node-runtime.mjs <version|major|pinned>\n");
    process.exit(2);
  }
  try {
    process.stdout.write(`${nodeRuntime(spec === "pinned" ? pinnedNodeVersion() : spec)}\n`);
  } catch (error) {
    process.stderr.write(`node-runtime: ${error instanceof Error ? error.message : String(error)}\n`);
    process.exit(1);
  }
}
