import { describe, expect, it } from "vitest";
import { expectSpopError } from "../test/expect-spop-error.ts";
import {
  referenceVarint,
  wireFrame,
  wireItem,
  wireMessage,
  wireSetVar,
  wireString,
  wireUnsetVar,
} from "../test/wire.ts";
import { ActionList } from "./action-list.ts";
import { ActionType, DisconnectStatus, FrameFlags, FrameType, Scope } from "./constants.ts";
import { decodeFrame } from "./frame-decoder.ts";
import { encodeFrame, FrameWriter, fragmentFrame } from "./frame-encoder.ts";
import { ackFrame, notifyFrame, setVar, unsetVar } from "./frames.ts";
import { FrameReader } from "./stream-reader.ts";
import { type Action, type Frame, TypedValue } from "./types.ts";

const scoreActions: Action[] = [
  setVar(Scope.SESS, "ip_score", TypedValue.int32(100)),
  setVar(Scope.SESS, "retry_after", TypedValue.int32(3)),
  setVar(Scope.SESS, "remaining", TypedValue.int32(0)),
  unsetVar(Scope.TXN, "limit"),
];
const scoreWire = wireFrame({
  type: FrameType.ACK,
  streamId: 300,
  frameId: 2,
  payload:
    wireSetVar(Scope.SESS, "ip_score", "0264") +
    wireSetVar(Scope.SESS, "retry_after", "0203") +
    wireSetVar(Scope.SESS, "remaining", "0200") +
    wireUnsetVar(Scope.TXN, "limit"),
});
const invalid = DisconnectStatus.INVALID_FRAME;

describe("encodeFrame", () => {
  it("writes an ACK as the protocol lays it out", () => {
    expect(encodeFrame(ackFrame(300, 2, scoreActions)).toString("hex")).toBe(scoreWire.toString("hex"));
  });

  it("writes a NOTIFY as the protocol lays it out", () => {
    const frame = notifyFrame(5, 1, [
      { name: "check-rate", args: [{ name: "ip_src", value: TypedValue.ipv4("127.0.0.1") }] },
      { name: "", args: [] },
    ]);
    const wire = wireFrame({
      type: FrameType.NOTIFY,
      streamId: 5,
      frameId: 1,
      payload: wireMessage("check-rate", [wireItem("ip_src", "067f000001")]) + wireMessage("", []),
    });
    expect(encodeFrame(frame).toString("hex")).toBe(wire.toString("hex"));
  });

  it("writes fragment pieces with their wire type and raw payload", () => {
    const piece: Frame = {
      type: FrameType.UNSET,
      frameType: FrameType.NOTIFY,
      flags: 0,
      streamId: 1,
      frameId: 1,
      payload: Buffer.from("0a6368", "hex"),
    };
    const wire = wireFrame({ type: FrameType.NOTIFY, flags: 0, streamId: 1, frameId: 1, payload: "0a6368" });
    expect(encodeFrame(piece).equals(wire)).toBe(true);
  });

  it("writes names and strings of every length with the right length varint", () => {
    for (const name of [
      "",
      "x".repeat(79),
      "x".repeat(80),
      "x".repeat(239),
      "x".repeat(240),
      "é".repeat(79),
      "€".repeat(300),
    ]) {
      const wire = wireFrame({
        type: FrameType.ACK,
        payload: wireSetVar(Scope.REQ, name, `08${wireString(name)}`),
      });
      const frame = ackFrame(0, 0, [setVar(Scope.REQ, name, TypedValue.string(name))]);
      expect(encodeFrame(frame).toString("hex")).toBe(wire.toString("hex"));
    }
  });

  describe("refuses", () => {
    it("a frame above the maximum frame size (status 3)", () => {
      const frame = ackFrame(1, 1, [setVar(Scope.TXN, "v", TypedValue.string("x".repeat(300)))]);
      const length = encodeFrame(frame, { maxFrameSize: 1000 }).length - 4;
      expect(encodeFrame(frame, { maxFrameSize: length }).length).toBe(length + 4);
      expectSpopError(() => encodeFrame(frame, { maxFrameSize: length - 1 }), {
        status: DisconnectStatus.FRAME_TOO_BIG,
        message: new RegExp(`a ${length}-byte frame exceeds the maximum frame size ${length - 1}`),
      });
    });

    it("a frame that would be too big because of one large value, before copying it", () => {
      const writer = new FrameWriter({ maxFrameSize: 1024, slabSize: 4096 });
      const huge = TypedValue.binary(new Uint8Array(1 << 20));
      expectSpopError(() => writer.write(ackFrame(1, 1, [setVar(Scope.TXN, "v", huge)])), {
        status: DisconnectStatus.FRAME_TOO_BIG,
        field: "variable value",
      });
      expect(writer.pendingBytes).toBe(0);
    });

    it.each([
      [
        "HELLO with a stream-id",
        { type: FrameType.AGENT_HELLO, flags: 1, streamId: 1, frameId: 0, items: [] },
        /stream-id 0/,
      ],
      [
        "DISCONNECT without FIN",
        { type: FrameType.AGENT_DISCONNECT, flags: 0, streamId: 0, frameId: 0, items: [] },
        /cannot be fragmented/,
      ],
      [
        "NOTIFY without FIN",
        { type: FrameType.NOTIFY, flags: 0, streamId: 1, frameId: 1, messages: [] },
        /FragmentFrames/,
      ],
      [
        "ABORT without FIN",
        { type: FrameType.ACK, flags: FrameFlags.ABORT, streamId: 1, frameId: 1, actions: [] },
        /ABORT/,
      ],
      [
        "flags beyond 32 bits",
        { type: FrameType.ACK, flags: 2 ** 32 + 1, streamId: 1, frameId: 1, actions: [] },
        /no u32/,
      ],
      [
        "a negative stream-id",
        { type: FrameType.ACK, flags: 1, streamId: -1, frameId: 1, actions: [] },
        /stream-id/,
      ],
      [
        "a fractional frame-id",
        { type: FrameType.ACK, flags: 1, streamId: 1, frameId: 0.5, actions: [] },
        /frame-id/,
      ],
      [
        "a first piece with FIN",
        {
          type: FrameType.UNSET,
          frameType: FrameType.NOTIFY,
          flags: 1,
          streamId: 1,
          frameId: 1,
          payload: new Uint8Array(),
        },
        /no FIN/,
      ],
      [
        "a piece of a HELLO",
        {
          type: FrameType.UNSET,
          frameType: FrameType.AGENT_HELLO,
          flags: 0,
          streamId: 0,
          frameId: 0,
          payload: new Uint8Array(),
        },
        /cannot be fragmented/,
      ],
      ["an unknown frame type", { type: 50, flags: 1, streamId: 0, frameId: 0 }, /unknown frame type 50/],
      [
        "a message with 256 arguments",
        notifyFrame(1, 1, [
          { name: "m", args: Array.from({ length: 256 }, () => ({ name: "a", value: TypedValue.null })) },
        ]),
        /256 arguments, at most 255/,
      ],
      [
        "an unknown scope",
        ackFrame(1, 1, [{ type: ActionType.SET_VAR, scope: 5 as Scope, name: "v", value: TypedValue.null }]),
        /unknown scope 5/,
      ],
      [
        "an unknown action",
        ackFrame(1, 1, [{ type: 9, scope: Scope.TXN, name: "v" } as unknown as Action]),
        /unknown action type 9/,
      ],
      [
        "a name with a lone surrogate",
        ackFrame(1, 1, [unsetVar(Scope.TXN, "\udc00x")]),
        /lone UTF-16 surrogate/,
      ],
    ])("%s", (_name, frame, message) => {
      expectSpopError(() => encodeFrame(frame as Frame), { status: invalid, message });
    });
  });
});

describe("FrameWriter", () => {
  it("writes an ACK from its parts exactly as encodeFrame writes the frame", () => {
    const writer = new FrameWriter();
    writer.writeAck(300, 2, scoreActions);
    expect(writer.flush().toString("hex")).toBe(scoreWire.toString("hex"));
  });

  it("writes an ACK with ABORT and refuses other flags", () => {
    const writer = new FrameWriter();
    writer.writeAck(3, 1, [], FrameFlags.FIN | FrameFlags.ABORT);
    expect(decodeFrame(writer.flush()).flags).toBe(FrameFlags.FIN | FrameFlags.ABORT);
    expectSpopError(() => writer.writeAck(3, 1, [], 0), {
      status: invalid,
      message: /FIN, or FIN and ABORT/,
    });
  });

  it("puts a batch of ACKs in one buffer, back to back", () => {
    const writer = new FrameWriter();
    const ids = Array.from({ length: 100 }, (_, i) => i * 7);
    for (const streamId of ids) writer.writeAck(streamId, 1, scoreActions);
    const expected = Buffer.concat(
      ids.map((streamId) =>
        wireFrame({
          type: FrameType.ACK,
          streamId,
          frameId: 1,
          payload: scoreWire.subarray(4 + 1 + 4 + 2 + 1).toString("hex"),
        }),
      ),
    );
    expect(writer.pendingBytes).toBe(expected.length);
    expect(writer.flush().equals(expected)).toBe(true);
    expect(writer.pendingBytes).toBe(0);
    expect(writer.flush()).toHaveLength(0);
  });

  it("keeps the frames of a batch written before a refused one", () => {
    const writer = new FrameWriter({ maxFrameSize: 256 });
    writer.writeAck(1, 1, scoreActions);
    expectSpopError(
      () => writer.writeAck(2, 1, [setVar(Scope.TXN, "v", TypedValue.string("x".repeat(300)))]),
      {
        status: DisconnectStatus.FRAME_TOO_BIG,
      },
    );
    expectSpopError(() => writer.writeAck(3, 1, [setVar(Scope.TXN, "v", TypedValue.int32(2 ** 40))]), {
      status: invalid,
    });
    writer.writeAck(4, 1, []);
    const reader = new FrameReader();
    reader.push(writer.flush());
    expect([...reader].map((frame) => frame.streamId)).toEqual([1, 4]);
  });

  it("never writes again over bytes it handed out, across many slabs", () => {
    const writer = new FrameWriter({ slabSize: 1024 });
    const handedOut: [number, Buffer][] = [];
    for (let i = 0; i < 2000; i++) {
      writer.writeAck(i, i % 7, [setVar(Scope.TXN, `v${i}`, TypedValue.int64(i * 1000))]);
      if (i % 3 === 0) handedOut.push([i, writer.flush()]);
    }
    handedOut.push([-1, writer.flush()]);
    let expectedId = 0;
    for (const [, bytes] of handedOut) {
      const reader = new FrameReader();
      reader.push(bytes);
      for (const frame of reader) {
        expect(frame).toEqual(
          ackFrame(expectedId, expectedId % 7, [
            setVar(Scope.TXN, `v${expectedId}`, TypedValue.int64(expectedId * 1000)),
          ]),
        );
        expectedId++;
      }
    }
    expect(expectedId).toBe(2000);
  });

  it("writes over released bytes, and never over bytes still in use", () => {
    const writer = new FrameWriter({ slabSize: 1024 });
    const ack = (id: number) => ackFrame(id, 1, [setVar(Scope.SESS, "v", TypedValue.int32(id))]);
    writer.writeAck(1, 1, ack(1).actions);
    const first = writer.flush();
    writer.release();
    writer.writeAck(2, 1, ack(2).actions);
    const second = writer.flush();
    // Released: the same bytes of the slab again.
    expect(second.buffer).toBe(first.buffer);
    expect(second.byteOffset).toBe(first.byteOffset);
    expect(decodeFrame(second)).toEqual(ack(2));
    // Not released: kept, whatever is released after it, until the writer moves to another slab.
    writer.writeAck(3, 1, ack(3).actions);
    const third = writer.flush();
    writer.writeAck(4, 1, ack(4).actions);
    writer.flush();
    writer.release();
    const later: Buffer[] = [];
    for (let id = 5; id < 200; id++) {
      writer.writeAck(id, 1, ack(id).actions);
      later.push(writer.flush());
      writer.release();
    }
    expect(decodeFrame(second)).toEqual(ack(2)); // never released since it was written: intact
    expect(decodeFrame(third)).toEqual(ack(3));
    expect(later.some((bytes) => bytes.buffer !== third.buffer)).toBe(true);
    expect(decodeFrame(later.at(-1) as Buffer)).toEqual(ack(199));
  });

  it("hands out a released Buffer again for the same bytes, and never one still in use", () => {
    const writer = new FrameWriter();
    const ack = (frameId: number) => ackFrame(300, frameId, scoreActions);
    writer.writeAck(300, 1, scoreActions);
    const first = writer.flush();
    writer.release();
    writer.writeAck(300, 2, scoreActions);
    const second = writer.flush();
    expect(second).toBe(first);
    expect(decodeFrame(second)).toEqual(ack(2));
    // `second` is not released: what follows gets Buffers of its own, released or not.
    writer.writeAck(300, 3, scoreActions);
    const third = writer.flush();
    writer.release();
    writer.writeAck(300, 4, scoreActions);
    const fourth = writer.flush();
    expect(new Set([second, third, fourth]).size).toBe(3);
    expect([second, third, fourth].map((bytes) => decodeFrame(bytes))).toEqual([ack(2), ack(3), ack(4)]);
    // Released, but the next bytes are of another size: a new Buffer.
    const other = new FrameWriter();
    other.writeAck(1, 1, []);
    const empty = other.flush();
    other.release();
    other.writeAck(1, 1, scoreActions);
    const full = other.flush();
    expect(full).not.toBe(empty);
    expect(decodeFrame(full)).toEqual(ackFrame(1, 1, scoreActions));
  });

  it("writes each variable's name as the names at each position change from ACK to ACK", () => {
    const rounds = [
      ["ip_score", "retry_after", "é", ""],
      ["ip_score", "retry_aftes", "e", "x".repeat(63)],
      [["ip", "score"].join("_"), "€uro", "x".repeat(64), "limit"],
      ["ok", "\udc00x"], // refused: nothing of it may stay behind
      Array.from({ length: 20 }, (_, i) => `v${i}`),
      Array.from({ length: 20 }, (_, i) => `v${19 - i}`),
      ["ok", "retry_after", "ip_score"],
    ];
    const asList = (actions: Action[]) => {
      const list = new ActionList();
      for (const action of actions) {
        if (action.type === ActionType.SET_VAR) list.setVar(action.scope, action.name, action.value);
        else list.unsetVar(action.scope, action.name);
      }
      return list;
    };
    for (const form of [(actions: Action[]) => actions, asList]) {
      const writer = new FrameWriter();
      for (const [round, names] of rounds.entries()) {
        const actions = names.map((name, i) =>
          i % 2 === 0 ? setVar(Scope.TXN, name, TypedValue.int32(round)) : unsetVar(Scope.TXN, name),
        );
        if (names.includes("\udc00x")) {
          expectSpopError(() => writer.writeAck(7, round, form(actions)), {
            status: invalid,
            message: /surrogate/,
          });
          continue;
        }
        writer.writeAck(7, round, form(actions));
        const payload = names
          .map((name, i) =>
            i % 2 === 0 ? wireSetVar(Scope.TXN, name, `020${round}`) : wireUnsetVar(Scope.TXN, name),
          )
          .join("");
        const wire = wireFrame({ type: FrameType.ACK, streamId: 7, frameId: round, payload });
        expect(writer.flush().toString("hex")).toBe(wire.toString("hex"));
        writer.release();
      }
    }
  });

  it("grows into a slab of its own for a frame larger than the slab", () => {
    const writer = new FrameWriter({ slabSize: 256, maxFrameSize: 100_000 });
    writer.writeAck(1, 1, [setVar(Scope.TXN, "v", TypedValue.binary(new Uint8Array(50_000).fill(7)))]);
    const frame = decodeFrame(writer.flush(), { maxFrameSize: 100_000 });
    expect(frame.type === FrameType.ACK && frame.actions[0]).toMatchObject({ name: "v" });
  });

  it("applies a new maximum frame size to the next frames", () => {
    const writer = new FrameWriter();
    writer.maxFrameSize = 256;
    expect(writer.maxFrameSize).toBe(256);
    expectSpopError(
      () => writer.writeAck(1, 1, [setVar(Scope.TXN, "v", TypedValue.string("y".repeat(250)))]),
      {
        status: DisconnectStatus.FRAME_TOO_BIG,
      },
    );
    expectSpopError(
      () => {
        writer.maxFrameSize = 0;
      },
      { status: DisconnectStatus.BAD_FRAME_SIZE },
    );
    expectSpopError(() => new FrameWriter({ slabSize: 16 }), { status: DisconnectStatus.UNKNOWN_ERROR });
  });
});

describe("fragmentFrame", () => {
  const notify = notifyFrame(77, 3, [
    { name: "big", args: [{ name: "text", value: TypedValue.string("z".repeat(1000)) }] },
  ]);

  it("cuts a NOTIFY into pieces that each fit, first typed NOTIFY, the rest UNSET, FIN on the last", () => {
    const pieces = fragmentFrame(notify, 256);
    expect(pieces.map((piece) => [piece.frameType, piece.flags])).toEqual([
      [FrameType.NOTIFY, 0],
      ...pieces.slice(1, -1).map(() => [FrameType.UNSET, 0]),
      [FrameType.UNSET, FrameFlags.FIN],
    ]);
    for (const piece of pieces) {
      expect(piece).toMatchObject({ streamId: 77, frameId: 3 });
      expect(encodeFrame(piece).length - 4).toBeLessThanOrEqual(256);
    }
    const payload = Buffer.concat(pieces.map((piece) => piece.payload));
    expect(payload.equals(encodeFrame(notify, { maxFrameSize: 4096 }).subarray(4 + 1 + 4 + 1 + 1))).toBe(
      true,
    );
  });

  it("ends with an empty FIN piece when the payload fits the first one", () => {
    const pieces = fragmentFrame(ackFrame(1, 1, []), 256);
    expect(pieces.map((piece) => [piece.frameType, piece.flags, piece.payload.length])).toEqual([
      [FrameType.ACK, 0, 0],
      [FrameType.UNSET, FrameFlags.FIN, 0],
    ]);
  });

  it("refuses a frame size that leaves no room for a payload", () => {
    expectSpopError(() => fragmentFrame(ackFrame(2 ** 40, 2 ** 40, []), 10), {
      status: invalid,
      message: /no room/,
    });
  });

  it("keeps the ids' varint in the header size", () => {
    const pieces = fragmentFrame(notifyFrame(2 ** 40, 2 ** 40, notify.messages), 256);
    for (const piece of pieces) expect(encodeFrame(piece).length - 4).toBeLessThanOrEqual(256);
    expect(pieces[0]?.payload.length).toBe(256 - 1 - 4 - 2 * (referenceVarint(2n ** 40n).length / 2));
  });
});
