import { describe, expect, it } from "vitest";
import { expectSpopError } from "../test/expect-spop-error.ts";
import { DisconnectStatus } from "./constants.ts";
import { decodeVarint, encodeVarint, varintLength } from "./varint.ts";

/** The vectors of the protocol notes (checked against HAProxy's encode_varint). */
const vectors: [number | bigint, string][] = [
  [0, "00"],
  [239, "ef"],
  [240, "f000"],
  [2287, "ff7f"],
  [2288, "f08000"],
  [16380, "fcf006"],
  [16384, "f0f106"],
  [264432, "f0808000"],
  [2 ** 32 - 1, "fff0fefe7e"],
  [2n ** 64n - 1n, "fff0fefefefefefefe0e"],
];

/** The first value of each encoded length, from SPOE.txt's table and its continuation. */
const lengthBoundaries: [number | bigint, number][] = [
  [239, 1],
  [240, 2],
  [2287, 2],
  [2288, 3],
  [264431, 3],
  [264432, 4],
  [33818863, 4],
  [33818864, 5],
  [4328786159, 5],
  [4328786160, 6],
];

describe("varint", () => {
  it.each(vectors)("encodes %s as %s", (value, hex) => {
    expect(encodeVarint(value).toString("hex")).toBe(hex);
  });

  it.each(vectors)("decodes %s from %s", (value, hex) => {
    const decoded = decodeVarint(Buffer.from(hex, "hex"));
    expect(decoded.length).toBe(hex.length / 2);
    expect(BigInt(decoded.value)).toBe(BigInt(value));
  });

  it("encodes -1 as the 10-byte two's complement and reads it back signed", () => {
    expect(encodeVarint(-1).toString("hex")).toBe("fff0fefefefefefefe0e");
    expect(encodeVarint(-1n).toString("hex")).toBe("fff0fefefefefefefe0e");
    expect(decodeVarint(Buffer.from("fff0fefefefefefefe0e", "hex"), 0, { signed: true }).value).toBe(-1);
    expect(decodeVarint(Buffer.from("fff0fefefefefefefe0e", "hex")).value).toBe(2n ** 64n - 1n);
  });

  it("round-trips the extremes of int64 and uint64", () => {
    for (const value of [-(2n ** 63n), 2n ** 63n - 1n, -(2n ** 53n), 2n ** 53n]) {
      const decoded = decodeVarint(encodeVarint(value), 0, { signed: true });
      expect(BigInt(decoded.value)).toBe(value);
    }
    expect(decodeVarint(encodeVarint(2n ** 64n - 1n)).value).toBe(2n ** 64n - 1n);
  });

  it("yields a number up to 2^53 - 1 and a bigint from 2^53 on", () => {
    expect(decodeVarint(encodeVarint(Number.MAX_SAFE_INTEGER)).value).toBe(Number.MAX_SAFE_INTEGER);
    expect(decodeVarint(encodeVarint(2n ** 53n)).value).toBe(2n ** 53n);
    expect(decodeVarint(encodeVarint(-(2 ** 53 - 1)), 0, { signed: true }).value).toBe(-(2 ** 53 - 1));
    expect(decodeVarint(encodeVarint(-(2n ** 53n)), 0, { signed: true }).value).toBe(-(2n ** 53n));
  });

  it.each(lengthBoundaries)("takes the right number of bytes at %s (%i)", (value, length) => {
    expect(encodeVarint(value)).toHaveLength(length);
    expect(varintLength(value)).toBe(length);
    expect(decodeVarint(encodeVarint(value)).value).toBe(value);
  });

  it("round-trips every value around each power of two", () => {
    for (let bit = 0; bit <= 64; bit++) {
      for (const delta of [-1n, 0n, 1n]) {
        const value = (1n << BigInt(bit)) + delta;
        if (value < 0n || value > 2n ** 64n - 1n) continue;
        const bytes = encodeVarint(value);
        expect(bytes.length).toBeLessThanOrEqual(10);
        const decoded = decodeVarint(bytes);
        expect(BigInt(decoded.value)).toBe(value);
        expect(decoded.length).toBe(bytes.length);
      }
    }
  });

  it("decodes at an offset and reports how many bytes it read", () => {
    expect(decodeVarint(Buffer.from("aabbf08000cc", "hex"), 2)).toEqual({ value: 2288, length: 3 });
  });

  it("refuses a varint longer than 10 bytes", () => {
    expectSpopError(() => decodeVarint(Buffer.from("ffffffffffffffffffff80", "hex")), {
      status: DisconnectStatus.INVALID_FRAME,
      message: /varint at offset 0: varint longer than 10 bytes/,
    });
  });

  it("refuses a varint that runs past the end", () => {
    expectSpopError(() => decodeVarint(Buffer.from("f080", "hex")), {
      status: DisconnectStatus.INVALID_FRAME,
      message: /runs past the end/,
    });
    expectSpopError(() => decodeVarint(Buffer.alloc(0)), {
      status: DisconnectStatus.INVALID_FRAME,
      message: /runs past the end/,
    });
    expectSpopError(() => decodeVarint(Buffer.from("fff0fefefefefefefe", "hex")), {
      status: DisconnectStatus.INVALID_FRAME,
      message: /runs past the end/,
    });
  });

  it("refuses a 10-byte varint above 2^64 - 1", () => {
    expectSpopError(() => decodeVarint(Buffer.from("fff0fefefefefefefe0f", "hex")), {
      status: DisconnectStatus.INVALID_FRAME,
      message: /exceeds 64 bits/,
    });
  });

  it("refuses to encode what does not fit 64 bits, and fractions", () => {
    expectSpopError(() => encodeVarint(2n ** 64n), {
      status: DisconnectStatus.INVALID_FRAME,
      message: /does not fit 64 bits/,
    });
    expectSpopError(() => encodeVarint(-(2n ** 63n) - 1n), {
      status: DisconnectStatus.INVALID_FRAME,
      message: /does not fit 64 bits/,
    });
    expectSpopError(() => encodeVarint(1.5), {
      status: DisconnectStatus.INVALID_FRAME,
      message: /not a safe integer/,
    });
    expectSpopError(() => encodeVarint(2 ** 60), {
      status: DisconnectStatus.INVALID_FRAME,
      message: /not a safe integer/,
    });
    expectSpopError(() => varintLength(0.5), {
      status: DisconnectStatus.INVALID_FRAME,
      message: /not a safe integer/,
    });
  });

  it("refuses an offset outside the bytes", () => {
    expectSpopError(() => decodeVarint(Buffer.from("00", "hex"), 2), {
      status: DisconnectStatus.INVALID_FRAME,
      message: /outside/,
    });
    expectSpopError(() => decodeVarint(Buffer.from("00", "hex"), -1), {
      status: DisconnectStatus.INVALID_FRAME,
      message: /outside/,
    });
  });
});
