/**
 * The app on the embedded store, spoken to directly over SPOP by a client that plays HAProxy:
 * the ACK contract, the client-address sources of HAProxy 2.6 and ≥ 2.8, probes, metrics and
 * the debug log of each decision.
 */

import { waitFor } from "@spoekit/harness";
import { checkRateMessage, connectClient, type SpopClient, spoeMessage } from "@spoekit/spoe-agent/testing";
import { type AckFrame, ActionType, Scope, TypedValue } from "@spoekit/spop-codec";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type AppProcess, startApp, total } from "./stack.ts";

/** The `sess` variables an ACK sets, by name, as numbers. */
function sessionVars(ack: AckFrame): Record<string, number> {
  const vars: Record<string, number> = {};
  for (const action of ack.actions) {
    if (action.type === ActionType.SET_VAR && action.scope === Scope.SESS && "value" in action.value) {
      vars[action.name] = Number(action.value.value);
    }
  }
  return vars;
}

describe("over SPOP, on the embedded store", () => {
  let app: AppProcess;
  let haproxy: SpopClient;
  // 1 request/s, bursts of 3.
  const env = { SPOA_RATE_INTERVAL: "1000000", SPOA_RATE_BURST: "3000000", LOG_LEVEL: "debug" };

  beforeAll(async () => {
    app = await startApp(env, { outputLimit: 1 << 20 });
    haproxy = await connectClient({ port: app.spopPort });
    await haproxy.hello();
  }, 30_000);

  afterAll(async () => {
    await haproxy?.disconnect().catch(() => undefined);
    await app?.stop();
  });

  it("answers the probes: started, alive, ready", async () => {
    for (const path of ["/startz", "/healthz", "/readyz"])
      expect((await app.admin(path)).status, path).toBe(200);
    expect((await app.admin("/nothing")).status).toBe(404);
  });

  it("sets ip_score, retry_after, remaining and limit in scope sess: a burst of 3, then denied", async () => {
    const acks = [];
    for (let i = 0; i < 4; i++) acks.push(sessionVars(await haproxy.notify([checkRateMessage("192.0.2.1")])));
    expect(acks).toEqual([
      { ip_score: 0, retry_after: 0, remaining: 2, limit: 3 },
      { ip_score: 0, retry_after: 0, remaining: 1, limit: 3 },
      { ip_score: 0, retry_after: 0, remaining: 0, limit: 3 },
      { ip_score: 100, retry_after: 1, remaining: 0, limit: 3 },
    ]);
  });

  it("takes the address from typed ip_fwd (HAProxy ≥ 2.8), raw Forwarded (2.6), then ip_xff, then ip_src", async () => {
    const score = async (args: Parameters<typeof checkRateMessage>[1]) =>
      sessionVars(await haproxy.notify([checkRateMessage("192.0.2.1", args)])).ip_score;
    // 192.0.2.1 is out of tokens: a request scored 0 was keyed on another source.
    expect(await score({ ipFwd: TypedValue.ipv4("192.0.2.2") })).toBe(0);
    expect(await score({ ipFwd: TypedValue.string('for="[2001:db8::1]:80", for=192.0.2.1') })).toBe(0);
    expect(await score({ ipXff: TypedValue.ipv4("192.0.2.3") })).toBe(0);
    expect(
      await score({ ipFwd: TypedValue.string("for=unknown"), ipXff: TypedValue.ipv4("192.0.2.1") }),
    ).toBe(100);
    expect(await score({ ipFwd: TypedValue.string("for=192.0.2.1") })).toBe(100);
  });

  it("answers a message without any address with a valid ACK that sets nothing, and counts it", async () => {
    const before = total(await app.metrics(), "gcra_unresolved_messages_total");
    const ack = await haproxy.notify([
      spoeMessage("check-rate", {
        ip_fwd: TypedValue.null,
        ip_xff: TypedValue.string(""),
        ip_src: TypedValue.null,
      }),
    ]);
    // noEmptyAck: HAProxy 3.1.0–3.2-dev6 would hold an empty ACK; an UNSET-VAR is harmless.
    expect(ack.actions).toEqual([{ type: ActionType.UNSET_VAR, scope: Scope.TXN, name: "noop" }]);
    expect(total(await app.metrics(), "gcra_unresolved_messages_total")).toBe(before + 1);
  });

  it("exports metrics that move: decisions, frames, connections, handler latency, process", async () => {
    const before = await app.metrics();
    for (let i = 0; i < 3; i++) await haproxy.notify([checkRateMessage(`198.51.100.${i + 1}`)]);
    const second = await connectClient({ port: app.spopPort });
    await second.hello();
    const during = await app.metrics();
    await second.disconnect();
    const after = await app.metrics();

    const moved = (name: string, labels: Record<string, string> = {}) =>
      total(after, name, labels) - total(before, name, labels);
    expect(moved("gcra_decisions_total", { outcome: "allowed", source: "store" })).toBe(3);
    expect(moved("spoa_frames_received_total", { type: "notify" })).toBe(3);
    expect(moved("spoa_frames_sent_total", { type: "ack" })).toBe(3);
    expect(moved("spoa_notify_duration_seconds_count", { outcome: "ok" })).toBe(3);
    expect(moved("spoa_connections_opened_total")).toBe(1);
    expect(total(during, "spoa_connections")).toBe(total(before, "spoa_connections") + 1);
    expect(moved("spoa_disconnects_total", { direction: "received", status: "0" })).toBe(1);
    expect(moved("spoa_connections_closed_total", { cause: "haproxy-disconnect" })).toBe(1);
    expect(total(after, "process_resident_memory_bytes")).toBeGreaterThan(10 * 2 ** 20);
    expect(total(after, "gcra_rate_limiting_draining")).toBe(0);
  });

  it("logs each decision at debug level with the stream id, the key and the outcome", async () => {
    await haproxy.notify([checkRateMessage("2001:db8:77::1")], { streamId: 4242, frameId: 1 });
    const decisions = () =>
      app
        .output()
        .split("\n")
        .filter((line) => line.startsWith("{") && line.includes('"msg":"decision"'))
        .map((line) => JSON.parse(line) as Record<string, unknown>);
    await waitFor(() => decisions().some((d) => d.stream === 4242), { what: "the decision's log line" });
    expect(decisions().find((d) => d.stream === 4242)).toMatchObject({
      key: "2001:db8:77::/64",
      outcome: "allowed",
      source: "store",
    });
    expect(
      decisions()
        .filter((d) => d.key === "192.0.2.1")
        .map((d) => d.outcome),
    ).toContain("denied");
  });
});
