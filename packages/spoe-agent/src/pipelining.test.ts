import type { Socket } from "node:net";
import {
  type AckFrame,
  decodeFrame,
  encodeFrame,
  type Frame,
  FrameReader,
  FrameType,
  fragmentFrame,
  type NotifyFrame,
  notifyFrame,
  Scope,
  TypedValue,
} from "@spoekit/spop-codec";
import { afterEach, describe, expect, it } from "vitest";
import { captured } from "../test/captured-frames.ts";
import { Counter, cleanup, numberArg, startAgent } from "../test/helpers.ts";
import { type ConnectionInfo, DataType } from "./index.ts";
import { checkRateMessage, ManualClock, spoeMessage } from "./testing/index.ts";

afterEach(cleanup);

/** Records every buffer the agent writes to its sockets (installed before the HELLO). */
function recordWrites(connection: ConnectionInfo, writes: Buffer[]): void {
  const socket = connection.socket as Socket & { write: (...args: unknown[]) => boolean };
  const write = socket.write.bind(socket) as (...args: unknown[]) => boolean;
  socket.write = (chunk: unknown, ...rest: unknown[]) => {
    writes.push(Buffer.from(chunk as Buffer));
    return write(chunk, ...rest);
  };
}

/** The frames of one write; fails unless the write holds whole frames only. */
function framesOf(write: Buffer): Frame[] {
  const reader = new FrameReader();
  reader.push(write);
  const frames = [...reader];
  expect(reader.bufferedBytes).toBe(0);
  return frames;
}

/** A message whose handler waits `ms` before answering. */
const wait = (ms: number) => spoeMessage("wait", { ms: TypedValue.int32(ms) });

/** An agent whose "wait" handler waits `ms` on a manual clock; `running` counts the started. */
async function waitingAgent() {
  const clock = new ManualClock();
  const running = new Counter();
  const started = await startAgent({ clock }, (agent) =>
    agent.message("wait", async (message) => {
      const ms = numberArg(message, "ms");
      running.hit();
      await clock.sleep(ms);
      message.setVar(Scope.TXN, "waited", TypedValue.int32(ms));
    }),
  );
  return { ...started, clock, running };
}

describe("pipelining", () => {
  it("answers pipelined NOTIFYs as their handlers finish, each ACK echoing its ids", async () => {
    const { ready, clock, running } = await waitingAgent();
    const haproxy = await ready();
    const order: number[] = [];
    const delays = [120, 10, 80, 0, 40];
    const answered = Promise.all(
      delays.map((ms, i) =>
        haproxy.notify([wait(ms)], { streamId: 100 + i, frameId: i + 1 }).then((ack) => {
          order.push(ms);
          return ack;
        }),
      ),
    );
    await running.reached(5);
    await clock.advanceAsync(120);
    const acks = await answered;
    expect(order).toEqual([0, 10, 40, 80, 120]);
    expect(acks.map((ack) => [ack.streamId, ack.frameId, ack.actions[0]])).toEqual(
      delays.map((ms, i) => [
        100 + i,
        i + 1,
        { type: 1, scope: Scope.TXN, name: "waited", value: TypedValue.int32(ms) },
      ]),
    );
  });

  it("coalesces the ACKs ready in one tick into one socket write of whole frames", async () => {
    const writes: Buffer[] = [];
    const { ready } = await startAgent({}, (agent) => {
      agent.addHook("onConnection", (connection) => recordWrites(connection, writes));
      agent.catchAll((message) => {
        message.setVar(Scope.SESS, "ip_score", TypedValue.int32(0));
      });
    });
    const haproxy = await ready();
    expect(writes).toHaveLength(1); // the AGENT-HELLO
    const notifies = Array.from({ length: 20 }, (_, i) => notifyFrame(2 * i + 1, 1, [checkRateMessage()]));
    haproxy.socket.cork(); // the 20 NOTIFYs leave in one TCP segment, as HAProxy batches them
    const acks = notifies.map((frame) => haproxy.notify(frame.messages, frame));
    haproxy.socket.uncork();
    await Promise.all(acks);
    expect(writes).toHaveLength(2);
    const frames = framesOf(writes[1] as Buffer) as AckFrame[];
    expect(frames.map((frame) => frame.streamId)).toEqual(notifies.map((frame) => frame.streamId));
  });

  it("writes every frame whole, whatever order the handlers finish in", async () => {
    const writes: Buffer[] = [];
    const clock = new ManualClock();
    const running = new Counter();
    const { ready } = await startAgent({ clock }, (agent) => {
      agent.addHook("onConnection", (connection) => recordWrites(connection, writes));
      agent.message("wait", async (message) => {
        running.hit();
        await clock.sleep(numberArg(message, "ms"));
        message.setVar(Scope.TXN, "padding", TypedValue.string("x".repeat(3000)));
      });
    });
    const haproxy = await ready();
    const acks = Promise.all(Array.from({ length: 40 }, (_, i) => haproxy.notify([wait((i * 7) % 23)])));
    await running.reached(40);
    await clock.advanceAsync(23);
    await acks;
    const frames = writes.flatMap(framesOf);
    expect(frames.filter((frame) => frame.type === FrameType.ACK)).toHaveLength(40);
  });

  it("answers HAProxy 3.x's odd stream ids and 2.6's counting ones alike", async () => {
    const { ready, clock, running } = await waitingAgent();
    const v3 = await ready({ ids: "haproxy-3" });
    const v26 = await ready({ ids: "haproxy-2.6" });
    const answered = Promise.all([
      Promise.all([5, 1, 3].map((ms) => v3.notify([wait(ms)]))),
      Promise.all([5, 1, 3].map((ms) => v26.notify([wait(ms)]))),
    ]);
    await running.reached(6);
    await clock.advanceAsync(5);
    const [acks3, acks26] = await answered;
    expect(acks3.map((ack) => [ack.streamId, ack.frameId])).toEqual([
      [1, 1],
      [3, 1],
      [5, 1],
    ]);
    expect(acks26.map((ack) => [ack.streamId, ack.frameId])).toEqual([
      [0, 1],
      [1, 1],
      [2, 1],
    ]);
  });

  it.each([
    ["2.6.12", captured.hello26, [captured.notify26, captured.notifyXff26]],
    ["3.5-dev5", captured.hello35, [captured.notify35, captured.notifyXff35]],
  ])("answers the NOTIFYs captured from HAProxy %s, echoing their ids", async (_version, hello, notifies) => {
    const { client } = await startAgent({}, (agent) =>
      agent.message("check-rate", (message) => {
        const forwarded = message.args.ip_xff;
        message.setVar(Scope.SESS, "ip_score", TypedValue.int32(forwarded?.type === DataType.IPV4 ? 100 : 0));
      }),
    );
    const haproxy = await client();
    haproxy.send(hello);
    expect((await haproxy.nextFrame()).type).toBe(FrameType.AGENT_HELLO);
    haproxy.send(Buffer.concat(notifies));
    const acks = [(await haproxy.nextFrame()) as AckFrame, (await haproxy.nextFrame()) as AckFrame];
    const sent = notifies.map((bytes) => decodeFrame(bytes) as NotifyFrame);
    expect(
      acks.map((ack) => [ack.streamId, ack.frameId, ack.actions[0]?.type === 1 && ack.actions[0].value]),
    ).toEqual([
      [sent[0]?.streamId, sent[0]?.frameId, TypedValue.int32(0)],
      [sent[1]?.streamId, sent[1]?.frameId, TypedValue.int32(100)],
    ]);
  });

  it("reassembles fragmented NOTIFYs when it offers fragmentation (HAProxy 2.x)", async () => {
    const { client } = await startAgent({ capabilities: ["pipelining", "fragmentation"] }, (agent) =>
      agent.catchAll((message) => {
        const blob = message.arg("blob");
        message.setVar(
          Scope.TXN,
          "size",
          TypedValue.int32(blob?.type === DataType.BINARY ? blob.value.length : -1),
        );
      }),
    );
    const haproxy = await client();
    const hello = await haproxy.hello({ maxFrameSize: 256, capabilities: ["pipelining", "fragmentation"] });
    expect(hello.capabilities).toEqual(["pipelining", "fragmentation"]);
    const notify = notifyFrame(3, 1, [
      spoeMessage("upload", { blob: TypedValue.binary(new Uint8Array(1000)) }),
    ]);
    const pieces = fragmentFrame(notify, 256);
    expect(pieces.length).toBeGreaterThan(3);
    haproxy.socket.cork();
    for (const piece of pieces) haproxy.send(encodeFrame(piece, { maxFrameSize: 256 }));
    const ack = haproxy.notify([], { streamId: 99, frameId: 1 }); // a whole NOTIFY after the pieces
    haproxy.socket.uncork();
    const reassembled = (await haproxy.nextFrame()) as AckFrame;
    expect([reassembled.streamId, reassembled.actions]).toEqual([
      3,
      [{ type: 1, scope: Scope.TXN, name: "size", value: TypedValue.int32(1000) }],
    ]);
    expect((await ack).streamId).toBe(99);
  });

  it("never mixes up connections that use the same stream and frame ids", async () => {
    const clock = new ManualClock();
    const running = new Counter();
    const { ready } = await startAgent({ clock }, (agent) =>
      agent.message("echo", async (message) => {
        const value = message.args.value as TypedValue;
        running.hit();
        await clock.sleep(value.type === DataType.STRING && value.value === "first" ? 30 : 1);
        message.setVar(Scope.TXN, "echo", value);
      }),
    );
    const [first, second] = [await ready(), await ready()];
    const ids = { streamId: 1, frameId: 1 };
    const answered = Promise.all([
      first.notify([spoeMessage("echo", { value: TypedValue.string("first") })], ids),
      second.notify([spoeMessage("echo", { value: TypedValue.string("second") })], ids),
    ]);
    await running.reached(2);
    await clock.advanceAsync(30);
    const [a, b] = await answered;
    expect(a.actions[0]).toMatchObject({ value: TypedValue.string("first") });
    expect(b.actions[0]).toMatchObject({ value: TypedValue.string("second") });
  });
});

describe("backpressure", () => {
  it("stops reading at maxInFlight unanswered NOTIFYs and resumes as ACKs go out", async () => {
    const gates: (() => void)[] = [];
    const running = new Counter();
    const { ready, agent } = await startAgent({ maxInFlight: 4 }, (a) =>
      a.catchAll(() => {
        running.hit();
        return new Promise<void>((resolve) => gates.push(resolve));
      }),
    );
    const haproxy = await ready();
    const acks = Array.from({ length: 10 }, () => haproxy.notify([checkRateMessage()]));
    await running.reached(4);
    const [connection] = agent.connections;
    // At the bound the agent stops reading: the other NOTIFYs stay in the socket.
    expect(connection?.socket.isPaused()).toBe(true);
    expect(connection?.inFlight).toBe(4);
    expect(running.count).toBe(4);
    gates.shift()?.();
    await acks[0];
    await running.reached(5);
    // One answered, one more taken: still four running, five started in all.
    expect(connection?.inFlight).toBe(4);
    for (let released = 1; released < 10; released++) {
      await running.reached(Math.min(10, released + 4));
      gates.shift()?.();
    }
    expect((await Promise.all(acks)).map((ack) => ack.streamId)).toEqual(acks.map((_, i) => 2 * i + 1));
  });

  it("stops taking NOTIFYs while the socket needs draining, and buffers no more than a batch", async () => {
    let handled = 0;
    const big = TypedValue.string("x".repeat(16_000));
    const { ready, agent } = await startAgent({ maxInFlight: 16 }, (a) =>
      a.catchAll((message) => {
        handled++;
        message.setVar(Scope.TXN, "big", big);
      }),
    );
    const haproxy = await ready();
    const [connection] = agent.connections;
    const total = 2000; // ~32 MB of ACKs: far more than loopback's socket buffers hold
    haproxy.socket.pause(); // HAProxy stops reading
    const socket = connection?.socket as Socket & { write: (...args: unknown[]) => boolean };
    // The agent's write that fills the socket's buffer; nothing drains it while HAProxy does not
    // read, so from then on the agent must take no more NOTIFYs.
    const stalled = new Promise<void>((resolve) => {
      const write = socket.write.bind(socket) as (...args: unknown[]) => boolean;
      socket.write = (...args: unknown[]) => {
        const ok = write(...args);
        if (!ok) resolve();
        return ok;
      };
    });
    const acks = Array.from({ length: total }, () => haproxy.notify([checkRateMessage()]));
    await stalled;
    const atStall = handled;
    await new Promise((resolve) => setImmediate(resolve));
    expect(socket.isPaused()).toBe(true);
    expect(handled).toBe(atStall);
    expect(handled).toBeLessThan(total);
    expect(connection?.socket.writableLength).toBeLessThan(16 * 16_100 + 64 * 1024);
    haproxy.socket.resume();
    await Promise.all(acks);
    expect(handled).toBe(total);
  }, 20_000);
});
