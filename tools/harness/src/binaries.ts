import { spawnSync } from "node:child_process";
import { join } from "node:path";

/** The command that installs each program the tests drive (every one of them run by `npm test`). */
const installHint: Record<string, string> = {
  haproxy: "Install Debian's haproxy (`npm test` does it with apt-get on Debian).",
  "redis-server": "Install Debian's redis-server (`npm test` does it with apt-get on Debian).",
  "redis-cli": "Install Debian's redis-tools (`npm test` does it with apt-get on Debian).",
  "valkey-server":
    "Run `node scripts/valkey8.mjs` (`npm test` does it): it installs valkey-server and valkey-tools 8 from Debian bookworm-backports.",
  "valkey-cli":
    "Run `node scripts/valkey8.mjs` (`npm test` does it): it installs valkey-server and valkey-tools 8 from Debian bookworm-backports.",
  openssl: "Install Debian's openssl (`npm test` does it with apt-get on Debian).",
  kubectl: "Install kubectl (https://kubernetes.io/docs/tasks/tools/).",
};

/** The repository's git-ignored cache, where scripts/haproxy3.mjs unpacks HAProxy 3.0. */
export const cacheRoot = join(import.meta.dirname, "..", "..", "..", ".cache");

/** How to get `name`, for failure messages. */
export function installHintFor(name: string): string {
  return installHint[name] ?? `Install ${name}.`;
}

/**
 * Returns the absolute path of `name`, or throws an error saying what is missing and how to
 * get it. Tests of real components call this first, so a missing server fails loudly instead of
 * letting a test pass without having run.
 */
export function requireBinary(name: string): string {
  const found = spawnSync("sh", ["-c", `command -v ${name}`], { encoding: "utf8" });
  const path = found.stdout.trim();
  if (found.status === 0 && path) return path;
  throw new Error(`${name} is not installed: this test drives a real ${name}. ${installHintFor(name)}`);
}
