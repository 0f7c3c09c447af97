import {
  type AgentHelloFrame,
  DisconnectStatus,
  encodeFrame,
  FrameType,
  HelloKey,
  haproxyHelloFrame,
  notifyFrame,
  parseAgentHello,
  TypedValue,
} from "@spoekit/spop-codec";
import { afterEach, describe, expect, it } from "vitest";
import { captured } from "../test/captured-frames.ts";
import { allClosed, cleanup, startAgent } from "../test/helpers.ts";
import { spoeMessage } from "./testing/index.ts";

afterEach(cleanup);

/** A HAPROXY-HELLO as HAProxy 2.6 sends it, without the item `drop`. */
function helloWithout(drop: string) {
  const frame = haproxyHelloFrame({ maxFrameSize: 16380, capabilities: ["pipelining", "async"] });
  return { ...frame, items: frame.items.filter((item) => item.name !== drop) };
}

describe("the HELLO handshake", () => {
  it("answers HAProxy 2.6's captured HELLO: version 2.0, its frame size, the common capabilities", async () => {
    const { client } = await startAgent({ capabilities: ["pipelining"] });
    const haproxy = await client();
    haproxy.send(captured.hello26);
    const frame = (await haproxy.nextFrame()) as AgentHelloFrame;
    expect(frame.type).toBe(FrameType.AGENT_HELLO);
    expect(frame.items.map((item) => [item.name, item.value])).toEqual([
      ["version", TypedValue.string("2.0")],
      ["max-frame-size", TypedValue.uint32(16380)],
      ["capabilities", TypedValue.string("pipelining")],
    ]);
  });

  it("answers HAProxy 3.5's captured HELLO the same way", async () => {
    const { client } = await startAgent({ capabilities: ["pipelining", "async"] });
    const haproxy = await client();
    haproxy.send(captured.hello35);
    const hello = parseAgentHello((await haproxy.nextFrame()) as AgentHelloFrame);
    // 3.x offers only pipelining: async is not announced back.
    expect(hello).toEqual({ version: "2.0", maxFrameSize: 16380, capabilities: ["pipelining"] });
  });

  it("announces min(own, HAProxy's) max-frame-size and enforces it on the next frames", async () => {
    const { client } = await startAgent({ maxFrameSize: 1000 });
    const larger = await client();
    expect((await larger.hello({ maxFrameSize: 16380 })).maxFrameSize).toBe(1000);
    const smaller = await client();
    expect((await smaller.hello({ maxFrameSize: 600 })).maxFrameSize).toBe(600);
    const notify = notifyFrame(1, 1, [spoeMessage("m", { a: TypedValue.string("x".repeat(586)) })]);
    const bytes = encodeFrame(notify, { maxFrameSize: 1000 });
    expect(bytes.length - 4).toBe(601); // one byte above what was agreed
    smaller.send(bytes);
    const { disconnect } = await smaller.closed;
    expect(disconnect?.status).toBe(DisconnectStatus.FRAME_TOO_BIG);
  });

  it("sends the capabilities item even when nothing is in common", async () => {
    const { client } = await startAgent({ capabilities: ["pipelining"] });
    const haproxy = await client();
    haproxy.send(haproxyHelloFrame({ maxFrameSize: 16380, capabilities: [] }));
    const frame = (await haproxy.nextFrame()) as AgentHelloFrame;
    expect(frame.items.find((item) => item.name === HelloKey.CAPABILITIES)?.value).toEqual(
      TypedValue.string(""),
    );
  });

  it.each([
    ["supported-versions", DisconnectStatus.VERSION_NOT_FOUND],
    ["max-frame-size", DisconnectStatus.MAX_FRAME_SIZE_NOT_FOUND],
    ["capabilities", DisconnectStatus.CAPABILITIES_NOT_FOUND],
  ])("disconnects a HELLO without %s with status %i", async (key, status) => {
    const { client } = await startAgent();
    const haproxy = await client();
    haproxy.send(helloWithout(key));
    const { disconnect, unclaimed } = await haproxy.closed;
    expect(disconnect?.status).toBe(status);
    expect(unclaimed.map((frame) => frame.type)).toEqual([FrameType.AGENT_DISCONNECT]);
  });

  it("disconnects with status 8 when HAProxy offers no 2.x version", async () => {
    const { client } = await startAgent();
    const haproxy = await client();
    haproxy.send(
      haproxyHelloFrame({ supportedVersions: ["1.0", "3.0"], maxFrameSize: 16380, capabilities: [] }),
    );
    expect((await haproxy.closed).disconnect?.status).toBe(DisconnectStatus.UNSUPPORTED_VERSION);
  });

  it("accepts any 2.x version HAProxy offers and answers 2.0", async () => {
    const { client } = await startAgent();
    const haproxy = await client();
    expect((await haproxy.hello({ supportedVersions: ["2.1"] })).version).toBe("2.0");
  });

  it("disconnects with status 9 when HAProxy's max-frame-size is below 256", async () => {
    const { client } = await startAgent();
    const haproxy = await client();
    haproxy.send(haproxyHelloFrame({ maxFrameSize: 255, capabilities: [] }));
    expect((await haproxy.closed).disconnect?.status).toBe(DisconnectStatus.BAD_FRAME_SIZE);
  });

  it.each([
    ["3.5-dev5", captured.healthcheck35],
    ["2.6.12", captured.healthcheck26],
  ])("answers %s's health-check HELLO with AGENT-HELLO, closes, and runs no handler", async (_v, bytes) => {
    let handled = 0;
    const { client, agent } = await startAgent({}, (a) =>
      a.catchAll(() => {
        handled++;
      }),
    );
    const haproxy = await client();
    haproxy.send(bytes);
    const closed = await haproxy.closed;
    expect(closed.error).toBeUndefined();
    expect(closed.disconnect).toBeUndefined();
    expect(closed.unclaimed).toHaveLength(1);
    const hello = parseAgentHello(closed.unclaimed[0] as AgentHelloFrame);
    expect(hello).toEqual({ version: "2.0", maxFrameSize: 16380, capabilities: [] });
    expect(handled).toBe(0);
    await allClosed(agent);
  });
});
