import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { cacheRoot, installHintFor, requireBinary } from "./binaries.ts";

/** A server program a suite runs on: which release it stands for and where it is. */
export interface ServerBinary {
  /** For test titles: `HAProxy 3.0`, `Valkey 8`. */
  readonly name: string;
  /** The release it must report: `3.0`, `8`. */
  readonly version: string;
  /**
   * The absolute path of the program, after checking that it runs and reports {@link version};
   * otherwise throws an error naming it and the command that installs it (a missing part fails
   * the test, it never skips it).
   */
  path(): string;
}

const checked = new Set<string>();

/** `path` once `args` make it print a version line matching `pattern`; else an error naming `name` and `hint`. */
function verified(name: string, path: string, args: string[], pattern: RegExp, hint: string): string {
  const key = `${path} ${pattern.source}`;
  if (checked.has(key)) return path;
  const result = spawnSync(path, args, { encoding: "utf8" });
  const line = `${result.stdout ?? ""}`.split("\n")[0] ?? "";
  if (result.status !== 0 || !pattern.test(line)) {
    throw new Error(
      `${name} is not available: ${path} ${result.error ? `does not run (${result.error.message})` : `reports "${line}"`}. ${hint}`,
    );
  }
  checked.add(key);
  return path;
}

/** `program` from the PATH, which must print a version line matching `pattern` for `args`. */
export function onPath(
  name: string,
  version: string,
  program: string,
  pattern: RegExp,
  args = ["--version"],
): ServerBinary {
  return {
    name,
    version,
    path: () => verified(name, requireBinary(program), args, pattern, installHintFor(program)),
  };
}

const haproxy26 = onPath("HAProxy 2.6", "2.6", "haproxy", /^HAProxy version 2\.6\./, ["-v"]);

/** Where scripts/haproxy3.mjs unpacks Debian trixie's HAProxy 3.0. */
export const haproxy3Path = join(cacheRoot, "haproxy-3.0", "usr", "sbin", "haproxy");

const haproxy30: ServerBinary = {
  name: "HAProxy 3.0",
  version: "3.0",
  path: () => {
    const hint =
      "Run `node scripts/haproxy3.mjs` (`npm test` does it): it unpacks Debian trixie's HAProxy 3.0 under .cache/.";
    if (!existsSync(haproxy3Path)) throw new Error(`HAProxy 3.0 is not unpacked at ${haproxy3Path}. ${hint}`);
    return verified("HAProxy 3.0", haproxy3Path, ["-v"], /^HAProxy version 3\.0\./, hint);
  },
};

/**
 * The HAProxy releases every HAProxy end-to-end suite runs on, oldest first: Debian bookworm's
 * 2.6 (the `haproxy` on the PATH) and Debian trixie's 3.0 (unpacked by scripts/haproxy3.mjs).
 * The list is fixed, so a missing binary fails its suite instead of shrinking the matrix:
 * `describe.each(haproxyBinaries())("… on $name", (haproxy) => …)` and pass `haproxy` to
 * `startHaproxy` / `checkHaproxyConfig`.
 */
export function haproxyBinaries(): readonly ServerBinary[] {
  return [haproxy26, haproxy30];
}

/** The data servers: Valkey 8 (the default everywhere) and Redis 7 (kept for one compatibility run). */
export const dataServers = {
  valkey: {
    server: onPath("Valkey 8", "8", "valkey-server", /^Valkey server v=8\./),
    cli: onPath("valkey-cli 8", "8", "valkey-cli", /^valkey-cli 8\./),
  },
  redis: {
    server: onPath("Redis 7", "7", "redis-server", /^Redis server v=7\./),
    cli: onPath("redis-cli 7", "7", "redis-cli", /^redis-cli 7\./),
  },
} as const;

/** Which data server a topology runs on. */
export type DataServerKind = keyof typeof dataServers;
