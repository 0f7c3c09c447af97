import { settings } from "@spoekit/gcra-rate-limiting";
import {
  httpGet,
  type ManagedProcess,
  parseMetrics,
  type Sample,
  startAgent as startAgentProcess,
} from "@spoekit/harness";
import { fromRoot } from "./paths.ts";

/** GETs `/metrics` on 127.0.0.1:`port` and parses it. */
export async function scrape(port: number): Promise<Sample[]> {
  const reply = await httpGet(port, { path: "/metrics" });
  if (reply.status !== 200) throw new Error(`/metrics on port ${port} answered ${reply.status}`);
  return parseMetrics(reply.body);
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
