import { settings } from "@spoekit/gcra-rate-limiting";
import { httpGet, type ManagedProcess, startAgent as startAgentProcess } from "@spoekit/harness";
import { fromRoot } from "./paths.ts";

/** One sample of the Prometheus text format: name, labels, value. */
export type Sample = [name: string, labels: Record<string, string>, value: number];

/** Parses the samples of a Prometheus text exposition (comments skipped). */
export function parseSamples(text: string): Sample[] {
  const samples: Sample[] = [];
  for (const line of text.split("\n")) {
    const match = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)/.exec(line);
    if (!match?.[1]) continue;
    const labels = Object.fromEntries(
      [...(match[2] ?? "").matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)].map((m) => [m[1], m[2]]),
    );
    samples.push([match[1], labels, Number(match[3])]);
  }
  return samples;
}

/** The sum of the samples called `metric` whose labels include `labels`. */
export function sumOf(
  samples: readonly Sample[],
  metric: string,
  labels: Record<string, string> = {},
): number {
  return samples
    .filter(([name, l]) => name === metric && Object.entries(labels).every(([k, v]) => l[k] === v))
    .reduce((total, [, , value]) => total + value, 0);
}

/** GETs `/metrics` on 127.0.0.1:`port` and parses it. */
export async function scrape(port: number): Promise<Sample[]> {
  const reply = await httpGet(port, { path: "/metrics" });
  if (reply.status !== 200) throw new Error(`/metrics on port ${port} answered ${reply.status}`);
  return parseSamples(reply.body);
}

/** The gcra-rate-limiting agent, from source, as a process of its own on loopback. */
export interface AgentProcess {
  readonly spopPort: number;
  readonly adminPort: number;
  readonly process: ManagedProcess;
  stop(): Promise<void>;
}

/**
 * Starts apps/gcra-rate-limiting with `env` (none of the test process's own agent variables)
 * on free loopback ports, and waits until it is ready (`/readyz`). Without DRAIN_DELAY in `env`
 * it drains at once on SIGTERM.
 */
export async function startAgent(env: Record<string, string>): Promise<AgentProcess> {
  const {
    spopPort,
    adminPort,
    process: proc,
  } = await startAgentProcess({
    appDir: fromRoot("apps/gcra-rate-limiting"),
    appVariables: Object.keys(settings),
    // No load balancer watches these agents: they stop at once on SIGTERM.
    env: { LOG_LEVEL: "warn", DRAIN_DELAY: "0s", ...env },
    waitForPath: "/readyz",
  });
  return {
    spopPort,
    adminPort,
    process: proc,
    stop: async () => {
      await proc.stop("SIGTERM", 15_000);
    },
  };
}
