import { readFileSync } from "node:fs";
import { join } from "node:path";

const repoRoot = join(import.meta.dirname, "..", "..", "..");

/** The canonical HAProxy files, as kept in `deploy/base/haproxy`. */
export interface CanonicalHaproxy {
  /** `haproxy.cfg`: every deployment runs it, reading its addresses from the environment. */
  readonly haproxyCfg: string;
  /** `spoe-rate-limit.conf`: the SPOE agent and message `haproxy.cfg` names in `SPOE_CONFIG`. */
  readonly spoeConf: string;
}

/** Changes a test makes to the canonical files. */
export interface CanonicalHaproxyOptions {
  /**
   * The SPOE `timeout processing` instead of the file's (e.g. `"5s"`), for tests that count
   * verdicts: with every core busy, an answer later than the file's few milliseconds lets a
   * request pass unchecked, which is the configuration working, not what such a test counts.
   */
  readonly processingTimeout?: string;
}

/**
 * Reads the HAProxy configuration every deployment runs (Kubernetes, compose, systemd) from
 * `deploy/base/haproxy`: the one loader for the tests that start HAProxy with it or check it.
 */
export function canonicalHaproxy(options: CanonicalHaproxyOptions = {}): CanonicalHaproxy {
  const dir = join(repoRoot, "deploy", "base", "haproxy");
  const spoeConf = readFileSync(join(dir, "spoe-rate-limit.conf"), "utf8");
  return {
    haproxyCfg: readFileSync(join(dir, "haproxy.cfg"), "utf8"),
    spoeConf:
      options.processingTimeout === undefined
        ? spoeConf
        : withProcessingTimeout(spoeConf, options.processingTimeout),
  };
}

/**
 * `spoeConf` (an SPOE file such as `spoe-rate-limit.conf`, canonical or rendered by a
 * deployment) with its `timeout processing` set to `timeout`: see
 * {@link CanonicalHaproxyOptions.processingTimeout}.
 */
export function withProcessingTimeout(spoeConf: string, timeout: string): string {
  const line = /^(\s*timeout processing )\S+/m;
  if (!line.test(spoeConf)) throw new Error("the SPOE file has no `timeout processing` line to change");
  return spoeConf.replace(line, `$1${timeout}`);
}
