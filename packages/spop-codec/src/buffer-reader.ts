/**
 * A cursor over one frame's bytes: reads the primitive fields of SPOP (bytes, u32, varints,
 * length-prefixed names and typed values) and throws {@link SpopError} naming the field and its
 * offset when the bytes are wrong. Internal; the decoder and the reader reuse one instance.
 */
import { isUtf8 } from "node:buffer";
import { BOOL_TRUE_FLAG, DataType } from "./constants.ts";
import { invalidFrame, type SpopError } from "./errors.ts";
import { canonicalInteger, INT32_MAX, INT32_MIN, UINT32_MAX, UINT64_MAX } from "./limits.ts";
import { boolValue, type KVItem, nullValue, type StringValue, type TypedValue } from "./types.ts";

/** Buffer's string fast paths (defined on Buffer.prototype by Node, not in its typings). */
export interface FastBuffer extends Buffer {
  latin1Slice(start: number, end: number): string;
  utf8Slice(start: number, end: number): string;
  utf8Write(text: string, offset: number, length: number): number;
}

/** Names longer than this are decoded each time instead of being remembered. */
const MAX_CACHED_NAME = 64;
/** 64 slots (about 2.5 KiB, one cache for all of a process's FrameReaders) hold the dozen names a SPOE engine uses. */
const NAME_SLOTS = 64;
/** The values that decode to shared objects: NULL, FALSE and TRUE. */
const SHARED_VALUES = 3;
/** Up to this length an ASCII scan in JavaScript beats a call into the native UTF-8 validator. */
const SHORT_TEXT = 128;
const EMPTY = Buffer.alloc(0) as FastBuffer;
/** An empty key of the cache's own type, so that every key read is of one kind (a Uint8Array). */
const NO_KEY = new Uint8Array(0);

function isAscii(buf: Buffer, start: number, end: number): boolean {
  for (let i = start; i < end; i++) if ((buf[i] as number) >= 0x80) return false;
  return true;
}

/**
 * Remembers recently decoded names by their bytes, so that the message and argument names every
 * NOTIFY repeats cost a byte comparison instead of a new string. Direct-mapped: bounded memory,
 * a collision only costs a decode.
 *
 * A slot also keeps, made on first use, the KV items that pair its name with the shared NULL,
 * TRUE and FALSE values: such an item holds nothing of its own, so one frozen instance serves
 * every frame (HAProxy sends NULL for each sample it could not fetch, e.g. a missing header).
 */
class NameCache {
  readonly #keys: Uint8Array[] = new Array<Uint8Array>(NAME_SLOTS).fill(NO_KEY);
  readonly #names: string[] = new Array<string>(NAME_SLOTS).fill("");
  /** Per slot: the NULL, FALSE and TRUE items of its name (`SHARED_VALUES` per slot). */
  readonly #items: (KVItem | undefined)[] = new Array<KVItem | undefined>(NAME_SLOTS * SHARED_VALUES);

  static slot(buf: Buffer, start: number, end: number): number {
    return ((end - start) * 31 + (buf[start] as number) * 7 + (buf[end - 1] as number)) & (NAME_SLOTS - 1);
  }

  get(slot: number, buf: Buffer, start: number, end: number): string | undefined {
    const key = this.#keys[slot] as Uint8Array;
    const length = end - start;
    if (key.length !== length) return undefined;
    for (let i = 0; i < length; i++) if (key[i] !== buf[start + i]) return undefined;
    return this.#names[slot];
  }

  set(slot: number, buf: Buffer, start: number, end: number, name: string): void {
    const key = new Uint8Array(end - start);
    for (let i = 0; i < key.length; i++) key[i] = buf[start + i] as number;
    this.#keys[slot] = key;
    this.#names[slot] = name;
    const items = this.#items;
    const at = slot * SHARED_VALUES;
    for (let i = 0; i < SHARED_VALUES; i++) items[at + i] = undefined;
  }

  /** The shared item of the slot's name with the NULL or BOOL value whose typed-data byte is `head`. */
  item(slot: number, head: number): KVItem {
    const which = head === DataType.NULL ? 0 : head === DataType.BOOL ? 1 : 2;
    const at = slot * SHARED_VALUES + which;
    let item = this.#items[at];
    if (item === undefined) {
      const value = which === 0 ? nullValue : boolValue(which === 2);
      item = Object.freeze({ name: this.#names[slot] as string, value });
      this.#items[at] = item;
    }
    return item;
  }
}

/** The byte cursor. `origin` is the buffer index of the frame's length prefix (for offsets). */
export class BufferReader {
  buf: FastBuffer = EMPTY;
  pos = 0;
  end = 0;
  origin = 0;
  readonly #names = new NameCache();
  /** The name cache's slot of the last name read, -1 when it was not cached. */
  #nameSlot = -1;

  reset(buf: Buffer, pos: number, end: number, origin: number): void {
    this.buf = buf as FastBuffer;
    this.pos = pos;
    this.end = end;
    this.origin = origin;
  }

  /**
   * Lets go of the buffer. A reader lives as long as its connection: holding the last chunk
   * decoded would keep each connection's newest chunk alive through every young-generation
   * GC, which V8 counts as survival and answers by growing the young generation.
   */
  release(): void {
    this.buf = EMPTY;
  }

  /** Offset of buffer index `at` from the frame's length prefix. */
  offset(at: number = this.pos): number {
    return at - this.origin;
  }

  fail(field: string, at: number, detail: string): SpopError {
    return invalidFrame(field, this.offset(at), detail);
  }

  #pastEnd(field: string, at: number): SpopError {
    return this.fail(
      field,
      at,
      `runs past the end of the frame (${this.end - this.origin} bytes with its length prefix)`,
    );
  }

  byte(field: string): number {
    if (this.pos >= this.end) throw this.#pastEnd(field, this.pos);
    return this.buf[this.pos++] as number;
  }

  u32(field: string): number {
    const p = this.pos;
    if (p + 4 > this.end) throw this.#pastEnd(field, p);
    const b = this.buf;
    this.pos = p + 4;
    return (
      (b[p] as number) * 0x1000000 +
      (((b[p + 1] as number) << 16) | ((b[p + 2] as number) << 8) | (b[p + 3] as number))
    );
  }

  /** An unsigned 64-bit varint: a `number` up to 2^53 − 1, a `bigint` above. */
  varint(field: string): number | bigint {
    const buf = this.buf;
    const end = this.end;
    const start = this.pos;
    if (start >= end) throw this.#pastEnd(field, start);
    let value = buf[start] as number;
    if (value < 240) {
      this.pos = start + 1;
      return value;
    }
    // Up to 7 bytes the sum stays below 2^48, exact in a double.
    let p = start + 1;
    let scale = 16;
    for (let i = 1; i < 7; i++) {
      if (p >= end) throw this.#pastEnd(field, start);
      const b = buf[p++] as number;
      value += b * scale;
      if (b < 128) {
        this.pos = p;
        return value;
      }
      scale *= 128;
    }
    return this.#longVarint(field, start);
  }

  #longVarint(field: string, start: number): number | bigint {
    const buf = this.buf;
    let value = BigInt(buf[start] as number);
    let shift = 4n;
    let p = start + 1;
    for (let i = 1; i < 10; i++) {
      if (p >= this.end) throw this.#pastEnd(field, start);
      const b = buf[p++] as number;
      value += BigInt(b) << shift;
      if (b < 128) {
        if (value > UINT64_MAX) throw this.fail(field, start, "varint value exceeds 64 bits");
        this.pos = p;
        return canonicalInteger(value);
      }
      shift += 7n;
    }
    throw this.fail(field, start, "varint longer than 10 bytes");
  }

  /** A varint used as an identifier: must be a safe integer. */
  id(field: string): number {
    const at = this.pos;
    if (at < this.end && (this.buf[at] as number) < 240) {
      this.pos = at + 1;
      return this.buf[at] as number;
    }
    const value = this.varint(field);
    if (typeof value === "bigint") throw this.fail(field, at, `${value} exceeds 2^53 - 1`);
    return value;
  }

  /** A varint length of bytes that must follow within the frame. */
  length(field: string): number {
    const p = this.pos;
    if (p < this.end) {
      // Fast path: a one-byte length, the common case for names and short values.
      const first = this.buf[p] as number;
      if (first < 240 && first < this.end - p) {
        this.pos = p + 1;
        return first;
      }
    }
    const value = this.varint(field);
    if (typeof value === "bigint" || value > this.end - this.pos) {
      throw this.fail(
        field,
        p,
        `length ${value} runs past the end of the frame (${this.end - this.pos} bytes left)`,
      );
    }
    return value;
  }

  /** A length-prefixed name (message, argument, KV item, variable): must be UTF-8. */
  name(field: string): string {
    const length = this.length(field);
    const start = this.pos;
    const end = start + length;
    this.pos = end;
    const buf = this.buf;
    const slot = length !== 0 && length <= MAX_CACHED_NAME ? NameCache.slot(buf, start, end) : -1;
    this.#nameSlot = slot;
    if (length === 0) return "";
    if (slot >= 0) {
      const cached = this.#names.get(slot, buf, start, end);
      if (cached !== undefined) return cached;
    }
    let name: string;
    if (length <= SHORT_TEXT && isAscii(buf, start, end)) name = buf.latin1Slice(start, end);
    else if (isUtf8(buf.subarray(start, end))) name = buf.utf8Slice(start, end);
    else throw this.fail(field, start, "not valid UTF-8");
    if (slot >= 0) this.#names.set(slot, buf, start, end, name);
    return name;
  }

  /** A KV-LIST item or a message argument: a name, then a typed value. */
  item(nameField: string, valueField: string): KVItem {
    const name = this.name(nameField);
    const slot = this.#nameSlot;
    const at = this.pos;
    if (slot >= 0 && at < this.end) {
      // NULL, BOOL false and BOOL true: a type byte alone, and a shared item.
      const head = this.buf[at] as number;
      if (head === DataType.NULL || head === DataType.BOOL || head === (DataType.BOOL | BOOL_TRUE_FLAG)) {
        this.pos = at + 1;
        return this.#names.item(slot, head);
      }
    }
    return { name, value: this.typedValue(valueField) };
  }

  #string(length: number): StringValue {
    const buf = this.buf;
    const start = this.pos;
    const end = start + length;
    this.pos = end;
    if (length <= SHORT_TEXT && isAscii(buf, start, end)) {
      return { type: DataType.STRING, value: buf.latin1Slice(start, end) };
    }
    const view = buf.subarray(start, end);
    if (isUtf8(view)) return { type: DataType.STRING, value: buf.utf8Slice(start, end) };
    return { type: DataType.STRING, value: buf.utf8Slice(start, end), bytes: view };
  }

  #address(field: string, size: number): Uint8Array {
    const start = this.pos;
    if (start + size > this.end) throw this.#pastEnd(field, start);
    const bytes = new Uint8Array(size);
    const buf = this.buf;
    for (let i = 0; i < size; i++) bytes[i] = buf[start + i] as number;
    this.pos = start + size;
    return bytes;
  }

  #int32(field: string, at: number): number {
    const raw = this.varint(field);
    const value = typeof raw === "bigint" ? Number(BigInt.asIntN(64, raw)) : raw;
    if (value < INT32_MIN || value > INT32_MAX) throw this.fail(field, at, `INT32 value ${raw} out of range`);
    return value;
  }

  /** A varint read as a 64-bit two's complement. */
  int64(field: string): number | bigint {
    const raw = this.varint(field);
    if (typeof raw === "number") return raw;
    return canonicalInteger(BigInt.asIntN(64, raw));
  }

  /** TYPED-DATA. */
  typedValue(field: string): TypedValue {
    const at = this.pos;
    if (at >= this.end) throw this.#pastEnd(field, at);
    const head = this.buf[at] as number;
    this.pos = at + 1;
    const type = head & 0x0f;
    const flags = head & 0xf0;
    if (flags !== 0 && !(type === DataType.BOOL && flags === BOOL_TRUE_FLAG)) {
      throw this.fail(field, at, `reserved typed-data flags 0x${flags.toString(16)} set`);
    }
    switch (type) {
      case DataType.NULL:
        return nullValue;
      case DataType.BOOL:
        return boolValue(flags !== 0);
      case DataType.INT32:
        return { type: DataType.INT32, value: this.#int32(field, at) };
      case DataType.UINT32: {
        const value = this.varint(field);
        if (typeof value === "bigint" || value > UINT32_MAX)
          throw this.fail(field, at, `UINT32 value ${value} out of range`);
        return { type: DataType.UINT32, value };
      }
      case DataType.INT64:
        return { type: DataType.INT64, value: this.int64(field) };
      case DataType.UINT64:
        return { type: DataType.UINT64, value: this.varint(field) };
      case DataType.IPV4:
        return { type: DataType.IPV4, value: this.#address(field, 4) };
      case DataType.IPV6:
        return { type: DataType.IPV6, value: this.#address(field, 16) };
      case DataType.STRING:
        return this.#string(this.length(field));
      case DataType.BINARY: {
        const length = this.length(field);
        const start = this.pos;
        this.pos = start + length;
        return { type: DataType.BINARY, value: this.buf.subarray(start, start + length) };
      }
      default:
        throw this.fail(field, at, `unknown data type ${type}`);
    }
  }
}
