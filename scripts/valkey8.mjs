// Valkey 8 for the tests: `valkey-server` and `valkey-tools` 8.0 from Debian bookworm-backports,
// downloaded with debian-packages.mjs and installed as .debs with the machine's apt-get (their
// dependencies come from the machine's own release; nothing is upgraded). They install beside
// redis-server. A second run finds valkey-server 8 and returns at once.
//
// Plain JavaScript on purpose, like bootstrap.mjs: it runs on whatever Node the machine has.
//
//   node scripts/valkey8.mjs   prints valkey-server's version line
import { spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { aptInstall, cacheRoot, DebianPackagesError, downloadDebianPackages } from "./debian-packages.mjs";

const suite = "bookworm-backports";

/** `valkey-server --version` when valkey-server 8 and valkey-cli are on the PATH, else undefined. */
function installedVersion() {
  const server = spawnSync("valkey-server", ["--version"], { encoding: "utf8" });
  const cli = spawnSync("valkey-cli", ["--version"], { stdio: "ignore" });
  if (server.status !== 0 || cli.status !== 0) return undefined;
  const line = server.stdout.trim();
  return /\bv=8\./.test(line) ? line : undefined;
}

/**
 * Makes sure valkey-server 8 and valkey-cli are installed and returns valkey-server's version line.
 *
 * @returns {string}
 */
export function ensureValkey8() {
  const installed = installedVersion();
  if (installed) return installed;
  mkdirSync(cacheRoot, { recursive: true });
  const work = mkdtempSync(join(cacheRoot, "valkey-8-"));
  try {
    aptInstall(
      downloadDebianPackages({ suite, packages: ["valkey-server", "valkey-tools"], destination: work }),
    );
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
  const version = installedVersion();
  if (!version) {
    throw new DebianPackagesError(
      "EVALKEY8",
      `valkey-server 8 from ${suite} is not on the PATH after installing it`,
    );
  }
  return version;
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  try {
    process.stdout.write(`${ensureValkey8()}\n`);
  } catch (error) {
    process.stderr.write(`${error instanceof Error ? error.message : String(error)}\n`);
    process.exit(1);
  }
}
