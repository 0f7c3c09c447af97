/**
 * deploy/compose/compose.yaml brought up with podman-compose (private store under
 * .cache/containers, see scripts/container-images.mjs): the app's image built from its
 * Containerfile, two agent replicas, and local stand-ins for the registry images — HAProxy 3.0
 * from Debian trixie's package, Valkey 8 from bookworm-backports', a tiny echo backend — named
 * through the file's image variables. Traffic goes through HAProxy's port published on
 * loopback; everything the project created is removed afterwards, also when a test fails.
 */
import { randomBytes } from "node:crypto";
import { dirname } from "node:path";
import { freePort, type HttpReply, httpGet, waitFor } from "@spoekit/harness";
import { afterAll, beforeEach, describe, expect, it } from "vitest";
import { appImage, prepareForTests, runPodman, standInImages } from "../../../scripts/container-images.mjs";
import { fromRoot } from "./paths.ts";

const file = fromRoot("deploy/compose/compose.yaml");
const project = `spoekit-test-${randomBytes(4).toString("hex")}`;
const projectLabel = `label=io.podman.compose.project=${project}`;
/** One request per minute, bursts of 10: no token comes back while the test runs. */
const burst = 10;
const client = "192.0.2.10";

let httpPort = 0;
let statsPort = 0;
let environment: Record<string, string> = {};
/** Whether `up` ran: from then on the project may own containers, volumes and networks. */
let started = false;

const compose = (...args: string[]) =>
  runPodman(["-p", project, "-f", file, ...args], {
    command: "podman-compose",
    cwd: dirname(file),
    env: environment,
    timeoutMs: 180_000,
  });

async function podman(...args: string[]): Promise<string> {
  const result = await runPodman(args);
  if (result.status !== 0)
    throw new Error(`podman ${args.join(" ")} failed (${result.status}): ${result.stderr}`);
  return result.stdout.trim();
}

/** What the project left behind: containers, pods, volumes and networks carrying its label. */
async function leftovers(): Promise<string[]> {
  const listed = await Promise.all([
    podman("ps", "--all", "--filter", projectLabel, "--format", "container {{.Names}}"),
    podman("pod", "ps", "--filter", projectLabel, "--format", "pod {{.Name}}"),
    podman("volume", "ls", "--filter", projectLabel, "--format", "volume {{.Name}}"),
    podman("network", "ls", "--filter", projectLabel, "--format", "network {{.Name}}"),
  ]);
  return listed.flatMap((text) => text.split("\n")).filter((line) => line !== "");
}

/** `down --volumes`, then whatever podman-compose 1.0 leaves (its networks), by label. */
async function tearDown(): Promise<void> {
  await compose("down", "--volumes");
  await runPodman(["rm", "--force", "--volumes", "--filter", projectLabel]);
  for (const line of await leftovers()) {
    const [kind = "", name = ""] = line.split(" ");
    await runPodman(kind === "container" ? ["rm", "--force", name] : [kind, "rm", "--force", name]);
  }
}

/** The replicas' admin ports on loopback, by container name. */
async function agentAdminPorts(): Promise<Map<string, number>> {
  const names = (
    await podman(
      "ps",
      "--filter",
      projectLabel,
      "--filter",
      "label=com.docker.compose.service=gcra-rate-limiting",
      "--format",
      "{{.Names}}",
    )
  ).split("\n");
  const ports = new Map<string, number>();
  for (const name of names.filter(Boolean)) {
    ports.set(name, Number((await podman("port", name, "9090/tcp")).split(":").pop()));
  }
  return ports;
}

/** HAProxy's servers of the spoe-agents backend that are UP, from its stats CSV. */
async function agentsUp(): Promise<number> {
  const stats = await httpGet(statsPort, { path: "/stats;csv" });
  return stats.body
    .split("\n")
    .filter((line) => line.startsWith("spoe-agents,agent") && line.includes(",UP,")).length;
}

/** The agent's debug log lines for `key`'s decisions, from one replica. */
async function decisions(
  container: string,
  key: string,
): Promise<{ outcome: string; source: string; remaining: number }[]> {
  const logs = await podman("logs", container);
  return logs
    .split("\n")
    .filter((line) => line.startsWith("{") && line.includes('"msg":"decision"'))
    .map((line) => JSON.parse(line) as { key: string; outcome: string; source: string; remaining: number })
    .filter((entry) => entry.key.includes(key));
}

const get = (forwardedFor: string): Promise<HttpReply> =>
  httpGet(httpPort, { headers: { "X-Forwarded-For": forwardedFor } });

/** The stack, up and scoring requests. The first run builds the base, stand-in and app images. */
async function bringUp(): Promise<void> {
  await prepareForTests();
  httpPort = await freePort();
  statsPort = await freePort();
  environment = {
    HAPROXY_IMAGE: standInImages.haproxy,
    AGENT_IMAGE: appImage,
    VALKEY_IMAGE: standInImages.valkey,
    BACKEND_IMAGE: standInImages.backend,
    VALKEY_PASSWORD: randomBytes(16).toString("hex"),
    HTTP_PUBLISH: `127.0.0.1:${httpPort}`,
    STATS_PUBLISH: `127.0.0.1:${statsPort}`,
    SPOA_RATE_INTERVAL: "60000000",
    SPOA_RATE_BURST: String(burst * 60_000_000),
    // Valkey answers in time on a busy machine too: no decision falls to the failure policy.
    VALKEY_TIMEOUT: "5s",
    LOG_LEVEL: "debug",
  };
  started = true;
  const up = await compose("up", "--detach");
  if (up.status !== 0)
    throw new Error(`podman-compose up failed (${up.status}):\n${up.stdout}\n${up.stderr}`);
  await waitFor(async () => (await agentsUp().catch(() => 0)) === 2, {
    what: "HAProxy's two agents UP (one DNS record per replica)",
    timeoutMs: 60_000,
    intervalMs: 250,
  });
  await waitFor(
    async () => (await get("192.0.2.1").catch(() => undefined))?.headers["ratelimit-limit"] === String(burst),
    {
      what: "a request through HAProxy that an agent scored",
      timeoutMs: 30_000,
      intervalMs: 100,
    },
  );
}

// Once, from beforeEach: when it fails, every test fails with its error (after a failed
// beforeAll, vitest would report the tests as skipped).
let stack: Promise<void> | undefined;
beforeEach(async () => {
  stack ??= bringUp();
  await stack;
}, 960_000);

afterAll(async () => {
  if (started) await tearDown();
}, 180_000);

describe("deploy/compose/compose.yaml on podman-compose, with stand-in images", () => {
  it("runs the stand-ins the environment named, not the registry images", async () => {
    const images = await podman("ps", "--filter", projectLabel, "--format", "{{.Image}}");
    expect(images.split("\n").sort()).toEqual(
      [standInImages.haproxy, appImage, appImage, standInImages.valkey, standInImages.backend].sort(),
    );
    const version = await podman("exec", `${project}_haproxy_1`, "haproxy", "-v");
    expect(version).toMatch(/^HAProxy version 3\.0\./);
  }, 30_000);

  it("forwards a client's requests with 200 and RateLimit headers, then answers 429 with Retry-After", async () => {
    const replies: HttpReply[] = [];
    for (let i = 0; i < 3 * burst && replies.at(-1)?.status !== 429; i++) replies.push(await get(client));
    const denied = replies.at(-1);
    expect(denied?.status).toBe(429);
    const retryAfter = Number(denied?.headers["retry-after"]);
    expect(retryAfter).toBeGreaterThanOrEqual(1);
    expect(retryAfter).toBeLessThanOrEqual(60);
    const allowed = replies.slice(0, -1);
    expect(allowed.length).toBeGreaterThanOrEqual(burst);
    expect(allowed.every((reply) => reply.status === 200)).toBe(true);
    expect(allowed[0]?.body).toMatch(/^GET \/ HTTP\/1\.1\n/);
    // The answers an agent scored in time count down without repeating a value.
    const remaining = allowed
      .filter((reply) => reply.headers["ratelimit-limit"] === String(burst))
      .map((reply) => Number(reply.headers["ratelimit-remaining"]));
    // (A request the agent answered after HAProxy's `timeout processing` passes without them, its token spent.)
    expect(remaining.length).toBeGreaterThan(0);
    expect(remaining).toEqual([...new Set(remaining)].sort((a, b) => b - a));
    expect(remaining.every((value) => value >= 0 && value < burst)).toBe(true);
  }, 60_000);

  // Reads the agents' decisions on the previous test's requests (the tests run in order).
  it("shares the client's limit between the two agent replicas through Valkey", async () => {
    const replicas = [...(await agentAdminPorts()).keys()];
    expect(replicas).toHaveLength(2);
    const byReplica = await Promise.all(replicas.map((name) => decisions(name, client)));
    // Both replicas decided for this client, each on the shared store.
    for (const entries of byReplica) expect(entries.length).toBeGreaterThan(0);
    const all = byReplica.flat();
    expect(new Set(all.map((entry) => entry.source))).toEqual(new Set(["store"]));
    // Between them, exactly one burst allowed, each remaining count once: one counter.
    const allowed = all.filter((entry) => entry.outcome === "allowed").map((entry) => entry.remaining);
    expect(allowed.sort((a, b) => b - a)).toEqual(Array.from({ length: burst }, (_, i) => burst - 1 - i));
    expect(all.some((entry) => entry.outcome === "denied")).toBe(true);
  }, 30_000);

  it("serves each replica's probes on its own loopback port", async () => {
    const ports = await agentAdminPorts();
    for (const [name, port] of ports) {
      for (const path of ["/startz", "/healthz", "/readyz", "/metrics"]) {
        expect((await httpGet(port, { path })).status, `${name} ${path}`).toBe(200);
      }
    }
  }, 30_000);

  it("tears down every container, pod, volume and network of the project", async () => {
    expect((await leftovers()).length).toBeGreaterThan(0);
    await tearDown();
    expect(await leftovers()).toEqual([]);
  }, 180_000);
});
