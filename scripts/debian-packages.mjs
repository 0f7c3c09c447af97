// Downloads Debian packages from another suite (trixie, bookworm-backports, …) without touching the
// machine's own apt state: a private list directory and cache under the repository's git-ignored
// `.cache/`, the mirror taken from the machine's own apt sources. Nothing is installed here; callers
// unpack (`dpkg-deb -x`) or install the downloaded .debs themselves.
//
// Plain JavaScript on purpose, like bootstrap.mjs: it runs on whatever Node the machine has.
//
//   node scripts/debian-packages.mjs <suite> <dest-dir> <package>...   prints the .deb paths
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

export const repositoryRoot = join(dirname(fileURLToPath(import.meta.url)), "..");
/** Git-ignored folder for everything the tests download or unpack once and reuse. */
export const cacheRoot = join(repositoryRoot, ".cache");

const keyring = "/usr/share/keyrings/debian-archive-keyring.gpg";

/** Stable `code` for every failure of this module, so callers can tell them apart. */
export class DebianPackagesError extends Error {
  /**
   * @param {string} code
   * @param {string} message
   * @param {{ cause?: unknown }} [options]
   */
  constructor(code, message, options) {
    super(message, options);
    this.name = "DebianPackagesError";
    this.code = code;
  }
}

/** The release the machine runs (`bookworm`), from /etc/os-release. */
export function systemCodename() {
  const osRelease = readFileSync("/etc/os-release", "utf8");
  const codename = /^VERSION_CODENAME=(.+)$/m.exec(osRelease)?.[1]?.trim();
  if (!codename) throw new DebianPackagesError("ENOCODENAME", "/etc/os-release names no VERSION_CODENAME");
  return codename;
}

/** Every `URIs:`/`deb` entry of the machine's apt sources with the suites it serves. */
function aptSources() {
  const entries = [];
  const files = [];
  if (existsSync("/etc/apt/sources.list")) files.push("/etc/apt/sources.list");
  if (existsSync("/etc/apt/sources.list.d")) {
    for (const name of readdirSync("/etc/apt/sources.list.d")) {
      if (name.endsWith(".list") || name.endsWith(".sources"))
        files.push(join("/etc/apt/sources.list.d", name));
    }
  }
  for (const file of files) {
    const text = readFileSync(file, "utf8");
    if (file.endsWith(".sources")) {
      for (const stanza of text.split(/\n\s*\n/)) {
        const field = (name) =>
          new RegExp(`^${name}:\\s*(.+)$`, "mi").exec(stanza)?.[1]?.trim().split(/\s+/) ?? [];
        if (!field("Types").includes("deb")) continue;
        for (const uri of field("URIs")) entries.push({ uri, suites: field("Suites") });
      }
    } else {
      for (const line of text.split("\n")) {
        const match = /^\s*deb\s+(?:\[[^\]]*\]\s+)?(\S+)\s+(\S+)/.exec(line);
        if (match?.[1] && match[2]) entries.push({ uri: match[1], suites: [match[2]] });
      }
    }
  }
  return entries;
}

/**
 * The Debian mirror the machine already uses for its own release (never a hard-coded host): the
 * first source that serves the system's codename itself.
 */
export function debianMirror() {
  const codename = systemCodename();
  const source = aptSources().find((entry) => entry.suites.includes(codename));
  if (!source) {
    throw new DebianPackagesError(
      "ENOMIRROR",
      `no apt source serves ${codename}: add the Debian mirror to /etc/apt/sources.list(.d), then run again`,
    );
  }
  return source.uri.replace(/\/+$/, "");
}

function aptOptions(suite) {
  const state = join(cacheRoot, "apt", suite);
  mkdirSync(join(state, "lists", "partial"), { recursive: true });
  mkdirSync(join(state, "cache", "archives", "partial"), { recursive: true });
  const sourceList = join(state, "sources.list");
  writeFileSync(sourceList, `deb [signed-by=${keyring}] ${debianMirror()} ${suite} main\n`);
  return [
    "-q",
    "-o",
    `Dir::State::Lists=${join(state, "lists")}`,
    "-o",
    `Dir::Etc::sourcelist=${sourceList}`,
    "-o",
    "Dir::Etc::sourceparts=-",
    "-o",
    `Dir::Cache=${join(state, "cache")}`,
    "-o",
    "Dir::State::status=/dev/null",
    "-o",
    "APT::Sandbox::User=root",
  ];
}

function aptGet(args, cwd) {
  const result = spawnSync("apt-get", args, { cwd, encoding: "utf8" });
  if (result.error) {
    throw new DebianPackagesError("EAPTGET", `apt-get could not be started: ${result.error.message}`, {
      cause: result.error,
    });
  }
  if (result.status !== 0) {
    throw new DebianPackagesError(
      "EAPTGET",
      `apt-get ${args.filter((a) => !a.startsWith("-") && !a.includes("=")).join(" ")} failed: ${result.stderr.trim().split("\n").pop()}`,
    );
  }
  return result.stdout;
}

/**
 * Downloads the newest `packages` of `suite` into `destination` (created when missing) and returns
 * the .deb paths. The suite's package list is fetched into a private directory, once per call.
 *
 * @param {{ suite: string, packages: string[], destination: string }} request
 * @returns {string[]}
 */
export function downloadDebianPackages({ suite, packages, destination }) {
  const options = aptOptions(suite);
  aptGet([...options, "update"]);
  const target = resolve(destination);
  mkdirSync(target, { recursive: true });
  aptGet([...options, "download", ...packages], target);
  const debs = readdirSync(target).filter((name) => name.endsWith(".deb"));
  return packages.map((name) => {
    const deb = debs.find((file) => file.startsWith(`${name}_`));
    if (!deb) throw new DebianPackagesError("ENODEB", `${name} was not downloaded from ${suite}`);
    return join(target, deb);
  });
}

/**
 * Installs `packages` (names or paths of downloaded .debs) with the machine's apt-get, through
 * `sudo -n` unless running as root: `apt-get update`, then `apt-get install --no-install-recommends`.
 * Dependencies come from the machine's own release; nothing else is upgraded.
 *
 * @param {string[]} packages
 */
export function aptInstall(packages) {
  const sudo = process.getuid?.() === 0 ? [] : ["sudo", "-n"];
  const env = { ...process.env, DEBIAN_FRONTEND: "noninteractive" };
  for (const args of [
    ["update", "-qq"],
    ["install", "-y", "-qq", "--no-install-recommends", ...packages],
  ]) {
    const [command = "apt-get", ...rest] = [...sudo, "apt-get", ...args];
    const result = spawnSync(command, rest, { env, stdio: ["ignore", "ignore", "pipe"], encoding: "utf8" });
    if (result.error || result.status !== 0) {
      const reason = result.error?.message ?? result.stderr.trim().split("\n").pop();
      throw new DebianPackagesError(
        "EAPTINSTALL",
        `apt-get ${args[0]} failed while installing ${packages.join(" ")}: ${reason}`,
        {
          cause: result.error,
        },
      );
    }
  }
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const [suite, destination, ...packages] = process.argv.slice(2);
  if (!suite || !destination || packages.length === 0) {
    process.stderr.write("usage: node scripts/debian-packages.mjs <suite> <dest-dir> <package>...\n");
    process.exit(2);
  }
  try {
    for (const deb of downloadDebianPackages({ suite, packages, destination }))
      process.stdout.write(`${deb}\n`);
  } catch (error) {
    process.stderr.write(`${error instanceof Error ? error.message : String(error)}\n`);
    process.exit(1);
  }
}
