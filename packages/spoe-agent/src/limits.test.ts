import { readFileSync } from "node:fs";
import { join } from "node:path";
import {
  DisconnectStatus,
  encodeFrame,
  haproxyHelloFrame,
  notifyFrame,
  Scope,
  TypedValue,
} from "@spoekit/spop-codec";
import { pino } from "pino";
import { afterEach, describe, expect, it } from "vitest";
import { captured } from "../test/captured-frames.ts";
import {
  cleanup,
  countChannel,
  logSink,
  nextMessage,
  onCleanup,
  recordChannel,
  startAgent,
} from "../test/helpers.ts";
import { channels, createAgent, type ErrorMessage, InvalidOptionError, ResourceLimitError } from "./index.ts";
import { ANSWERED_REFUSALS_PER_SECOND } from "./refusals.ts";
import { checkRateMessage, ManualClock, openSocket, type SpopClient } from "./testing/index.ts";

afterEach(cleanup);

const tlsDir = join(import.meta.dirname, "..", "test", "tls");

/** An agent that answers every NOTIFY with `ip_score` 0, on a manual clock. */
async function scoringAgent(options: Parameters<typeof startAgent>[0] = {}) {
  const clock = new ManualClock();
  const started = await startAgent({ clock, ...options }, (agent) =>
    agent.catchAll((message) => {
      message.setVar(Scope.SESS, "ip_score", TypedValue.int32(0));
    }),
  );
  return { ...started, clock };
}

describe("maxConnections", () => {
  it("refuses a connection beyond it with AGENT-DISCONNECT status 13, and accepts again once one closes", async () => {
    const errors = recordChannel<ErrorMessage>(channels.error);
    const { ready, client } = await scoringAgent({ maxConnections: 2 });
    const first = await ready();
    await ready();
    const third = await client();
    const closed = await third.closed;
    expect(closed.disconnect).toEqual({
      status: DisconnectStatus.RESOURCE_ALLOCATION_ERROR,
      message: "the agent holds its maximum of 2 connections",
    });
    expect(errors.map((e) => [e.kind, e.error.constructor, e.status])).toEqual([
      ["limit", ResourceLimitError, 13],
    ]);
    expect((await first.notify([checkRateMessage()])).actions).toHaveLength(1);
    const gone = nextMessage(channels.connectionClose);
    await first.disconnect();
    await gone;
    const fourth = await ready();
    expect((await fourth.notify([checkRateMessage()])).actions).toHaveLength(1);
  });

  it("counts TLS handshakes in progress: a socket beyond it is closed at accept", async () => {
    const tls = {
      cert: readFileSync(join(tlsDir, "cert.pem")),
      key: readFileSync(join(tlsDir, "key.pem")),
    };
    const errors = recordChannel<ErrorMessage>(channels.error);
    const agent = createAgent({ logger: false, maxConnections: 2 });
    onCleanup(() => agent.close());
    const { port } = await agent.listen({ host: "127.0.0.1", port: 0, tls });
    // Two TCP connections that never start their TLS handshake hold both places.
    const silent = await Promise.all([0, 1].map(() => openSocket({ port: port as number })));
    for (const socket of silent) onCleanup(() => socket.destroy());
    const refused = await openSocket({ port: port as number });
    await new Promise((resolve) => refused.once("close", resolve));
    expect(errors.map((e) => [e.kind, (e.error as ResourceLimitError).code])).toEqual([
      ["limit", "SPOE_AGENT_RESOURCE_LIMIT"],
    ]);
  });

  it("answers the refusals of one second up to a number, closes the next ones at accept, and answers again the next second", async () => {
    const refusals = recordChannel<ErrorMessage>(channels.error);
    const lines = logSink();
    const { ready, client, clock } = await scoringAgent({
      maxConnections: 1,
      logger: pino({ level: "warn" }, lines),
    });
    const held = await ready();
    const ends = [];
    for (let i = 0; i < ANSWERED_REFUSALS_PER_SECOND + 5; i++) ends.push(await (await client()).closed);
    expect(ends.map((end) => end.disconnect?.status)).toEqual([
      ...Array.from(
        { length: ANSWERED_REFUSALS_PER_SECOND },
        () => DisconnectStatus.RESOURCE_ALLOCATION_ERROR,
      ),
      ...Array.from({ length: 5 }, () => undefined),
    ]);
    // Each one reported, the ones closed at accept too; one warning line for the peer.
    expect(refusals.filter((m) => m.kind === "limit")).toHaveLength(ANSWERED_REFUSALS_PER_SECOND + 5);
    expect(lines.lines.filter((r) => r.msg === "connection refused")).toHaveLength(1);
    expect((await held.notify([checkRateMessage()])).actions).toHaveLength(1);
    clock.advance(1000);
    const next = await (await client()).closed;
    expect(next.disconnect?.status).toBe(DisconnectStatus.RESOURCE_ALLOCATION_ERROR);
    // Below the cap again, a connection is accepted whatever came before.
    const gone = nextMessage(channels.connectionClose);
    await held.disconnect();
    await gone;
    expect((await (await ready()).notify([checkRateMessage()])).actions).toHaveLength(1);
  });

  it("is validated", () => {
    expect(() => createAgent({ logger: false, maxConnections: 0 })).toThrow(InvalidOptionError);
    expect(() => createAgent({ logger: false, maxFrameSize: 1000, maxBufferedBytes: 1003 })).toThrow(
      /maxBufferedBytes must be an integer in 1004\.\./,
    );
    expect(() => createAgent({ logger: false, maxTotalBufferedBytes: 1.5 })).toThrow(InvalidOptionError);
  });
});

describe("a flood of hostile connections", () => {
  it("is bounded, timed out, and never keeps the agent from answering a valid client", async () => {
    const { ready, client, agent, clock } = await scoringAgent({ maxConnections: 40, helloTimeout: 5000 });
    const opened = countChannel(channels.connectionOpen);
    const refused = countChannel<ErrorMessage>(channels.error, (m) => m.kind === "limit");
    const valid = await ready();
    const hostile: SpopClient[] = [];
    const partialHello = encodeFrame(haproxyHelloFrame({ maxFrameSize: 16380, capabilities: [] })).subarray(
      0,
      20,
    );
    for (let i = 0; i < 120; i++) {
      const peer = await client();
      if (i % 3 === 1) peer.send(partialHello); // a HELLO that never ends
      if (i % 3 === 2) peer.send(Buffer.from("GET / HTTP/1.1\r\n\r\n")); // not SPOP at all
      hostile.push(peer);
      if (i % 10 === 0) expect((await valid.notify([checkRateMessage()])).actions).toHaveLength(1);
    }
    await Promise.all([opened.reached(1), refused.reached(1)]);
    while (opened.count + refused.count < 121)
      await Promise.race([opened.reached(opened.count + 1), refused.reached(refused.count + 1)]);
    expect(agent.connections.size).toBeLessThanOrEqual(40);
    expect((await valid.notify([checkRateMessage()])).actions).toHaveLength(1);
    // The silent and the slow ones are timed out: status 2 at helloTimeout.
    clock.advance(5000);
    const ends = await Promise.all(hostile.map((peer) => peer.closed));
    const statuses = new Set(ends.map((end) => end.disconnect?.status));
    expect([...statuses].sort()).toEqual(
      [
        DisconnectStatus.TIMEOUT,
        DisconnectStatus.FRAME_TOO_BIG, // "GET " read as a length prefix
        DisconnectStatus.RESOURCE_ALLOCATION_ERROR,
        undefined, // closed at accept: the refusals beyond those answered in one second
      ].sort(),
    );
    const answered = ends.filter(
      (end) => end.disconnect?.status === DisconnectStatus.RESOURCE_ALLOCATION_ERROR,
    );
    expect(answered).toHaveLength(ANSWERED_REFUSALS_PER_SECOND);
    while (agent.connections.size > 1) await nextMessage(channels.connectionClose);
    const next = await ready();
    expect((await next.notify([checkRateMessage()])).actions).toHaveLength(1);
    expect((await valid.notify([checkRateMessage()])).actions).toHaveLength(1);
  });
});

describe("buffered bytes", () => {
  it("disconnects the connection whose partial frame takes the total beyond maxTotalBufferedBytes, only it", async () => {
    const { ready } = await scoringAgent({ maxTotalBufferedBytes: 40_000 });
    const valid = await ready();
    // Each announces a 16 380-byte frame and sends 16 000 bytes of it.
    const partial = Buffer.alloc(16_000);
    partial.writeUInt32BE(16_380, 0);
    const peers = [await ready(), await ready(), await ready()];
    for (const peer of peers) peer.send(partial);
    const first = await Promise.race(peers.map((peer, i) => peer.closed.then((end) => ({ i, end }))));
    expect(first.end.disconnect?.status).toBe(DisconnectStatus.RESOURCE_ALLOCATION_ERROR);
    expect(first.end.disconnect?.message).toMatch(/beyond maxTotalBufferedBytes \(40000\)/);
    expect((await valid.notify([checkRateMessage()])).actions).toHaveLength(1);
    // The two others are held (32 000 bytes in all) and still open.
    const others = peers.filter((_, i) => i !== first.i);
    const answered = valid.notify([checkRateMessage()]).then(() => "answered");
    expect(await Promise.race([...others.map((peer) => peer.closed.then(() => "closed")), answered])).toBe(
      "answered",
    );
  });

  it("disconnects a connection that holds more than maxBufferedBytes", async () => {
    const { ready } = await startAgent(
      { maxInFlight: 1, maxFrameSize: 1000, maxBufferedBytes: 2000 },
      (agent) => agent.catchAll(() => new Promise<void>(() => {})),
    );
    const peer = await ready({ maxFrameSize: 1000 });
    // One NOTIFY is taken (maxInFlight 1); the others, 3 KB in one write, stay buffered.
    const notify = encodeFrame(notifyFrame(1, 1, [checkRateMessage()]));
    const count = Math.ceil(3000 / notify.length);
    peer.send(Buffer.concat(Array.from({ length: count }, () => notify)));
    const closed = await peer.closed;
    expect(closed.disconnect?.status).toBe(DisconnectStatus.RESOURCE_ALLOCATION_ERROR);
    expect(closed.disconnect?.message).toMatch(/beyond maxBufferedBytes \(2000\)/);
  });
});

describe("protocol errors from peers in the log", () => {
  it("make one line without a stack per peer and window, then one with the count suppressed", async () => {
    const sink = logSink();
    const clock = new ManualClock();
    const { client } = await startAgent({ clock, logger: pino({ level: "info" }, sink) });
    const garbage = async () => {
      const peer = await client();
      peer.send(Buffer.from("GET / HTTP/1.1\r\n\r\n"));
      expect((await peer.closed).disconnect?.status).toBe(DisconnectStatus.FRAME_TOO_BIG);
    };
    for (let i = 0; i < 5; i++) await garbage();
    const warnings = () => sink.lines.filter((line) => line.level === 40);
    expect(warnings()).toHaveLength(1);
    expect(warnings()[0]).toMatchObject({
      status: 3,
      msg: expect.stringMatching(/^disconnecting: frame is too big/),
    });
    expect(JSON.stringify(warnings()[0])).not.toMatch(/stack|"err"/);
    clock.advance(10_000);
    await garbage();
    expect(warnings()).toHaveLength(2);
    expect(warnings()[1]).toMatchObject({ suppressed: 4 });
  });

  it("keep their stack at debug level", async () => {
    const sink = logSink();
    const { client } = await startAgent({ logger: pino({ level: "debug" }, sink) });
    const peer = await client();
    peer.send(captured.notify26); // a NOTIFY before the HELLO
    await peer.closed;
    const debug = sink.lines.find(
      (line) => line.level === 20 && typeof line.msg === "string" && line.msg.startsWith("disconnecting:"),
    );
    expect(debug?.err).toMatchObject({ code: "SPOE_AGENT_PROTOCOL_ERROR", stack: expect.any(String) });
  });
});
