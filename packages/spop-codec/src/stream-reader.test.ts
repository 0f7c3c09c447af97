import { afterEach, describe, expect, it, vi } from "vitest";
import { expectSpopError } from "../test/expect-spop-error.ts";
import { referenceVarint, wireFrame, wireItem, wireMessage } from "../test/wire.ts";
import { DataType, DisconnectStatus, FrameFlags, FrameType } from "./constants.ts";
import { decodeFrame } from "./frame-decoder.ts";
import { encodeFrame, fragmentFrame } from "./frame-encoder.ts";
import { haproxyDisconnectFrame } from "./handshake.ts";
import { FrameReader } from "./stream-reader.ts";
import type { Frame, NotifyFrame } from "./types.ts";

function notifyWith(streamId: number, args: string[]): Buffer {
  return wireFrame({
    type: FrameType.NOTIFY,
    streamId,
    frameId: 1,
    payload: wireMessage("check-rate", args),
  });
}

const small = notifyWith(1, [wireItem("ip_src", "067f000001")]);
const binary = notifyWith(2, [wireItem("body", `09${referenceVarint(600n)}${"ab".repeat(600)}`)]);

function drain(reader: FrameReader): Frame[] {
  return [...reader];
}

function bodyOf(frame: Frame | undefined): Uint8Array {
  const value = frame?.type === FrameType.NOTIFY ? frame.messages[0]?.args[0]?.value : undefined;
  if (value?.type !== DataType.BINARY) throw new Error("no BINARY argument");
  return value.value;
}

afterEach(() => {
  vi.restoreAllMocks();
});

describe("FrameReader", () => {
  it("yields many frames from one chunk, in order", () => {
    const reader = new FrameReader();
    reader.push(Buffer.concat([small, binary, small]));
    expect(drain(reader).map((frame) => frame.streamId)).toEqual([1, 2, 1]);
    expect(reader.bufferedBytes).toBe(0);
  });

  it("yields frames split at every possible point", () => {
    const stream = Buffer.concat([small, binary, small]);
    for (let cut = 1; cut < stream.length; cut++) {
      const reader = new FrameReader();
      reader.push(stream.subarray(0, cut));
      const frames = drain(reader);
      reader.push(stream.subarray(cut));
      frames.push(...drain(reader));
      expect(frames.map((frame) => frame.streamId)).toEqual([1, 2, 1]);
    }
  });

  it("accepts plain Uint8Array chunks", () => {
    const reader = new FrameReader();
    reader.push(new Uint8Array(small));
    expect(reader.next()?.type).toBe(FrameType.NOTIFY);
  });

  it("lets the caller stop taking frames and keeps the rest buffered (backpressure)", () => {
    const reader = new FrameReader();
    reader.push(Buffer.concat([small, small, binary]));
    expect(reader.next()?.streamId).toBe(1);
    expect(reader.bufferedBytes).toBe(small.length + binary.length);
    reader.push(small);
    expect(drain(reader).map((frame) => frame.streamId)).toEqual([1, 2, 1]);
    expect(reader.bufferedBytes).toBe(0);
  });

  describe("the maximum frame size", () => {
    it("refuses a length prefix above it before allocating anything (status 3)", () => {
      const allocations = [
        vi.spyOn(Buffer, "alloc"),
        vi.spyOn(Buffer, "allocUnsafe"),
        vi.spyOn(Buffer, "allocUnsafeSlow"),
        vi.spyOn(Buffer, "concat"),
      ];
      const reader = new FrameReader({ maxFrameSize: 16380 });
      reader.push(Buffer.from("ff", "hex"));
      expect(reader.next()).toBeUndefined();
      reader.push(Buffer.from("ffff", "hex"));
      expect(reader.next()).toBeUndefined();
      reader.push(Buffer.from("ff", "hex"));
      expectSpopError(() => reader.next(), {
        status: DisconnectStatus.FRAME_TOO_BIG,
        field: "frame length",
        offset: 0,
        message: /length prefix 4294967295 exceeds the maximum frame size 16380/,
      });
      for (const allocation of allocations) expect(allocation).not.toHaveBeenCalled();
    });

    it("applies a new maximum from the next frame on (the negotiated max-frame-size)", () => {
      const reader = new FrameReader();
      reader.push(Buffer.concat([binary, binary]));
      expect(reader.next()?.streamId).toBe(2);
      reader.maxFrameSize = 256;
      expect(reader.maxFrameSize).toBe(256);
      expectSpopError(() => reader.next(), { status: DisconnectStatus.FRAME_TOO_BIG });
    });

    it("accepts a frame of exactly the maximum", () => {
      const reader = new FrameReader({ maxFrameSize: binary.length - 4 });
      reader.push(binary);
      expect(reader.next()?.streamId).toBe(2);
    });

    it.each([0, -1, 1.5, 2 ** 32, Number.NaN])("refuses %s as a maximum", (value) => {
      expectSpopError(() => new FrameReader({ maxFrameSize: value }), {
        status: DisconnectStatus.BAD_FRAME_SIZE,
      });
      const reader = new FrameReader();
      expectSpopError(
        () => {
          reader.maxFrameSize = value;
        },
        { status: DisconnectStatus.BAD_FRAME_SIZE },
      );
    });
  });

  describe("copying", () => {
    it("decodes a frame that lies in one chunk in place: BINARY values are views into the chunk", () => {
      const chunk = Buffer.concat([small, binary]);
      const reader = new FrameReader();
      reader.push(chunk);
      reader.next();
      const body = bodyOf(reader.next());
      expect(body.buffer).toBe(chunk.buffer);
      chunk.fill(0xcd, chunk.length - 600);
      expect(body[0]).toBe(0xcd);
    });

    it("copies a frame that straddles chunks once, into a buffer of its own", () => {
      const copy = vi.spyOn(Buffer.prototype, "copy");
      const allocate = vi.spyOn(Buffer, "allocUnsafe");
      const reader = new FrameReader();
      const chunks: Buffer[] = [];
      for (let i = 0; i < binary.length; i++) {
        const chunk = Buffer.from(binary.subarray(i, i + 1));
        chunks.push(chunk);
        reader.push(chunk);
        if (i < binary.length - 1) expect(reader.next()).toBeUndefined();
      }
      const body = bodyOf(reader.next());
      expect(allocate).toHaveBeenCalledTimes(1);
      expect(allocate).toHaveBeenCalledWith(binary.length);
      const copied = copy.mock.calls.reduce((sum, call) => sum + Number(call[3]) - Number(call[2]), 0);
      expect(copied).toBe(binary.length);
      for (const chunk of chunks) chunk.fill(0);
      expect(Buffer.from(body).toString("hex")).toBe("ab".repeat(600));
    });

    it("copies nothing for frames that do not straddle chunks", () => {
      const copy = vi.spyOn(Buffer.prototype, "copy");
      const reader = new FrameReader();
      reader.push(Buffer.concat([small, small]));
      reader.push(binary);
      expect(drain(reader)).toHaveLength(3);
      expect(copy).not.toHaveBeenCalled();
    });
  });

  describe("errors", () => {
    it("keeps failing with the same error once a frame was invalid", () => {
      const reader = new FrameReader();
      reader.push(Buffer.concat([small, Buffer.from("00000000", "hex"), small]));
      expect(reader.next()?.streamId).toBe(1);
      const error = expectSpopError(() => reader.next(), {
        status: DisconnectStatus.INVALID_FRAME,
        message: /length prefix is 0/,
      });
      expect(() => reader.next()).toThrow(error);
      expect(() => reader.push(small)).toThrow(error);
      expect(() => reader.end()).toThrow(error);
    });

    it("reports a stream that ends inside a frame", () => {
      const reader = new FrameReader();
      reader.push(small.subarray(0, 10));
      expect(reader.next()).toBeUndefined();
      expectSpopError(() => reader.end(), {
        status: DisconnectStatus.INVALID_FRAME,
        message: new RegExp(`the stream ended with 10 bytes of a ${small.length}-byte frame`),
      });
      const early = new FrameReader();
      early.push(small.subarray(0, 2));
      expectSpopError(() => early.end(), {
        status: DisconnectStatus.INVALID_FRAME,
        message: /with 2 bytes$/,
      });
    });

    it("ends cleanly after whole frames", () => {
      const reader = new FrameReader();
      reader.push(small);
      drain(reader);
      expect(() => reader.end()).not.toThrow();
    });
  });

  describe("with fragmentation", () => {
    const whole = notifyWith(9, [
      wireItem("ip_src", "067f000001"),
      wireItem("note", `08${referenceVarint(500n)}${"6e".repeat(500)}`),
    ]);
    const original = decodeFrame(whole) as NotifyFrame;
    const pieces = fragmentFrame(original, 256).map((piece) => encodeFrame(piece));

    it("reassembles a fragmented NOTIFY into the whole frame", () => {
      expect(pieces.length).toBeGreaterThan(2);
      const reader = new FrameReader({ fragmentation: true });
      const frames: Frame[] = [];
      for (const piece of pieces) {
        reader.push(piece);
        frames.push(...drain(reader));
      }
      expect(frames).toEqual([original]);
      expect(() => reader.end()).not.toThrow();
    });

    it("refuses the pieces when fragmentation is off (status 10)", () => {
      const reader = new FrameReader();
      reader.push(Buffer.concat(pieces));
      expectSpopError(() => reader.next(), { status: DisconnectStatus.FRAGMENTATION_NOT_SUPPORTED });
    });

    it("drops a fragmented frame aborted by the sender and goes on", () => {
      const reader = new FrameReader({ fragmentation: true });
      const abort = wireFrame({
        type: FrameType.UNSET,
        flags: FrameFlags.FIN | FrameFlags.ABORT,
        streamId: 9,
        frameId: 1,
      });
      reader.push(Buffer.concat([pieces[0] as Buffer, abort, small]));
      expect(drain(reader).map((frame) => frame.streamId)).toEqual([1]);
    });

    it("lets a DISCONNECT through in the middle of a fragmented frame", () => {
      const reader = new FrameReader({ fragmentation: true });
      reader.push(Buffer.concat([pieces[0] as Buffer, encodeFrame(haproxyDisconnectFrame(0))]));
      expect(drain(reader).map((frame) => frame.type)).toEqual([FrameType.HAPROXY_DISCONNECT]);
      expectSpopError(() => reader.end(), {
        status: DisconnectStatus.INVALID_FRAME,
        message: /inside a fragmented NOTIFY/,
      });
    });

    it("refuses a new NOTIFY inside a fragmented one (status 11)", () => {
      for (const next of [small, pieces[0] as Buffer]) {
        const reader = new FrameReader({ fragmentation: true });
        reader.push(Buffer.concat([pieces[0] as Buffer, next]));
        expectSpopError(() => reader.next(), { status: DisconnectStatus.INVALID_INTERLACED_FRAMES });
      }
    });

    it("refuses an UNSET frame that continues no fragmented frame (status 12)", () => {
      const stray = wireFrame({ type: FrameType.UNSET, flags: FrameFlags.FIN, streamId: 4, frameId: 1 });
      const alone = new FrameReader({ fragmentation: true });
      alone.push(stray);
      expectSpopError(() => alone.next(), {
        status: DisconnectStatus.FRAME_ID_NOT_FOUND,
        message: /no fragmented frame is in progress/,
      });
      const other = new FrameReader({ fragmentation: true });
      other.push(Buffer.concat([pieces[0] as Buffer, stray]));
      expectSpopError(() => other.next(), {
        status: DisconnectStatus.FRAME_ID_NOT_FOUND,
        message: /expected 9\/1/,
      });
    });

    it("refuses a reassembled payload above its limit (status 3)", () => {
      const reader = new FrameReader({ fragmentation: true, maxReassembledSize: 300 });
      reader.push(Buffer.concat(pieces));
      expectSpopError(() => reader.next(), {
        status: DisconnectStatus.FRAME_TOO_BIG,
        message: /exceeds 300 bytes/,
      });
    });

    it("refuses a reassembly limit that is no size", () => {
      for (const maxReassembledSize of [-1, 0.5, Number.POSITIVE_INFINITY]) {
        expectSpopError(() => new FrameReader({ fragmentation: true, maxReassembledSize }), {
          status: DisconnectStatus.BAD_FRAME_SIZE,
        });
      }
    });

    it("reports a reassembled payload that does not decode", () => {
      const reader = new FrameReader({ fragmentation: true });
      reader.push(wireFrame({ type: FrameType.NOTIFY, flags: 0, streamId: 1, frameId: 1, payload: "05" }));
      reader.push(
        wireFrame({ type: FrameType.UNSET, flags: FrameFlags.FIN, streamId: 1, frameId: 1, payload: "61" }),
      );
      expectSpopError(() => reader.next(), { status: DisconnectStatus.INVALID_FRAME, field: "message name" });
    });
  });
});
