/**
 * Appends SPOP primitives to a slab: a large Buffer that frames are written into back to back
 * and handed out as views. Bytes handed out are never written again — when the slab is full,
 * writing moves on to a new one — so a view stays valid for as long as the caller holds it
 * (e.g. until the socket has written it). Internal to the encoder.
 */

import type { FastBuffer } from "./buffer-reader.ts";
import { DataType, DisconnectStatus } from "./constants.ts";
import { invalidFrame, SpopError } from "./errors.ts";
import { INT32_MAX, INT32_MIN, INT64_MAX, INT64_MIN, UINT32_MAX, UINT64_MAX } from "./limits.ts";
import type { TypedValue } from "./types.ts";

/** Strings shorter than this take under 240 UTF-8 bytes, so their length varint is one byte. */
const SHORT_STRING = 80;
/** Variable names are remembered for the first this many actions of an ACK… */
const NAME_POSITIONS = 16;
/** …when shorter than this (and ASCII). */
const NAME_BYTES = 64;

interface WellFormed {
  isWellFormed(): boolean;
}

export class BufferWriter {
  slab: FastBuffer;
  /** Next byte to write. */
  pos = 0;
  /** Start of the bytes not yet handed out. */
  mark = 0;
  /** Start of the frame being written (its length prefix). */
  frameStart = 0;
  /** Where the last handed-out bytes start; bytes before `done` were all declared no longer used. */
  #lastTaken = 0;
  #done = 0;
  /** The Buffer the last `take()` handed out, while it is over the current slab. */
  #taken: Buffer | undefined;
  /**
   * A released Buffer over the start of the slab: the next `take()` hands it out again when it
   * covers exactly the same bytes (an agent's ACKs are mostly of one size), instead of a new one.
   */
  #spare: Buffer | undefined;
  /** The variable name last written at each action position, and its bytes (`NAME_BYTES` each). */
  readonly #names: string[] = new Array<string>(NAME_POSITIONS).fill("");
  readonly #nameBytes = new Uint8Array(NAME_POSITIONS * NAME_BYTES);
  /** The largest LENGTH a frame may reach. */
  maxFrameSize: number;
  readonly slabSize: number;

  constructor(slabSize: number, maxFrameSize: number) {
    this.slabSize = slabSize;
    this.maxFrameSize = maxFrameSize;
    this.slab = Buffer.allocUnsafeSlow(slabSize) as FastBuffer;
  }

  /** Makes room for `count` more bytes, moving the unhanded bytes to a new slab if needed. */
  ensure(count: number): void {
    if (this.pos + count <= this.slab.length) return;
    const pending = this.pos - this.mark;
    const next = Buffer.allocUnsafeSlow(Math.max(this.slabSize, (pending + count) * 2)) as FastBuffer;
    this.slab.copy(next, 0, this.mark, this.pos);
    this.frameStart -= this.mark;
    this.mark = 0;
    this.pos = pending;
    this.slab = next;
    this.#lastTaken = 0;
    this.#done = 0;
    this.#taken = undefined;
    this.#spare = undefined;
  }

  /** Hands out the bytes written since the last call. */
  take(): Buffer {
    const mark = this.mark;
    const pos = this.pos;
    const spare = this.#spare;
    const out =
      spare !== undefined && mark === 0 && spare.length === pos ? spare : this.slab.subarray(mark, pos);
    this.#spare = undefined;
    this.#taken = out;
    this.#lastTaken = mark;
    this.mark = pos;
    return out;
  }

  /**
   * The bytes of the last `take()` are no longer used. When every byte handed out from this
   * slab is, and nothing is being written, the next bytes go to the start of the slab again.
   */
  release(): void {
    if (this.#lastTaken !== this.#done) return; // an earlier take is still in use
    this.#done = this.mark;
    if (this.pos !== this.mark) return;
    // Nothing handed out from this slab is used any more; the last Buffer, when it was the
    // only one (it starts at the slab's start), can be handed out again.
    this.#spare = this.#lastTaken === 0 ? this.#taken : undefined;
    this.#taken = undefined;
    this.pos = 0;
    this.mark = 0;
    this.frameStart = 0;
    this.#lastTaken = 0;
    this.#done = 0;
  }

  u8(value: number): void {
    this.slab[this.pos++] = value;
  }

  u32(value: number): void {
    const s = this.slab;
    const p = this.pos;
    s[p] = value >>> 24;
    s[p + 1] = (value >>> 16) & 0xff;
    s[p + 2] = (value >>> 8) & 0xff;
    s[p + 3] = value & 0xff;
    this.pos = p + 4;
  }

  /** ACTION-TYPE, NB-ARGS and VAR-SCOPE in one go. */
  actionHeader(type: number, count: number, scope: number): void {
    this.ensure(3);
    const s = this.slab;
    const p = this.pos;
    s[p] = type;
    s[p + 1] = count;
    s[p + 2] = scope;
    this.pos = p + 3;
  }

  /** Writes a u32 at `at` without moving the cursor (the length prefix). */
  u32At(at: number, value: number): void {
    const s = this.slab;
    s[at] = value >>> 24;
    s[at + 1] = (value >>> 16) & 0xff;
    s[at + 2] = (value >>> 8) & 0xff;
    s[at + 3] = value & 0xff;
  }

  /** The varint of a safe non-negative integer; the caller has ensured 10 bytes. */
  uvarint(value: number): void {
    const s = this.slab;
    let p = this.pos;
    if (value < 240) {
      s[p] = value;
      this.pos = p + 1;
      return;
    }
    s[p++] = 0xf0 | (value % 16);
    let x = Math.floor((value - 240) / 16);
    while (x >= 128) {
      s[p++] = 0x80 | (x % 128);
      x = Math.floor((x - 128) / 128);
    }
    s[p++] = x;
    this.pos = p;
  }

  /** The varint of an unsigned 64-bit bigint; the caller has ensured 10 bytes. */
  bigVarint(value: bigint): void {
    if (value <= BigInt(Number.MAX_SAFE_INTEGER)) {
      this.uvarint(Number(value));
      return;
    }
    const s = this.slab;
    let p = this.pos;
    s[p++] = 0xf0 | Number(value & 0x0fn);
    let x = (value - 240n) >> 4n;
    while (x >= 128n) {
      s[p++] = 0x80 | Number(x & 0x7fn);
      x = (x - 128n) >> 7n;
    }
    s[p++] = Number(x);
    this.pos = p;
  }

  /** Any integer in −2^63..2^64−1, negative ones as their 64-bit two's complement. */
  integer(value: number | bigint, field: string): void {
    this.ensure(10);
    if (typeof value === "number") {
      if (!Number.isSafeInteger(value))
        throw invalidFrame(field, undefined, `${value} is not a safe integer`);
      if (value >= 0) this.uvarint(value);
      else this.bigVarint(BigInt.asUintN(64, BigInt(value)));
      return;
    }
    if (value < INT64_MIN || value > UINT64_MAX)
      throw invalidFrame(field, undefined, `${value} does not fit 64 bits`);
    this.bigVarint(BigInt.asUintN(64, value));
  }

  /** The LENGTH of the frame being written so far. */
  frameLength(): number {
    return this.pos - this.frameStart - 4;
  }

  /** Refuses, before copying them, `count` more bytes that cannot fit the frame. */
  guard(count: number, field: string): void {
    if (this.frameLength() + count > this.maxFrameSize) {
      throw new SpopError(
        DisconnectStatus.FRAME_TOO_BIG,
        `${count} more bytes exceed the maximum frame size ${this.maxFrameSize}`,
        { field },
      );
    }
  }

  /** A varint length and the UTF-8 bytes of `text`. */
  string(text: string, field: string): void {
    const length = text.length;
    if (length < SHORT_STRING) {
      this.ensure(1 + 3 * length);
      const s = this.slab;
      const start = this.pos + 1;
      let i = 0;
      for (; i < length; i++) {
        const c = text.charCodeAt(i);
        if (c >= 0x80) break;
        s[start + i] = c;
      }
      if (i === length) {
        s[this.pos] = length;
        this.pos = start + length;
        return;
      }
      this.#checkWellFormed(text, field);
      // At most 3 bytes per UTF-16 unit: fewer than 80 units stay below 240 bytes.
      const written = s.utf8Write(text, start, 3 * length);
      s[this.pos] = written;
      this.pos = start + written;
      return;
    }
    this.guard(length, field);
    this.#checkWellFormed(text, field);
    const size = Buffer.byteLength(text, "utf8");
    this.guard(size, field);
    this.ensure(10 + size);
    this.uvarint(size);
    this.pos += this.slab.utf8Write(text, this.pos, size);
  }

  /**
   * The name of the variable of the action at `position` in its ACK, as {@link string} writes
   * it. An agent sets the same variables in the same order ACK after ACK: the bytes of the ASCII
   * name last written at each position are kept, and copied when the same name comes again
   * instead of being encoded from its characters once more.
   */
  variableName(text: string, position: number, field: string): void {
    const length = text.length;
    if (!(position < NAME_POSITIONS && length < NAME_BYTES)) {
      this.string(text, field);
      return;
    }
    const names = this.#names;
    const bytes = this.#nameBytes;
    const at = position * NAME_BYTES;
    this.ensure(1 + length);
    const s = this.slab;
    const start = this.pos + 1;
    if (names[position] === text) {
      for (let i = 0; i < length; i++) s[start + i] = bytes[at + i] as number;
    } else {
      names[position] = ""; // its bytes are being replaced
      for (let i = 0; i < length; i++) {
        const c = text.charCodeAt(i);
        if (c >= 0x80) {
          this.string(text, field);
          return;
        }
        s[start + i] = c;
        bytes[at + i] = c;
      }
      names[position] = text;
    }
    s[start - 1] = length;
    this.pos = start + length;
  }

  #checkWellFormed(text: string, field: string): void {
    if (!(text as unknown as WellFormed).isWellFormed()) {
      throw invalidFrame(field, undefined, "string holds a lone UTF-16 surrogate, which has no UTF-8 form");
    }
  }

  /** A varint length and raw bytes. */
  bytes(bytes: Uint8Array, field: string): void {
    if (!(bytes instanceof Uint8Array)) throw invalidFrame(field, undefined, "bytes must be a Uint8Array");
    this.guard(bytes.length, field);
    this.ensure(10 + bytes.length);
    this.uvarint(bytes.length);
    this.slab.set(bytes, this.pos);
    this.pos += bytes.length;
  }

  #address(bytes: Uint8Array, size: number, field: string): void {
    if (!(bytes instanceof Uint8Array) || bytes.length !== size) {
      throw invalidFrame(field, undefined, `an IPV${size === 4 ? 4 : 6} value has ${size} bytes`);
    }
    this.slab.set(bytes, this.pos);
    this.pos += size;
  }

  /** TYPED-DATA, with the value checked against its type's range. */
  typedValue(value: TypedValue, field: string): void {
    // A non-negative INT32 (a score, a count, a delay: what agents set most) is written here,
    // in a method small enough for optimised code to inline; every other value takes a call.
    if (value.type === DataType.INT32) {
      const int = value.value;
      if (int >= 0 && int <= INT32_MAX && Number.isInteger(int)) {
        this.ensure(11);
        this.slab[this.pos++] = DataType.INT32;
        this.uvarint(int);
        return;
      }
    }
    this.#anyValue(value, field);
  }

  #anyValue(value: TypedValue, field: string): void {
    // Room for the largest fixed-size value (IPV6); strings and binaries make their own.
    this.ensure(17);
    const type = value.type;
    switch (type) {
      case DataType.NULL:
        this.u8(type);
        return;
      case DataType.BOOL:
        this.u8(value.value ? 0x11 : 0x01);
        return;
      case DataType.INT32: {
        const int = value.value;
        if (!Number.isInteger(int) || int < INT32_MIN || int > INT32_MAX) {
          throw invalidFrame(field, undefined, `INT32 value ${int} out of range`);
        }
        this.u8(type);
        if (int >= 0) this.uvarint(int);
        else this.bigVarint(BigInt.asUintN(64, BigInt(int)));
        return;
      }
      case DataType.UINT32:
        if (!Number.isInteger(value.value) || value.value < 0 || value.value > UINT32_MAX) {
          throw invalidFrame(field, undefined, `UINT32 value ${value.value} out of range`);
        }
        this.u8(type);
        this.uvarint(value.value);
        return;
      case DataType.INT64:
        if (typeof value.value === "bigint" && (value.value < INT64_MIN || value.value > INT64_MAX)) {
          throw invalidFrame(field, undefined, `INT64 value ${value.value} out of range`);
        }
        this.u8(type);
        this.integer(value.value, field);
        return;
      case DataType.UINT64:
        if (value.value < 0) throw invalidFrame(field, undefined, `UINT64 value ${value.value} is negative`);
        this.u8(type);
        this.integer(value.value, field);
        return;
      case DataType.IPV4:
      case DataType.IPV6:
        this.u8(type);
        this.#address(value.value, type === DataType.IPV4 ? 4 : 16, field);
        return;
      case DataType.STRING:
        this.u8(type);
        if (value.bytes !== undefined) this.bytes(value.bytes, field);
        else this.string(value.value, field);
        return;
      case DataType.BINARY:
        this.u8(type);
        this.bytes(value.value, field);
        return;
      default:
        throw invalidFrame(field, undefined, `unknown data type ${(value as { type: unknown }).type}`);
    }
  }
}
