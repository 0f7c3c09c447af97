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

/**
 * Reads the HAProxy configuration every deployment runs (Kubernetes, compose, systemd) from
 * `deploy/base/haproxy`: the one loader for the tests that start HAProxy with it or check it.
 */
export function canonicalHaproxy(): CanonicalHaproxy {
  const dir = join(repoRoot, "deploy", "base", "haproxy");
  return {
    haproxyCfg: readFileSync(join(dir, "haproxy.cfg"), "utf8"),
    spoeConf: readFileSync(join(dir, "spoe-rate-limit.conf"), "utf8"),
  };
}
