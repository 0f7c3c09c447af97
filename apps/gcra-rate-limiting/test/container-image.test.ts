/**
 * The built image on real podman (private store under .cache/containers, see
 * scripts/container-images.mjs): run as an arbitrary UID with group 0, a read-only root, no
 * capabilities and no privilege escalation — as OpenShift's restricted SCC runs it — twice, with
 * two different UIDs. Each run prints the banner, answers the four probes and a real SPOP
 * exchange, and drains on `podman stop`, exiting 0 within the grace period.
 */
import { randomInt } from "node:crypto";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { httpGet, waitFor } from "@spoekit/harness";
import { checkRateMessage, connectClient } from "@spoekit/spoe-agent/testing";
import { ActionType, Scope } from "@spoekit/spop-codec";
import { afterAll, beforeEach, describe, expect, it } from "vitest";
import { appImage, prepareForTests, runPodman } from "../../../scripts/container-images.mjs";
import { appDir, parseMetrics } from "./stack.ts";

const version = (JSON.parse(readFileSync(join(appDir, "package.json"), "utf8")) as { version: string })
  .version;

/** podman with the private configuration; fails the test with podman's own message. */
async function podman(...args: string[]): Promise<string> {
  const result = await runPodman(args);
  if (result.status !== 0)
    throw new Error(`podman ${args.join(" ")} failed (${result.status}): ${result.stderr}`);
  return result.stdout.trim();
}

/** The loopback port podman published for the container's `port`. */
async function publishedPort(name: string, port: number): Promise<number> {
  return Number((await podman("port", name, `${port}/tcp`)).split("\n")[0]?.split(":").pop());
}

// The first run builds the base images and the app's image; later ones reuse them. The setup
// runs once, from beforeEach: when it fails, every test fails with its error (after a failed
// beforeAll, vitest would report the tests as skipped).
let prepared: Promise<void> | undefined;
const prepare = () => {
  prepared ??= prepareForTests();
  return prepared;
};

/** Two different UIDs from OpenShift-like ranges: nothing in the image may depend on one. */
const firstUid = randomInt(100_000, 1_000_000_000);
const uids = [firstUid, firstUid + randomInt(1, 1_000_000)];

describe.each(uids)("the image run as UID %i, group 0, read-only, no capabilities", (uid) => {
  const name = `spoekit-image-test-${uid}`;
  const graceSeconds = 20;
  let spopPort = 0;
  let adminPort = 0;

  const start = async () => {
    await prepare();
    await runPodman(["rm", "--force", name]);
    await podman(
      "run",
      "--detach",
      "--name",
      name,
      "--read-only",
      `--user=${uid}:0`,
      "--cap-drop=ALL",
      "--security-opt=no-new-privileges",
      "--publish=127.0.0.1::9000",
      "--publish=127.0.0.1::9090",
      // 1 request/min, bursts of 2: the third request in a row is denied.
      "--env=SPOA_RATE_INTERVAL=60000000",
      "--env=SPOA_RATE_BURST=120000000",
      "--env=DRAIN_TIMEOUT=5s",
      appImage,
    );
    spopPort = await publishedPort(name, 9000);
    adminPort = await publishedPort(name, 9090);
    await waitFor(
      async () => (await httpGet(adminPort, { path: "/startz" }).catch(() => undefined))?.status === 200,
      { what: "the container's /startz", timeoutMs: 30_000 },
    );
  };
  let started: Promise<void> | undefined;
  beforeEach(async () => {
    started ??= start();
    await started;
  }, 960_000);

  afterAll(async () => {
    await runPodman(["rm", "--force", name]);
  }, 30_000);

  it("runs the app as PID 1 with that UID and group 0", async () => {
    const status = await podman("exec", name, "cat", "/proc/1/status");
    expect(/^Uid:\s+(\d+)/m.exec(status)?.[1]).toBe(String(uid));
    expect(/^Gid:\s+(\d+)/m.exec(status)?.[1]).toBe("0");
    expect(/^CapEff:\s+(\w+)/m.exec(status)?.[1]).toBe("0000000000000000");
    expect(/^NoNewPrivs:\s+(\d)/m.exec(status)?.[1]).toBe("1");
    const write = await runPodman(["exec", name, "touch", "/app/written"]);
    expect(write.stderr).toMatch(/Read-only file system/);
    expect((await runPodman(["exec", name, "touch", "/tmp/written"])).status).toBe(0);
  }, 30_000);

  it("prints the banner with the effective settings", async () => {
    const logs = await podman("logs", name);
    expect(logs).toContain(
      `gcra-rate-limiting ${version} listening on 0.0.0.0:9000 (SPOP), admin on 0.0.0.0:9090`,
    );
    expect(logs).toMatch(/SPOA_RATE_BURST +: 120000000µs \(= 2 req burst\)/);
  }, 30_000);

  it("answers the four probes", async () => {
    for (const path of ["/startz", "/healthz", "/readyz"]) {
      expect((await httpGet(adminPort, { path })).status, path).toBe(200);
    }
    const metrics = await httpGet(adminPort, { path: "/metrics" });
    expect(metrics.status).toBe(200);
    expect(parseMetrics(metrics.body).map((sample) => sample.name)).toContain("spoa_frames_received_total");
  }, 30_000);

  it("answers HAProxy over SPOP, then drains on podman stop and exits 0 within the grace period", async () => {
    const haproxy = await connectClient({ port: spopPort });
    const hello = await haproxy.hello();
    expect(hello.version).toBe("2.0");
    const scores: number[] = [];
    for (let i = 0; i < 3; i++) {
      const ack = await haproxy.notify([checkRateMessage("192.0.2.7")]);
      scores.push(
        ...ack.actions.flatMap((action) =>
          action.type === ActionType.SET_VAR &&
          action.scope === Scope.SESS &&
          action.name === "ip_score" &&
          "value" in action.value
            ? [Number(action.value.value)]
            : [],
        ),
      );
    }
    expect(scores).toEqual([0, 0, 100]);

    await podman("stop", `--time=${graceSeconds}`, name);
    // The agent said goodbye on the open connection, then exited by itself: a process podman
    // had to kill at the end of the grace period exits with 137.
    expect((await haproxy.closed).disconnect?.status).toBe(0);
    expect(await podman("inspect", "--format", "{{.State.ExitCode}}", name)).toBe("0");
    const logs = await podman("logs", name);
    expect(logs).toMatch(/"signal":"SIGTERM","msg":"draining"/);
    expect(logs).toMatch(/"msg":"stopped"/);
  }, 60_000);
});
