import { DisconnectStatus, FrameType, Scope, TypedValue } from "@spoekit/spop-codec";
import { pino } from "pino";
import { afterEach, describe, expect, it } from "vitest";
import { captured } from "../test/captured-frames.ts";
import { allClosed, cleanup, logSink, recordChannel, startAgent } from "../test/helpers.ts";
import {
  type ConnectionCloseMessage,
  type ConnectionMessage,
  channels,
  type DisconnectMessage,
  type ErrorMessage,
  type FrameMessage,
  type HelloMessage,
  type ListenMessage,
  type NotifyMessage,
} from "./index.ts";
import { checkRateMessage } from "./testing/index.ts";

afterEach(cleanup);

function recordAll() {
  return {
    listen: recordChannel<ListenMessage>(channels.listen),
    open: recordChannel<ConnectionMessage>(channels.connectionOpen),
    hello: recordChannel<HelloMessage>(channels.hello),
    close: recordChannel<ConnectionCloseMessage>(channels.connectionClose),
    frameIn: recordChannel<FrameMessage>(channels.frameIn),
    frameOut: recordChannel<FrameMessage>(channels.frameOut),
    notify: recordChannel<NotifyMessage>(channels.notify),
    error: recordChannel<ErrorMessage>(channels.error),
    disconnect: recordChannel<DisconnectMessage>(channels.disconnect),
  };
}

const byType = (messages: FrameMessage[]) =>
  messages.reduce<Record<number, number>>((counts, m) => {
    counts[m.type] = (counts[m.type] ?? 0) + m.count;
    return counts;
  }, {});

describe("diagnostics channels", () => {
  it("publish connections, frames by type, handler latency, disconnects and closes", async () => {
    const seen = recordAll();
    const { agent, ready, client } = await startAgent({}, (a) =>
      a.catchAll((message) => {
        message.setVar(Scope.SESS, "ip_score", TypedValue.int32(0));
      }),
    );
    expect(seen.listen).toEqual([{ agent, address: agent.addresses[0] }]);
    const haproxy = await ready();
    haproxy.socket.cork();
    const acks = [1, 2, 3].map(() => haproxy.notify([checkRateMessage()]));
    haproxy.socket.uncork();
    await Promise.all(acks);
    await haproxy.disconnect();
    const checker = await client();
    checker.send(captured.healthcheck26);
    await checker.closed;
    await allClosed(agent);
    expect(seen.close).toHaveLength(2);

    const [first, second] = seen.open.map((m) => m.connection);
    expect(seen.open.every((m) => m.agent === agent)).toBe(true);
    expect(seen.hello.map((m) => [m.connection, m.healthcheck])).toEqual([
      [first, false],
      [second, true],
    ]);
    expect(byType(seen.frameIn)).toEqual({
      [FrameType.HAPROXY_HELLO]: 2,
      [FrameType.NOTIFY]: 3,
      [FrameType.HAPROXY_DISCONNECT]: 1,
    });
    expect(byType(seen.frameOut)).toEqual({
      [FrameType.AGENT_HELLO]: 2,
      [FrameType.ACK]: 3,
      [FrameType.AGENT_DISCONNECT]: 1,
    });
    expect(seen.frameOut.find((m) => m.type === FrameType.ACK)?.count).toBe(3); // one write
    expect(seen.notify).toHaveLength(3);
    for (const notify of seen.notify) {
      expect(notify).toMatchObject({ connection: first, frameId: 1, messages: 1, outcome: "ok" });
      expect(notify.duration).toBeGreaterThanOrEqual(0);
    }
    expect(seen.disconnect.map((m) => [m.direction, m.status])).toEqual([
      ["received", 0],
      ["sent", 0],
    ]);
    expect(seen.close.map((m) => [m.connection, m.cause])).toEqual([
      [first, "haproxy-disconnect"],
      [second, "healthcheck"],
    ]);
    expect(seen.error).toEqual([]);
  });

  it("publish a protocol error with its status code, and the disconnect it caused", async () => {
    const seen = recordAll();
    const { ready } = await startAgent();
    const haproxy = await ready();
    haproxy.send(captured.hello26);
    await haproxy.closed;
    expect(seen.error.map((m) => [m.kind, m.status])).toEqual([["protocol", DisconnectStatus.INVALID_FRAME]]);
    expect(seen.disconnect.map((m) => [m.direction, m.status])).toEqual([
      ["sent", DisconnectStatus.INVALID_FRAME],
    ]);
  });
});

describe("logging", () => {
  it("logs through a child logger per connection, carrying its id and HAProxy's address", async () => {
    const sink = logSink();
    const { ready } = await startAgent({ logger: pino({ level: "debug" }, sink) });
    const haproxy = await ready();
    await haproxy.disconnect();
    const handshake = sink.lines.find((line) => line.msg === "handshake done");
    expect(handshake).toMatchObject({
      connection: 1,
      remote: expect.stringMatching(/^127\.0\.0\.1:\d+$/),
      engineId: "spoekit-test-client",
      maxFrameSize: 16380,
      capabilities: ["pipelining"],
    });
    expect(sink.lines.find((line) => line.msg === "listening")).toMatchObject({ level: 30 });
  });

  it("accepts pino options", async () => {
    const { agent } = await startAgent({ logger: { level: "warn", name: "rate-limit" } });
    expect(agent.log.level).toBe("warn");
    expect(agent.log.bindings()).toMatchObject({ name: "rate-limit" });
  });
});
