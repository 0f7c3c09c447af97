/**
 * Valkey unreachable when the agent starts, on a real valkey-server started late on the port
 * the agent was given: under policy `closed` `/readyz` stays 503 until Valkey answers; under
 * `open` the agent is ready and says, in one warning line naming the address, that it allows
 * unchecked meanwhile. And the start-up warning of a deadline that contradicts HAProxy's
 * processing timeout.
 */
import { freePort, type RedisServer, startRedis, waitFor } from "@spoekit/harness";
import { checkRateMessage, connectClient, type SpopClient } from "@spoekit/spoe-agent/testing";
import { ActionType, Scope } from "@spoekit/spop-codec";
import { afterEach, describe, expect, it } from "vitest";
import { type AppProcess, startApp, total } from "./stack.ts";

/** The `ip_score` an ACK sets, or undefined. */
async function score(client: SpopClient, ip: string): Promise<number | undefined> {
  const ack = await client.notify([checkRateMessage(ip)]);
  for (const action of ack.actions) {
    if (
      action.type === ActionType.SET_VAR &&
      action.scope === Scope.SESS &&
      action.name === "ip_score" &&
      "value" in action.value
    )
      return Number(action.value.value);
  }
  return undefined;
}

/** Waits for the start-up line about the store (the admin API may answer before it is read). */
async function startLine(app: AppProcess): Promise<Record<string, unknown>[]> {
  await waitFor(
    () => logLines(app.output(), "does not answer").length > 0,
    { what: "the warning about Valkey" },
    () => app.output(),
  );
  return logLines(app.output(), "does not answer");
}

/** The JSON log lines of `output` whose `msg` contains `text`. */
function logLines(output: string, text: string): Record<string, unknown>[] {
  return output
    .split("\n")
    .filter((line) => line.startsWith("{"))
    .map((line) => JSON.parse(line) as Record<string, unknown>)
    .filter((line) => String(line.msg).includes(text));
}

describe("Valkey unreachable at start", () => {
  let app: AppProcess | undefined;
  let redis: RedisServer | undefined;
  let client: SpopClient | undefined;

  afterEach(async () => {
    await client?.reset().catch(() => undefined);
    await app?.stop("SIGKILL");
    await redis?.stop();
    app = undefined;
    redis = undefined;
    client = undefined;
  });

  it("keeps /readyz 503 under policy closed, denying, until a late Valkey answers; then decides on it", async () => {
    const port = await freePort();
    const address = `redis://127.0.0.1:${port}`;
    app = await startApp({
      VALKEY_NODES: address,
      VALKEY_MODE: "standalone",
      SPOA_FAILURE_POLICY: "closed",
      // One process here; the open case below runs a primary with its workers (2 CPUs).
      SPOA_WORKERS: "1",
      // Readiness is what is tested, not the deadline: once up, Valkey answers within its 1.8 s
      // deadline on a busy machine too; while it is down, a call may wait that long.
      HAPROXY_PROCESSING_TIMEOUT: "3s",
    });
    const readyz = await app.admin("/readyz");
    expect(readyz.status).toBe(503);
    expect(readyz.body).toContain("store unusable");
    const warnings = await startLine(app);
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatchObject({
      level: 40,
      nodes: address,
      policy: "closed",
      msg: `Valkey at ${address} does not answer: /readyz answers 503 and every request is denied (SPOA_FAILURE_POLICY=closed) until it does`,
    });
    client = await connectClient({ port: app.spopPort, timeoutMs: 15_000 });
    await client.hello();
    expect(await score(client, "192.0.2.60")).toBe(100);
    expect((await app.admin("/readyz")).status).toBe(503);

    redis = await startRedis({ port });
    await waitFor(
      async () => (await app?.admin("/readyz"))?.status === 200,
      { what: "/readyz 200 once Valkey answers", timeoutMs: 30_000 },
      () => app?.output() ?? "",
    );
    expect(await score(client, "192.0.2.60")).toBe(0);
    const metrics = await app.metrics();
    expect(total(metrics, "gcra_decisions_total", { source: "closed", outcome: "denied" })).toBe(1);
    expect(total(metrics, "gcra_decisions_total", { source: "store", outcome: "allowed" })).toBe(1);
  });

  it("is ready under policy open and names the address it cannot reach, in one line", async () => {
    const port = await freePort();
    const address = `redis://127.0.0.1:${port}`;
    app = await startApp({
      VALKEY_NODES: address,
      VALKEY_MODE: "standalone",
      SPOA_FAILURE_POLICY: "open",
      SPOA_WORKERS: "2",
      // As above: the agent's backstop answers no verdict on a busy machine otherwise.
      HAPROXY_PROCESSING_TIMEOUT: "3s",
    });
    expect((await app.admin("/readyz")).status).toBe(200);
    const warnings = await startLine(app);
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatchObject({
      level: 40,
      nodes: address,
      policy: "open",
      msg: `Valkey at ${address} does not answer: every request is allowed unchecked (SPOA_FAILURE_POLICY=open) until it does`,
    });
    client = await connectClient({ port: app.spopPort, timeoutMs: 15_000 });
    await client.hello();
    expect(await score(client, "192.0.2.61")).toBe(0);
    // Summed over the workers: whichever took the connection decided.
    expect(total(await app.metrics(), "gcra_decisions_total", { source: "open" })).toBe(1);
    // A deadline within the processing timeout's margin: no deadline warning.
    expect(logLines(app.output(), "leaves less than")).toEqual([]);
  });
});

describe("the deadline and HAProxy's processing timeout at start", () => {
  it("warns once when VALKEY_TIMEOUT leaves HAProxy too little time, and shows where the deadline comes from", async () => {
    const port = await freePort();
    const contradicting = await startApp({
      VALKEY_NODES: `redis://127.0.0.1:${port}`,
      VALKEY_MODE: "standalone",
      VALKEY_TIMEOUT: "10ms",
      HAPROXY_PROCESSING_TIMEOUT: "15ms",
    });
    const derived = await startApp({
      VALKEY_NODES: `redis://127.0.0.1:${port}`,
      VALKEY_MODE: "standalone",
      HAPROXY_PROCESSING_TIMEOUT: "250ms",
    });
    try {
      expect(logLines(contradicting.output(), "leaves less than")).toEqual([
        expect.objectContaining({
          level: 40,
          valkeyTimeoutMs: 10,
          processingTimeoutMs: 15,
          msg: "VALKEY_TIMEOUT (10 ms) leaves less than 10 ms of HAPROXY_PROCESSING_TIMEOUT (15 ms) to answer: a late Valkey call lets the request pass unchecked",
        }),
      ]);
      expect(contradicting.output()).toMatch(/^ {2}VALKEY_TIMEOUT +: 10ms$/m);
      expect(logLines(derived.output(), "leaves less than")).toEqual([]);
      expect(derived.output()).toMatch(/^ {2}HAPROXY_PROCESSING_TIMEOUT +: 250ms$/m);
      expect(derived.output()).toMatch(
        /^ {2}VALKEY_TIMEOUT +: 150ms \(60 % of HAPROXY_PROCESSING_TIMEOUT\)$/m,
      );
    } finally {
      await contradicting.stop("SIGKILL");
      await derived.stop("SIGKILL");
    }
  });
});
