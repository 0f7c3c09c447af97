import { Buffer } from "node:buffer";
import { createHash } from "node:crypto";

/** A Lua script and its SHA1, as EVALSHA wants it. */
export interface LuaScript {
  readonly source: string;
  readonly sha: string;
}

/** The script and SHA1 of `source`. */
export function luaScript(source: string): LuaScript {
  return { source, sha: createHash("sha1").update(source).digest("hex") };
}

/** `bulk string` in RESP. */
export function bulk(value: string): string {
  return `$${Buffer.byteLength(value)}\r\n${value}\r\n`;
}

/** The RESP of `values` as bulk strings, one after the other. */
export function bulks(values: readonly string[]): Buffer {
  let resp = "";
  for (const value of values) resp += bulk(value);
  return Buffer.from(resp, "latin1");
}

/** Decimal digits of a non-negative integer. */
function digits(n: number): number {
  let count = 1;
  while (n >= 10) {
    n = Math.floor(n / 10);
    count++;
  }
  return count;
}

/** Bytes of a bulk string of `bytes` bytes: `$`, the length, CRLF, the bytes, CRLF. */
export function bulkSize(bytes: number): number {
  return digits(bytes) + bytes + 5;
}

/** Bytes of one slab that commands are encoded into; a new one is taken when it is full. */
const SLAB_BYTES = 64 * 1024;

/**
 * The memory commands are encoded into: a command is written after the previous one and handed
 * to the connection as a view of the slab. A slab is never written over: the views written in a
 * batch keep theirs alive until the socket is done with them, and a full slab is simply left to
 * them.
 */
export class RespSlab {
  #slab = Buffer.allocUnsafeSlow(SLAB_BYTES);
  #offset = 0;

  /** The slab to write a command of `size` bytes into, from {@link offset}. */
  reserve(size: number): Buffer {
    if (this.#offset + size > this.#slab.length) {
      this.#slab = Buffer.allocUnsafeSlow(Math.max(SLAB_BYTES, size));
      this.#offset = 0;
    }
    return this.#slab;
  }

  /** Where the next command starts. */
  get offset(): number {
    return this.#offset;
  }

  /** Ends the command written from {@link offset} up to `end`; returns its bytes. */
  commit(end: number): Buffer {
    const start = this.#offset;
    this.#offset = end;
    return this.#slab.subarray(start, end);
  }
}

/** Writes `value` (`bytes` bytes in UTF-8) as a bulk string at `at`; returns where it ends. */
export function writeBulk(slab: Buffer, at: number, value: string, bytes: number): number {
  slab[at++] = 0x24; // $
  const end = at + digits(bytes);
  for (let n = bytes, i = end - 1; i >= at; i--, n = Math.floor(n / 10)) slab[i] = 0x30 + (n % 10);
  at = end;
  slab[at++] = 0x0d;
  slab[at++] = 0x0a;
  at += slab.write(value, at, "utf8");
  slab[at++] = 0x0d;
  slab[at++] = 0x0a;
  return at;
}
