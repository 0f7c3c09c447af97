import { describe, expect, it } from "vitest";
import { expectSpopError } from "../test/expect-spop-error.ts";
import { referenceVarint, wireFrame, wireItem, wireMessage, wireSetVar } from "../test/wire.ts";
import { DataType, DisconnectStatus, FrameType, Scope } from "./constants.ts";
import { decodeFrame } from "./frame-decoder.ts";
import { encodeFrame } from "./frame-encoder.ts";
import { ackFrame, setVar } from "./frames.ts";
import { type Action, TypedValue as Typed, type TypedValue } from "./types.ts";

/** An ACK setting `txn.v` to a value given as typed-data hex. */
function ackWith(typedHex: string): Buffer {
  return wireFrame({
    type: FrameType.ACK,
    streamId: 1,
    frameId: 1,
    payload: wireSetVar(Scope.TXN, "v", typedHex),
  });
}

function encodeValue(value: TypedValue): Buffer {
  return encodeFrame(ackFrame(1, 1, [setVar(Scope.TXN, "v", value)]));
}

function decodeValue(bytes: Buffer): TypedValue {
  const frame = decodeFrame(bytes);
  if (frame.type !== FrameType.ACK) throw new Error("not an ACK");
  const action = frame.actions[0] as Action;
  if (!("value" in action)) throw new Error("not a SET-VAR");
  return action.value;
}

const v = (n: bigint) => referenceVarint(n);

/** [description, value, typed-data hex] — both directions must agree. */
const table: [string, TypedValue, string][] = [
  ["NULL", Typed.null, "00"],
  ["BOOL true (flag 0x10)", Typed.bool(true), "11"],
  ["BOOL false", Typed.bool(false), "01"],
  ["INT32 0", Typed.int32(0), "0200"],
  ["INT32 2^31 - 1", Typed.int32(2 ** 31 - 1), `02${v(2n ** 31n - 1n)}`],
  ["INT32 -1 (two's complement, 10 bytes)", Typed.int32(-1), "02fff0fefefefefefefe0e"],
  ["INT32 -2^31", Typed.int32(-(2 ** 31)), `02${v(-(2n ** 31n))}`],
  ["UINT32 16380", Typed.uint32(16380), "03fcf006"],
  ["UINT32 2^32 - 1", Typed.uint32(2 ** 32 - 1), "03fff0fefe7e"],
  ["INT64 42", Typed.int64(42), "042a"],
  ["INT64 -1", Typed.int64(-1), "04fff0fefefefefefefe0e"],
  ["INT64 2^53 - 1 (a number)", Typed.int64(2 ** 53 - 1), `04${v(2n ** 53n - 1n)}`],
  ["INT64 2^53 (a bigint)", Typed.int64(2n ** 53n), `04${v(2n ** 53n)}`],
  ["INT64 -2^63", Typed.int64(-(2n ** 63n)), `04${v(-(2n ** 63n))}`],
  ["INT64 2^63 - 1", Typed.int64(2n ** 63n - 1n), `04${v(2n ** 63n - 1n)}`],
  ["UINT64 0", Typed.uint64(0), "0500"],
  ["UINT64 2^64 - 1", Typed.uint64(2n ** 64n - 1n), "05fff0fefefefefefefe0e"],
  ["IPV4 192.0.2.1", Typed.ipv4("192.0.2.1"), "06c0000201"],
  ["IPV6 2001:db8::1", Typed.ipv6("2001:db8::1"), "0720010db8000000000000000000000001"],
  ["STRING empty", Typed.string(""), "0800"],
  ["STRING UTF-8", Typed.string("héllo ✓"), `08${v(10n)}68c3a96c6c6f20e29c93`],
  ["STRING of 240 bytes (2-byte length)", Typed.string("x".repeat(240)), `08f000${"78".repeat(240)}`],
  ["BINARY", Typed.binary(Uint8Array.of(0, 1, 255)), "090300 01ff".replace(" ", "")],
  ["BINARY empty", Typed.binary(new Uint8Array(0)), "0900"],
];

function comparable(value: TypedValue): unknown {
  if (value.type === DataType.IPV4 || value.type === DataType.IPV6 || value.type === DataType.BINARY) {
    return { type: value.type, hex: Buffer.from(value.value).toString("hex") };
  }
  return value;
}

describe("typed data", () => {
  it.each(table)("encodes %s", (_name, value, hex) => {
    expect(encodeValue(value).toString("hex")).toBe(ackWith(hex).toString("hex"));
  });

  it.each(table)("decodes %s", (_name, value, hex) => {
    expect(comparable(decodeValue(ackWith(hex)))).toEqual(comparable(value));
  });

  it("decodes 64-bit integers to a number when safe and to a bigint otherwise", () => {
    expect(decodeValue(ackWith(`04${v(2n ** 53n - 1n)}`))).toEqual({
      type: DataType.INT64,
      value: 2 ** 53 - 1,
    });
    expect(decodeValue(ackWith(`04${v(-(2n ** 53n - 1n))}`))).toEqual({
      type: DataType.INT64,
      value: -(2 ** 53 - 1),
    });
    expect(decodeValue(ackWith(`04${v(-(2n ** 53n))}`))).toEqual({
      type: DataType.INT64,
      value: -(2n ** 53n),
    });
    expect(decodeValue(ackWith(`05${v(2n ** 53n)}`))).toEqual({ type: DataType.UINT64, value: 2n ** 53n });
  });

  it("stores a safe bigint given to the 64-bit constructors as a number, as the decoder does", () => {
    expect(Typed.int64(5n)).toEqual({ type: DataType.INT64, value: 5 });
    expect(Typed.uint64(2n ** 60n)).toEqual({ type: DataType.UINT64, value: 2n ** 60n });
  });

  it.each([10, 11, 12, 13, 14, 15])("refuses unknown data type %i", (type) => {
    expectSpopError(() => decodeValue(ackWith(type.toString(16).padStart(2, "0"))), {
      status: DisconnectStatus.INVALID_FRAME,
      field: "variable value",
      offset: 16,
      message: new RegExp(`unknown data type ${type}`),
    });
  });

  it.each(["20", "31", "90", "12", "f8"])("refuses reserved flag bits in typed-data byte %s", (head) => {
    expectSpopError(() => decodeValue(ackWith(`${head}00`)), {
      status: DisconnectStatus.INVALID_FRAME,
      message: /reserved typed-data flags/,
    });
  });

  it("refuses integers outside their type's range", () => {
    expectSpopError(() => decodeValue(ackWith(`02${v(2n ** 31n)}`)), {
      status: DisconnectStatus.INVALID_FRAME,
      message: /INT32 value 2147483648 out of range/,
    });
    expectSpopError(() => decodeValue(ackWith(`02${v(-(2n ** 31n) - 1n)}`)), {
      status: DisconnectStatus.INVALID_FRAME,
      message: /INT32 value .* out of range/,
    });
    expectSpopError(() => decodeValue(ackWith(`03${v(2n ** 32n)}`)), {
      status: DisconnectStatus.INVALID_FRAME,
      message: /UINT32 value 4294967296 out of range/,
    });
  });

  it("refuses to encode values their type cannot carry", () => {
    const cases: [TypedValue, RegExp][] = [
      [Typed.int32(2 ** 31), /INT32 value 2147483648 out of range/],
      [Typed.int32(1.5), /INT32 value 1.5 out of range/],
      [Typed.uint32(-1), /UINT32 value -1 out of range/],
      [Typed.uint32(2 ** 32), /UINT32 value 4294967296 out of range/],
      [Typed.int64(2n ** 63n), /INT64 value .* out of range/],
      [Typed.int64(2 ** 53), /not a safe integer/],
      [Typed.uint64(-1), /UINT64 value -1 is negative/],
      [Typed.uint64(2n ** 64n), /does not fit 64 bits/],
      [{ type: DataType.IPV4, value: new Uint8Array(5) }, /IPV4 value has 4 bytes/],
      [{ type: DataType.IPV6, value: new Uint8Array(4) }, /IPV6 value has 16 bytes/],
      [Typed.string("\ud800"), /lone UTF-16 surrogate/],
      [{ type: 12 } as unknown as TypedValue, /unknown data type 12/],
    ];
    for (const [value, message] of cases) {
      expectSpopError(() => encodeValue(value), {
        status: DisconnectStatus.INVALID_FRAME,
        field: "variable value",
        message,
      });
    }
  });

  it("keeps the exact bytes of a STRING that is not UTF-8, so that it re-encodes unchanged", () => {
    const wire = ackWith("0803ff41fe");
    const value = decodeValue(wire);
    expect(value.type).toBe(DataType.STRING);
    if (value.type !== DataType.STRING) return;
    expect(value.value).toBe("\ufffdA\ufffd");
    expect(Buffer.from(value.bytes ?? []).toString("hex")).toBe("ff41fe");
    expect(encodeValue(value).equals(wire)).toBe(true);
  });

  it("decodes a valid UTF-8 STRING without a bytes copy", () => {
    const text = "ünïcödé, and a tail long enough to leave the short-string path";
    const bytes = Buffer.from(text);
    const value = decodeValue(ackWith(`08${v(BigInt(bytes.length))}${bytes.toString("hex")}`));
    expect(value).toEqual({ type: DataType.STRING, value: text });
  });

  it("hands out BINARY values as views into the decoded bytes and IP addresses as copies", () => {
    const wire = wireFrame({
      type: FrameType.NOTIFY,
      streamId: 1,
      frameId: 1,
      payload: wireMessage("m", [wireItem("b", "0902abcd"), wireItem("ip", "060a000001")]),
    });
    const frame = decodeFrame(wire);
    if (frame.type !== FrameType.NOTIFY) throw new Error("not a NOTIFY");
    const [binary, ip] = (frame.messages[0]?.args ?? []).map((arg) => arg.value);
    wire.fill(0);
    expect(binary?.type === DataType.BINARY && Buffer.from(binary.value).toString("hex")).toBe("0000");
    expect(ip?.type === DataType.IPV4 && Buffer.from(ip.value).toString("hex")).toBe("0a000001");
  });

  it("accepts IPv6 text in every RFC 4291 form and refuses non-addresses", () => {
    expect(Buffer.from(Typed.ipv6("::ffff:192.0.2.1").value).toString("hex")).toBe(
      "00000000000000000000ffffc0000201",
    );
    expect(Buffer.from(Typed.ipv6("::").value).toString("hex")).toBe("0".repeat(32));
    expect(Buffer.from(Typed.ipv6("1:2:3:4:5:6:7:8").value).toString("hex")).toBe(
      "00010002000300040005000600070008",
    );
    expectSpopError(() => Typed.ipv4("256.0.0.1"), {
      status: DisconnectStatus.INVALID_FRAME,
      message: /no IPv4 address/,
    });
    expectSpopError(() => Typed.ipv4("1.2.3"), {
      status: DisconnectStatus.INVALID_FRAME,
      message: /no IPv4 address/,
    });
    expectSpopError(() => Typed.ipv6("1::2::3"), {
      status: DisconnectStatus.INVALID_FRAME,
      message: /no IPv6 address/,
    });
    expectSpopError(() => Typed.ipv6("fe80::1%eth0"), { status: DisconnectStatus.INVALID_FRAME });
  });
});
