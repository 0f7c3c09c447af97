import type { KubernetesObject, V1ConfigMap } from "@kubernetes/client-node";
import {
  canonicalHaproxy,
  checkHaproxyConfig,
  type HaproxyCheckResult,
  type ServerBinary,
} from "@spoekit/harness";
import { container, containerEnvironment, named, workload } from "./workloads.ts";

/** The canonical files, as kept in the repository. */
export const canonical = canonicalHaproxy();

/** Environment variables a configuration expands (`"${NAME}"`, `"${NAME-default}"`), with their defaults. */
export function configVariables(text: string): Map<string, string | undefined> {
  const variables = new Map<string, string | undefined>();
  for (const match of text.matchAll(/\$\{([A-Za-z_][A-Za-z0-9_]*)(?:-([^}]*))?\}/g)) {
    const [, name, fallback] = match;
    if (name) variables.set(name, fallback);
  }
  for (const match of text.matchAll(/defined\(([A-Za-z_][A-Za-z0-9_]*)\)/g)) {
    if (match[1] && !variables.has(match[1])) variables.set(match[1], undefined);
  }
  return variables;
}

/**
 * The DNS server the tests give HAProxy (`NAMESERVER`): one on loopback, so that neither
 * `haproxy -c` nor a running HAProxy needs a route to the machine's resolver (HAProxy warns when
 * it cannot open a socket to a nameserver). Nothing listens there and nothing is asked: the
 * tests name agents and backends by address.
 */
export const loopbackNameserver = "127.0.0.1:53";

/**
 * The environment overrides that give haproxy exactly `environment` for the variables
 * haproxy.cfg reads: every other variable of the configuration is unset, whatever the test
 * process has, so defaults in the file are what they would be in a pod. `NAMESERVER` is
 * {@link loopbackNameserver} unless `environment` sets it.
 */
export function haproxyEnvironment(environment: Record<string, string>): Record<string, string | undefined> {
  const names = new Set([...configVariables(canonical.haproxyCfg).keys(), ...Object.keys(environment)]);
  const wanted: Record<string, string> = { NAMESERVER: loopbackNameserver, ...environment };
  return Object.fromEntries([...names].map((name) => [name, wanted[name]]));
}

/**
 * `haproxy -c` by `haproxy` on haproxy.cfg and spoe-rate-limit.conf with `environment` (see
 * {@link haproxyEnvironment}).
 */
export function checkWithEnvironment(
  haproxy: ServerBinary,
  files: { haproxyCfg: string; spoeConf: string },
  environment: Record<string, string>,
): HaproxyCheckResult {
  return checkHaproxyConfig(
    files.haproxyCfg,
    { "spoe-rate-limit.conf": files.spoeConf },
    haproxyEnvironment(environment),
    haproxy,
  );
}

/**
 * haproxy.cfg and the SPOE file from the rendered ConfigMap the HAProxy Deployment mounts, and
 * the environment its container gets. SPOE_CONFIG points at the file beside haproxy.cfg, which
 * is where the check writes it (in the pod it is the mounted default path).
 */
export function deployedHaproxy(objects: readonly KubernetesObject[]): {
  files: { haproxyCfg: string; spoeConf: string };
  environment: Record<string, string>;
} {
  const haproxy = workload(objects, "Deployment", "haproxy");
  const volume = haproxy.pod.volumes?.find((v) => v.configMap);
  const data = named<V1ConfigMap>(objects, "ConfigMap", volume?.configMap?.name ?? "").data ?? {};
  const environment = containerEnvironment(container(haproxy.pod, "haproxy"), {
    namespace: haproxy.namespace ?? "",
  });
  return {
    files: { haproxyCfg: data["haproxy.cfg"] ?? "", spoeConf: data["spoe-rate-limit.conf"] ?? "" },
    environment: { ...environment, SPOE_CONFIG: "spoe-rate-limit.conf" },
  };
}

const haproxyTimeUnits: Record<string, number> = {
  us: 0.001,
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
  d: 86_400_000,
};

/**
 * The `timeout processing` of an SPOE configuration in milliseconds (HAProxy's time format: a
 * number with `us`, `ms`, `s`, `m`, `h` or `d`; a bare number is milliseconds).
 */
export function processingTimeoutMs(spoeConf: string): number {
  const match = /^\s*timeout processing (\d+)(us|ms|s|m|h|d)?(?:\s+#.*)?$/m.exec(spoeConf);
  if (!match) throw new Error("the SPOE configuration has no `timeout processing` line");
  return Number(match[1]) * (haproxyTimeUnits[match[2] ?? "ms"] ?? 1);
}
