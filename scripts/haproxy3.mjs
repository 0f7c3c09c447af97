// HAProxy 3.0 for the end-to-end tests, beside the system's HAProxy 2.6: Debian trixie's `haproxy`
// and the trixie libraries it links, downloaded with debian-packages.mjs, unpacked with
// `dpkg-deb -x` under the git-ignored `.cache/haproxy-3.0`, and pointed at their own loader and
// libraries with patchelf (so the machine's libc stays as it is). Only patchelf is installed on the
// machine, from its own release, when missing. A second run finds the binary answering and
// returns at once.
//
// Plain JavaScript on purpose, like bootstrap.mjs: it runs on whatever Node the machine has.
//
//   node scripts/haproxy3.mjs   prints the path of the HAProxy 3.0 binary
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, renameSync, rmSync } from "node:fs";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { aptInstall, cacheRoot, DebianPackagesError, downloadDebianPackages } from "./debian-packages.mjs";

/** Where HAProxy 3.0 is unpacked; the binary is `usr/sbin/haproxy` in it. */
export const haproxy3Root = join(cacheRoot, "haproxy-3.0");
export const haproxy3Binary = join(haproxy3Root, "usr", "sbin", "haproxy");

/** trixie's haproxy and every library it links (directly or through another one). */
const packages = [
  "haproxy",
  "libc6",
  "libcrypt1",
  "libgcc-s1",
  "libjemalloc2",
  "liblua5.4-0",
  "libopentracing-c-wrapper0t64",
  "libopentracing1",
  "libpcre2-8-0",
  "libssl3t64",
  "libstdc++6",
  "libzstd1",
  "zlib1g",
];

function run(command, args) {
  const result = spawnSync(command, args, { encoding: "utf8" });
  if (result.error || result.status !== 0) {
    const reason = result.error?.message ?? `${result.stdout}${result.stderr}`.trim().split("\n").pop();
    throw new DebianPackagesError("EHAPROXY3", `${command} ${args[0]} failed: ${reason}`, {
      cause: result.error,
    });
  }
  return result.stdout;
}

/** The `HAProxy version …` line of `binary -v`, or undefined when it does not run. */
function versionOf(binary) {
  if (!existsSync(binary)) return undefined;
  const result = spawnSync(binary, ["-v"], { encoding: "utf8" });
  return result.status === 0 ? result.stdout.split("\n")[0] : undefined;
}

/**
 * Makes sure HAProxy 3.0 runs from {@link haproxy3Binary} and returns that path. The tree is
 * built in a temporary folder beside it and renamed into place, so an interrupted run leaves
 * nothing half-made.
 *
 * @returns {string}
 */
export function ensureHaproxy3() {
  if (versionOf(haproxy3Binary)?.startsWith("HAProxy version 3.0.")) return haproxy3Binary;
  const spawnPatchelf = spawnSync("patchelf", ["--version"], { stdio: "ignore" });
  if (spawnPatchelf.error || spawnPatchelf.status !== 0) aptInstall(["patchelf"]);
  mkdirSync(cacheRoot, { recursive: true });
  const work = mkdtempSync(join(cacheRoot, "haproxy-3.0-"));
  try {
    const root = join(work, "root");
    const debs = downloadDebianPackages({ suite: "trixie", packages, destination: join(work, "debs") });
    for (const deb of debs) run("dpkg-deb", ["-x", deb, root]);
    // The paths are those the tree has once renamed into place.
    run("patchelf", [
      "--set-interpreter",
      join(haproxy3Root, "usr", "lib64", "ld-linux-x86-64.so.2"),
      "--force-rpath",
      "--set-rpath",
      join(haproxy3Root, "usr", "lib", "x86_64-linux-gnu"),
      join(root, "usr", "sbin", "haproxy"),
    ]);
    rmSync(haproxy3Root, { recursive: true, force: true });
    renameSync(root, haproxy3Root);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
  const version = versionOf(haproxy3Binary);
  if (!version?.startsWith("HAProxy version 3.0.")) {
    throw new DebianPackagesError(
      "EHAPROXY3",
      `the unpacked ${haproxy3Binary} does not run as HAProxy 3.0 (${version ?? "it does not start"})`,
    );
  }
  return haproxy3Binary;
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  try {
    process.stdout.write(`${ensureHaproxy3()}\n`);
  } catch (error) {
    process.stderr.write(`${error instanceof Error ? error.message : String(error)}\n`);
    process.exit(1);
  }
}
