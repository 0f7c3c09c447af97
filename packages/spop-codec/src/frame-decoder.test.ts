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
import { ActionType, DataType, DisconnectStatus, FrameFlags, FrameType, Scope } from "./constants.ts";
import { decodeFrame } from "./frame-decoder.ts";
import { encodeFrame } from "./frame-encoder.ts";

const notify = (payload: string, extra: { flags?: number; streamId?: number; frameId?: number } = {}) =>
  wireFrame({ type: FrameType.NOTIFY, streamId: 7, frameId: 1, payload, ...extra });
const ack = (payload: string) => wireFrame({ type: FrameType.ACK, streamId: 7, frameId: 1, payload });
const checkRate = wireMessage("check-rate", [wireItem("ip_src", "067f000001")]);
const invalid = DisconnectStatus.INVALID_FRAME;

describe("decodeFrame", () => {
  describe("decodes every frame type", () => {
    it("NOTIFY with several messages, empty argument names and no-argument messages", () => {
      const frame = decodeFrame(
        notify(
          wireMessage("first", [wireItem("", "0801" + "61"), wireItem("n", "042a")]) +
            wireMessage("second", []) +
            wireMessage("third", [wireItem("flag", "11")]),
        ),
      );
      expect(frame).toEqual({
        type: FrameType.NOTIFY,
        flags: FrameFlags.FIN,
        streamId: 7,
        frameId: 1,
        messages: [
          {
            name: "first",
            args: [
              { name: "", value: { type: DataType.STRING, value: "a" } },
              { name: "n", value: { type: DataType.INT64, value: 42 } },
            ],
          },
          { name: "second", args: [] },
          { name: "third", args: [{ name: "flag", value: { type: DataType.BOOL, value: true } }] },
        ],
      });
    });

    it("NOTIFY without messages", () => {
      expect(decodeFrame(notify(""))).toMatchObject({ type: FrameType.NOTIFY, messages: [] });
    });

    it("ACK with SET-VAR and UNSET-VAR in all five scopes", () => {
      const scopes = [Scope.PROC, Scope.SESS, Scope.TXN, Scope.REQ, Scope.RES];
      const frame = decodeFrame(
        ack(
          scopes
            .map((scope) => wireSetVar(scope, `s${scope}`, "0200") + wireUnsetVar(scope, `u${scope}`))
            .join(""),
        ),
      );
      expect(frame).toEqual({
        type: FrameType.ACK,
        flags: FrameFlags.FIN,
        streamId: 7,
        frameId: 1,
        actions: scopes.flatMap((scope) => [
          { type: ActionType.SET_VAR, scope, name: `s${scope}`, value: { type: DataType.INT32, value: 0 } },
          { type: ActionType.UNSET_VAR, scope, name: `u${scope}` },
        ]),
      });
    });

    it("ACK without actions", () => {
      expect(decodeFrame(ack(""))).toMatchObject({ type: FrameType.ACK, actions: [] });
    });

    it.each([
      [FrameType.HAPROXY_HELLO, "HAPROXY-HELLO"],
      [FrameType.AGENT_HELLO, "AGENT-HELLO"],
      [FrameType.HAPROXY_DISCONNECT, "HAPROXY-DISCONNECT"],
      [FrameType.AGENT_DISCONNECT, "AGENT-DISCONNECT"],
    ])("%i (%s) with its KV-list, unknown items included", (type, _name) => {
      const frame = decodeFrame(
        wireFrame({ type, payload: wireItem("status-code", "0304") + wireItem("x-unknown", "0902abcd") }),
      );
      expect(frame.type).toBe(type);
      expect("items" in frame && frame.items.map((item) => [item.name, item.value.type])).toEqual([
        ["status-code", DataType.UINT32],
        ["x-unknown", DataType.BINARY],
      ]);
    });

    it("ACK with ABORT (and FIN), which aborts a fragmented NOTIFY", () => {
      const frame = decodeFrame(
        wireFrame({ type: FrameType.ACK, flags: FrameFlags.FIN | FrameFlags.ABORT, streamId: 3, frameId: 2 }),
      );
      expect(frame).toEqual({ type: FrameType.ACK, flags: 3, streamId: 3, frameId: 2, actions: [] });
    });

    it("stream-ids and frame-ids up to 2^53 - 1", () => {
      const frame = decodeFrame(notify("", { streamId: Number.MAX_SAFE_INTEGER, frameId: 2 ** 40 }));
      expect(frame).toMatchObject({ streamId: Number.MAX_SAFE_INTEGER, frameId: 2 ** 40 });
    });

    it("fragments, only when fragmentation is enabled", () => {
      const first = wireFrame({ type: FrameType.NOTIFY, flags: 0, streamId: 5, frameId: 1, payload: "0a63" });
      const last = wireFrame({
        type: FrameType.UNSET,
        flags: FrameFlags.FIN,
        streamId: 5,
        frameId: 1,
        payload: "6865",
      });
      expect(decodeFrame(first, { fragmentation: true })).toEqual({
        type: FrameType.UNSET,
        frameType: FrameType.NOTIFY,
        flags: 0,
        streamId: 5,
        frameId: 1,
        payload: Buffer.from("0a63", "hex"),
      });
      expect(decodeFrame(last, { fragmentation: true })).toMatchObject({
        type: FrameType.UNSET,
        frameType: FrameType.UNSET,
        flags: FrameFlags.FIN,
        payload: Buffer.from("6865", "hex"),
      });
      const firstAck = wireFrame({ type: FrameType.ACK, flags: 0, streamId: 5, frameId: 1, payload: "01" });
      expect(decodeFrame(firstAck, { fragmentation: true })).toMatchObject({ frameType: FrameType.ACK });
    });

    it("keeps unknown flag bits so that the frame re-encodes to the same bytes", () => {
      const bytes = notify(checkRate, { flags: 0x80000001 });
      const frame = decodeFrame(bytes);
      expect(frame.flags).toBe(0x80000001);
      expect(encodeFrame(frame).equals(bytes)).toBe(true);
    });
  });

  describe("refuses bad input with the status to disconnect with", () => {
    it("a truncated frame", () => {
      const bytes = notify(checkRate);
      expectSpopError(() => decodeFrame(bytes.subarray(0, bytes.length - 1)), {
        status: invalid,
        field: "frame length",
        offset: 0,
        message: /truncated frame: length prefix says 31 bytes, 30 present/,
      });
      expectSpopError(() => decodeFrame(bytes.subarray(0, 3)), {
        status: invalid,
        message: /no length prefix/,
      });
    });

    it("bytes after the frame", () => {
      expectSpopError(() => decodeFrame(Buffer.concat([notify(checkRate), Buffer.of(0)])), {
        status: invalid,
        message: /1 bytes follow the frame/,
      });
    });

    it("a length prefix of 0", () => {
      expectSpopError(() => decodeFrame(Buffer.alloc(4)), {
        status: invalid,
        field: "frame length",
        offset: 0,
        message: /length prefix is 0/,
      });
    });

    it("a length prefix above the maximum frame size", () => {
      const bytes = notify(
        wireMessage("m", [wireItem("big", `09${referenceVarint(300n)}${"00".repeat(300)}`)]),
      );
      expectSpopError(() => decodeFrame(bytes, { maxFrameSize: 256 }), {
        status: DisconnectStatus.FRAME_TOO_BIG,
        field: "frame length",
        offset: 0,
        message: /length prefix 317 exceeds the maximum frame size 256/,
      });
      expect(decodeFrame(bytes, { maxFrameSize: 317 }).type).toBe(FrameType.NOTIFY);
    });

    it("a varint longer than 10 bytes", () => {
      const bytes = Buffer.from(`0000001103 00000001 ffffffffffffffffffffff 01`.replaceAll(" ", ""), "hex");
      expectSpopError(() => decodeFrame(bytes), {
        status: invalid,
        field: "stream-id",
        offset: 9,
        message: /varint longer than 10 bytes/,
      });
    });

    it("a varint running past the end of the frame", () => {
      expectSpopError(() => decodeFrame(Buffer.from("000000070300000001 07f0".replace(" ", ""), "hex")), {
        status: invalid,
        field: "frame-id",
        offset: 10,
        message: /runs past the end of the frame/,
      });
      expectSpopError(() => decodeFrame(notify(wireMessage("m", [wireItem("n", "04f080")]))), {
        status: invalid,
        field: "argument value",
        message: /runs past the end/,
      });
    });

    it("a string length past the end of the frame", () => {
      expectSpopError(() => decodeFrame(notify("0a636865636b")), {
        status: invalid,
        field: "message name",
        offset: 11,
        message: /length 10 runs past the end of the frame \(5 bytes left\)/,
      });
      expectSpopError(() => decodeFrame(notify(wireMessage("m", [wireItem("s", "08056869")]))), {
        status: invalid,
        field: "argument value",
        message: /length 5 runs past the end/,
      });
    });

    it.each([4, 5, 100, 104, 255])("unknown frame type %i", (type) => {
      expectSpopError(() => decodeFrame(wireFrame({ type })), {
        status: invalid,
        field: "frame type",
        offset: 4,
        message: new RegExp(`unknown frame type ${type}`),
      });
    });

    it("an unknown data type in a NOTIFY argument", () => {
      expectSpopError(() => decodeFrame(notify(wireMessage("m", [wireItem("x", "0a")]))), {
        status: invalid,
        field: "argument value",
        message: /unknown data type 10/,
      });
    });

    it.each([0, 3, 103])("unknown action type %i", (type) => {
      expectSpopError(
        () => decodeFrame(ack(`${type.toString(16).padStart(2, "0")}0301${wireString("v")}00`)),
        {
          status: invalid,
          field: "action type",
          offset: 11,
          message: new RegExp(`unknown action type ${type}`),
        },
      );
    });

    it.each([5, 255])("unknown variable scope %i", (scope) => {
      expectSpopError(() => decodeFrame(ack(wireSetVar(scope, "v", "00"))), {
        status: invalid,
        field: "variable scope",
        offset: 13,
        message: new RegExp(`unknown scope ${scope}`),
      });
    });

    it("a SET-VAR or UNSET-VAR with the wrong number of arguments", () => {
      expectSpopError(() => decodeFrame(ack(`010201${wireString("v")}`)), {
        status: invalid,
        field: "nb-args",
        message: /SET-VAR takes 3 arguments, not 2/,
      });
      expectSpopError(() => decodeFrame(ack(`020301${wireString("v")}00`)), {
        status: invalid,
        field: "nb-args",
        message: /UNSET-VAR takes 2 arguments, not 3/,
      });
    });

    it("a NOTIFY whose nb-args is larger than what follows", () => {
      expectSpopError(() => decodeFrame(notify(wireMessage("check-rate", [wireItem("ip_src", "00")], 3))), {
        status: invalid,
        field: "nb-args",
        offset: 22,
        message: /message "check-rate" announces 3 arguments but the frame ends after 1/,
      });
      expectSpopError(() => decodeFrame(notify(wireString("m"))), { status: invalid, field: "nb-args" });
    });

    it("frames without FIN when fragmentation was not negotiated (status 10)", () => {
      for (const type of [FrameType.NOTIFY, FrameType.ACK]) {
        expectSpopError(() => decodeFrame(wireFrame({ type, flags: 0, streamId: 1, frameId: 1 })), {
          status: DisconnectStatus.FRAGMENTATION_NOT_SUPPORTED,
          field: "flags",
          offset: 5,
          message: /without FIN, but fragmentation was not negotiated/,
        });
      }
      expectSpopError(() => decodeFrame(wireFrame({ type: FrameType.UNSET, streamId: 1, frameId: 1 })), {
        status: DisconnectStatus.FRAGMENTATION_NOT_SUPPORTED,
        field: "frame type",
        message: /UNSET \(fragment\) frame/,
      });
    });

    it.each([
      FrameType.HAPROXY_HELLO,
      FrameType.AGENT_HELLO,
      FrameType.HAPROXY_DISCONNECT,
      FrameType.AGENT_DISCONNECT,
    ])("frame type %i without FIN, even with fragmentation (status 10)", (type) => {
      expectSpopError(() => decodeFrame(wireFrame({ type, flags: 0 }), { fragmentation: true }), {
        status: DisconnectStatus.FRAGMENTATION_NOT_SUPPORTED,
        message: /frames cannot be fragmented/,
      });
    });

    it("ABORT without FIN", () => {
      expectSpopError(() => decodeFrame(notify("", { flags: FrameFlags.ABORT }), { fragmentation: true }), {
        status: invalid,
        field: "flags",
        offset: 5,
        message: /ABORT is set without FIN/,
      });
    });

    it.each([
      [FrameType.HAPROXY_HELLO, 1, 0],
      [FrameType.HAPROXY_HELLO, 0, 1],
      [FrameType.AGENT_HELLO, 2, 2],
      [FrameType.HAPROXY_DISCONNECT, 0, 300],
    ])("frame type %i with stream-id %i and frame-id %i", (type, streamId, frameId) => {
      expectSpopError(() => decodeFrame(wireFrame({ type, streamId, frameId })), {
        status: invalid,
        field: "stream-id",
        offset: 9,
        message: /frames carry stream-id 0 and frame-id 0/,
      });
    });

    it("a stream-id above 2^53 - 1", () => {
      expectSpopError(() => decodeFrame(notify("", { streamId: 2 ** 53 })), { status: invalid });
      const bytes = Buffer.from(
        `00000010 03 00000001 ${referenceVarint(2n ** 60n)} 01`.replaceAll(" ", ""),
        "hex",
      );
      bytes.writeUInt32BE(bytes.length - 4);
      expectSpopError(() => decodeFrame(bytes), {
        status: invalid,
        field: "stream-id",
        message: /1152921504606846976 exceeds 2\^53 - 1/,
      });
    });

    it.each([
      ["message name", notify(`02c328${"00"}`)],
      ["argument name", notify(`016d01${"02ff41"}00`)],
      ["KV name", wireFrame({ type: FrameType.HAPROXY_HELLO, payload: "03e282" + "00" })],
      ["variable name", ack("010301" + "02c0af" + "00")],
    ])("non-UTF-8 bytes in a %s", (field, bytes) => {
      expectSpopError(() => decodeFrame(bytes), { status: invalid, field, message: /not valid UTF-8/ });
    });

    it("a non-UTF-8 name longer than the names it remembers", () => {
      const name = `${Buffer.from("a".repeat(70)).toString("hex")}ff`;
      expectSpopError(() => decodeFrame(notify(`${referenceVarint(71n)}${name}00`)), {
        status: invalid,
        field: "message name",
        offset: 12,
        message: /not valid UTF-8/,
      });
    });
  });
});
