import {
  ackFrame,
  DEFAULT_MAX_FRAME_SIZE,
  DisconnectStatus,
  encodeFrame,
  FrameFlags,
  FrameReader,
  FrameType,
  haproxyHelloFrame,
  notifyFrame,
} from "@spoekit/spop-codec";
import fc from "fast-check";
import { afterEach, describe, expect, it } from "vitest";
import { captured } from "../test/captured-frames.ts";
import { cleanup, recordChannel, startAgent } from "../test/helpers.ts";
import { channels, type ErrorMessage, ProtocolError } from "./index.ts";
import { checkRateMessage, type SpopClient } from "./testing/index.ts";

afterEach(cleanup);

const notify = encodeFrame(notifyFrame(1, 1, [checkRateMessage()]));
const hex = (text: string) => Buffer.from(text, "hex");

/** A NOTIFY payload without FIN: the first piece of a fragmented frame. */
const fragment = encodeFrame({
  type: FrameType.UNSET,
  frameType: FrameType.NOTIFY,
  flags: 0,
  streamId: 1,
  frameId: 1,
  payload: notify.subarray(11),
});

const cases: [string, "before" | "after", Buffer, number][] = [
  ["a NOTIFY before the HELLO", "before", notify, DisconnectStatus.INVALID_FRAME],
  ["a second HELLO", "after", captured.hello35, DisconnectStatus.INVALID_FRAME],
  [
    "an unknown frame type (50)",
    "after",
    hex("00000007320000000100 00".replace(" ", "")),
    DisconnectStatus.INVALID_FRAME,
  ],
  ["an ACK (a frame agents send)", "after", encodeFrame(ackFrame(1, 1, [])), DisconnectStatus.INVALID_FRAME],
  ["a length prefix of 4 GiB − 1", "after", hex("ffffffff03000000"), DisconnectStatus.FRAME_TOO_BIG],
  ["a length prefix of 0", "after", hex("00000000"), DisconnectStatus.INVALID_FRAME],
  ["a NOTIFY without FIN (a fragment)", "after", fragment, DisconnectStatus.FRAGMENTATION_NOT_SUPPORTED],
  [
    "an UNSET continuation frame",
    "after",
    encodeFrame({
      type: FrameType.UNSET,
      frameType: FrameType.UNSET,
      flags: FrameFlags.FIN,
      streamId: 1,
      frameId: 1,
      payload: new Uint8Array(3),
    }),
    DisconnectStatus.FRAGMENTATION_NOT_SUPPORTED,
  ],
  // check-rate announces 3 arguments; cut the frame after the first one.
  [
    "a NOTIFY whose arguments end early",
    "after",
    Buffer.concat([hex("00000018"), notify.subarray(4, 28)]),
    DisconnectStatus.INVALID_FRAME,
  ],
];

/** Raw bytes, and bytes behind a length prefix that matches them (so the decoder reads them). */
/**
 * Whether the agent, after the HELLO, answers `bytes` then a HAPROXY-DISCONNECT with an
 * AGENT-DISCONNECT: it does unless the bytes leave it waiting for the rest of a frame (only
 * NOTIFYs, answered, before the incomplete frame). Read by the codec's own reader.
 */
function answersEverything(bytes: Uint8Array): boolean {
  const reader = new FrameReader({ maxFrameSize: DEFAULT_MAX_FRAME_SIZE });
  reader.push(bytes);
  reader.push(captured.disconnect26);
  try {
    for (let frame = reader.next(); frame !== undefined; frame = reader.next()) {
      if (frame.type !== FrameType.NOTIFY) return true; // the DISCONNECT, or a frame out of place
    }
  } catch {
    return true; // a frame the agent refuses
  }
  return false;
}

const anyBytes = fc.uint8Array({ minLength: 1, maxLength: 64 });
const framedBytes = fc
  .tuple(fc.constantFrom(0, 1, 2, 3, 101, 102, 103, 7), fc.uint8Array({ minLength: 0, maxLength: 80 }))
  .map(([type, body]) => {
    const frame = Buffer.alloc(5 + body.length);
    frame.writeUInt32BE(1 + body.length);
    frame[4] = type;
    frame.set(body, 5);
    return frame;
  });

describe("a peer that breaks the protocol", () => {
  it.each(cases)("%s: AGENT-DISCONNECT and close, nothing thrown", async (_what, when, bytes, status) => {
    const errors = recordChannel<ErrorMessage>(channels.error);
    const { client, ready } = await startAgent();
    const haproxy: SpopClient = when === "before" ? await client() : await ready();
    haproxy.send(bytes);
    const closed = await haproxy.closed;
    expect(closed.disconnect?.status).toBe(status);
    expect(closed.disconnect?.message).not.toBe("");
    expect(errors.map((e) => [e.kind, e.status, e.error instanceof ProtocolError])).toEqual([
      ["protocol", status, true],
    ]);
    // The agent keeps serving.
    const next = await ready();
    expect((await next.notify([checkRateMessage()])).actions).toEqual([]);
  });

  it("answers the NOTIFYs read before a bad frame, then disconnects", async () => {
    const { ready } = await startAgent({}, (agent) =>
      agent.catchAll((message) => {
        message.setVar(1, "seen", message.args.ip_src ?? { type: 0 });
      }),
    );
    const haproxy = await ready();
    const answered = haproxy.notify([checkRateMessage("192.0.2.1")], { streamId: 7, frameId: 1 });
    haproxy.send(hex("ffffffff"));
    expect((await answered).streamId).toBe(7);
    expect((await haproxy.closed).disconnect?.status).toBe(DisconnectStatus.FRAME_TOO_BIG);
  });

  it("aborts the handlers still running when HAProxy breaks the protocol", async () => {
    let signal: AbortSignal | undefined;
    const { ready } = await startAgent({}, (agent) =>
      agent.catchAll(async (message) => {
        signal = message.signal;
        await new Promise((resolve) => message.signal.addEventListener("abort", () => resolve(undefined)));
      }),
    );
    const haproxy = await ready();
    haproxy.notify([checkRateMessage()]).catch(() => {});
    while (signal === undefined) await new Promise((resolve) => setImmediate(resolve));
    haproxy.send(haproxyHelloFrame({ maxFrameSize: 16380, capabilities: [] }));
    await haproxy.closed;
    expect(signal.aborted).toBe(true);
    expect((signal.reason as { code: string }).code).toBe("SPOE_AGENT_CONNECTION_CLOSED");
  });

  it("survives arbitrary bytes after the HELLO: it disconnects or waits, and never throws", async () => {
    const { ready } = await startAgent();
    await fc.assert(
      fc.asyncProperty(fc.oneof(anyBytes, framedBytes), async (bytes) => {
        const haproxy = await ready();
        haproxy.send(bytes);
        // Whatever the bytes were, a HAPROXY-DISCONNECT after them is either read as a frame
        // (answered with AGENT-DISCONNECT) or part of a bad stream (AGENT-DISCONNECT, status ≠ 0).
        haproxy.send(captured.disconnect26);
        const answers = answersEverything(bytes);
        // The bytes announced a longer frame: the agent waits for the rest until HAProxy ends.
        if (!answers) haproxy.socket.end();
        const closed = await haproxy.closed;
        expect(closed.disconnect !== undefined).toBe(answers);
      }),
      { numRuns: 150 },
    );
    const next = await ready();
    expect((await next.notify([checkRateMessage()])).type).toBe(FrameType.ACK);
  });
});
