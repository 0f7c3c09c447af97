/**
 * HAProxy's variable-length integers (the "peers" encoding, not LEB128), for the full unsigned
 * 64-bit range; signed values travel as their 64-bit two's complement.
 *
 * Values below 240 take one byte. Above, the first byte carries the low 4 bits with its top
 * nibble set, and each following byte 7 more bits, high bit set while more follow; each step
 * subtracts what the marker bits already account for, so every value has exactly one encoding.
 */

import { BufferReader } from "./buffer-reader.ts";
import { BufferWriter } from "./buffer-writer.ts";
import { invalidFrame } from "./errors.ts";
import { asBuffer } from "./frame-decoder.ts";

const scratch = new BufferWriter(1024, Number.MAX_SAFE_INTEGER);
const reader = new BufferReader();

/**
 * The varint bytes of an integer in −2^63 … 2^64 − 1 (negative values as their 64-bit two's
 * complement, so `-1` takes 10 bytes). Throws {@link SpopError} for anything else.
 *
 * @example
 * ```ts
 * encodeVarint(2288); // <Buffer f0 80 00>
 * ```
 */
export function encodeVarint(value: number | bigint): Buffer {
  scratch.frameStart = scratch.pos;
  scratch.integer(value, "varint");
  return scratch.take();
}

/** Options of {@link decodeVarint}. */
export interface DecodeVarintOptions {
  /** Read the value as a 64-bit two's complement (INT32/INT64 typed data). Default false. */
  signed?: boolean;
}

/**
 * Decodes the varint at `offset`: its value (a `number` when it is a safe integer, a `bigint`
 * otherwise) and how many bytes it took. Throws {@link SpopError} when it runs past the end of
 * `bytes`, is longer than 10 bytes or exceeds 64 bits.
 */
export function decodeVarint(
  bytes: Uint8Array,
  offset = 0,
  options: DecodeVarintOptions = {},
): { value: number | bigint; length: number } {
  if (!Number.isInteger(offset) || offset < 0 || offset > bytes.length) {
    throw invalidFrame("varint", undefined, `offset ${offset} is outside the ${bytes.length} bytes`);
  }
  reader.reset(asBuffer(bytes), offset, bytes.length, 0);
  const value = options.signed ? reader.int64("varint") : reader.varint("varint");
  return { value, length: reader.pos - offset };
}

/** How many bytes the varint of `value` takes (same domain as {@link encodeVarint}). */
export function varintLength(value: number | bigint): number {
  return encodeVarint(value).length;
}
