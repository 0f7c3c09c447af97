/**
 * Bytes → frames. Decodes one whole frame (length prefix included) that lies in a buffer; the
 * streaming {@link FrameReader} finds the frames in a byte stream and calls into this.
 */

// Imported, not the global: Node defines `globalThis.Buffer` as a getter, which optimised code
// calls on every access (asBuffer runs once per chunk pushed and per frame decoded).
import { Buffer } from "node:buffer";
import { BufferReader } from "./buffer-reader.ts";
import {
  ActionType,
  DEFAULT_MAX_FRAME_SIZE,
  DisconnectStatus,
  FRAME_LENGTH_BYTES,
  FrameFlags,
  FrameType,
  frameTypeNames,
  type Scope,
} from "./constants.ts";
import { SpopError } from "./errors.ts";
import { SCOPE_MAX } from "./limits.ts";
import type { Action, FragmentFrame, Frame, KVItem, Message } from "./types.ts";

/** Options of {@link decodeFrame} and {@link FrameReader}. */
export interface DecodeOptions {
  /**
   * The largest LENGTH accepted (bytes after the 4-byte prefix); a longer frame is refused with
   * status 3. Default {@link DEFAULT_MAX_FRAME_SIZE}.
   */
  maxFrameSize?: number;
  /**
   * Accept fragmented payloads (only when the agent announced the `fragmentation` capability).
   * Off by default: a frame without FIN, or an UNSET frame, is refused with status 10.
   */
  fragmentation?: boolean;
}

/** Checks a frame's LENGTH (the value of its prefix) against 0 and the maximum. */
export function checkFrameLength(length: number, maxFrameSize: number): void {
  if (length === 0) {
    throw new SpopError(
      DisconnectStatus.INVALID_FRAME,
      "length prefix is 0: a frame has at least a type byte",
      {
        field: "frame length",
        offset: 0,
      },
    );
  }
  if (length > maxFrameSize) {
    throw new SpopError(
      DisconnectStatus.FRAME_TOO_BIG,
      `length prefix ${length} exceeds the maximum frame size ${maxFrameSize}`,
      { field: "frame length", offset: 0 },
    );
  }
}

function isFrameType(type: number): boolean {
  return (
    (type >= FrameType.UNSET && type <= FrameType.NOTIFY) ||
    (type >= FrameType.AGENT_HELLO && type <= FrameType.ACK)
  );
}

/**
 * Decodes frames from buffers with one reusable cursor (and its cache of recent names).
 * Internal: use {@link decodeFrame} or {@link FrameReader}.
 */
export class FrameDecoder {
  readonly #r = new BufferReader();

  /**
   * Decodes the frame whose length prefix starts at `start` and whose LENGTH (already read and
   * checked by the caller) is `length`.
   */
  decode(buf: Buffer, start: number, length: number, fragmentation: boolean): Frame {
    const r = this.#r;
    r.reset(buf, start + FRAME_LENGTH_BYTES, start + FRAME_LENGTH_BYTES + length, start);
    try {
      return this.#frame(fragmentation);
    } finally {
      r.release();
    }
  }

  #frame(fragmentation: boolean): Frame {
    const r = this.#r;
    const typeAt = r.pos;
    const type = r.byte("frame type");
    if (!isFrameType(type)) throw r.fail("frame type", typeAt, `unknown frame type ${type}`);
    const flagsAt = r.pos;
    const flags = r.u32("flags");
    const streamId = r.id("stream-id");
    const frameId = r.id("frame-id");
    const fin = (flags & FrameFlags.FIN) !== 0;
    if ((flags & FrameFlags.ABORT) !== 0 && !fin) throw r.fail("flags", flagsAt, "ABORT is set without FIN");

    switch (type) {
      case FrameType.NOTIFY:
        if (!fin) return this.#fragment(type, flags, streamId, frameId, fragmentation, flagsAt);
        return { type, flags, streamId, frameId, messages: this.#messages() };
      case FrameType.ACK:
        if (!fin) return this.#fragment(type, flags, streamId, frameId, fragmentation, flagsAt);
        return { type, flags, streamId, frameId, actions: this.#actions() };
      case FrameType.UNSET:
        return this.#fragment(type, flags, streamId, frameId, fragmentation, typeAt);
      default: {
        const name = frameTypeNames[type as FrameType];
        if (!fin) {
          throw new SpopError(
            DisconnectStatus.FRAGMENTATION_NOT_SUPPORTED,
            `${name} frames cannot be fragmented`,
            {
              field: "flags",
              offset: r.offset(flagsAt),
            },
          );
        }
        if (streamId !== 0 || frameId !== 0) {
          throw r.fail(
            "stream-id",
            flagsAt + 4,
            `${name} frames carry stream-id 0 and frame-id 0, not ${streamId}/${frameId}`,
          );
        }
        return { type, flags, streamId, frameId, items: this.#kvList() } as Frame;
      }
    }
  }

  /** Decodes a reassembled NOTIFY or ACK payload into its whole frame. */
  decodePayload(
    type: typeof FrameType.NOTIFY | typeof FrameType.ACK,
    flags: number,
    streamId: number,
    frameId: number,
    payload: Buffer,
  ): Frame {
    const r = this.#r;
    r.reset(payload, 0, payload.length, 0);
    try {
      return type === FrameType.NOTIFY
        ? { type, flags, streamId, frameId, messages: this.#messages() }
        : { type, flags, streamId, frameId, actions: this.#actions() };
    } finally {
      r.release();
    }
  }

  #fragment(
    frameType: FragmentFrame["frameType"],
    flags: number,
    streamId: number,
    frameId: number,
    fragmentation: boolean,
    at: number,
  ): FragmentFrame {
    const r = this.#r;
    if (!fragmentation) {
      const what =
        frameType === FrameType.UNSET
          ? "an UNSET (fragment) frame"
          : `a ${frameTypeNames[frameType]} without FIN`;
      throw new SpopError(
        DisconnectStatus.FRAGMENTATION_NOT_SUPPORTED,
        `${what}, but fragmentation was not negotiated`,
        { field: frameType === FrameType.UNSET ? "frame type" : "flags", offset: r.offset(at) },
      );
    }
    const payload = r.buf.subarray(r.pos, r.end);
    r.pos = r.end;
    return { type: FrameType.UNSET, frameType, flags, streamId, frameId, payload };
  }

  #kvList(): KVItem[] {
    const r = this.#r;
    const items: KVItem[] = [];
    while (r.pos < r.end) items.push(r.item("KV name", "KV value"));
    return items;
  }

  #messages(): Message[] {
    const r = this.#r;
    if (r.pos >= r.end) return [];
    const first = this.#message();
    // One message per event is the common case: an exact-size array, no growth.
    if (r.pos >= r.end) return [first];
    const messages: Message[] = [first];
    while (r.pos < r.end) messages.push(this.#message());
    return messages;
  }

  #message(): Message {
    const r = this.#r;
    const name = r.name("message name");
    const countAt = r.pos;
    const count = r.byte("nb-args");
    const args = new Array<KVItem>(count);
    for (let i = 0; i < count; i++) {
      if (r.pos >= r.end) {
        throw r.fail(
          "nb-args",
          countAt,
          `message "${name}" announces ${count} arguments but the frame ends after ${i}`,
        );
      }
      args[i] = r.item("argument name", "argument value");
    }
    return { name, args };
  }

  #actions(): Action[] {
    const r = this.#r;
    const actions: Action[] = [];
    while (r.pos < r.end) {
      const typeAt = r.pos;
      const type = r.byte("action type");
      if (type !== ActionType.SET_VAR && type !== ActionType.UNSET_VAR) {
        throw r.fail("action type", typeAt, `unknown action type ${type}`);
      }
      const countAt = r.pos;
      const count = r.byte("nb-args");
      const expected = type === ActionType.SET_VAR ? 3 : 2;
      if (count !== expected) {
        const name = type === ActionType.SET_VAR ? "SET-VAR" : "UNSET-VAR";
        throw r.fail("nb-args", countAt, `${name} takes ${expected} arguments, not ${count}`);
      }
      const scopeAt = r.pos;
      const scope = r.byte("variable scope");
      if (scope > SCOPE_MAX) throw r.fail("variable scope", scopeAt, `unknown scope ${scope}`);
      const name = r.name("variable name");
      actions.push(
        type === ActionType.SET_VAR
          ? { type, scope: scope as Scope, name, value: r.typedValue("variable value") }
          : { type, scope: scope as Scope, name },
      );
    }
    return actions;
  }
}

const sharedDecoder = new FrameDecoder();

/** A Buffer over the same memory as `bytes` (no copy). */
export function asBuffer(bytes: Uint8Array): Buffer {
  return Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/**
 * Decodes exactly one frame: `bytes` holds its 4-byte length prefix and everything after it,
 * and nothing more. Throws {@link SpopError} on anything else.
 *
 * Zero-copy: BINARY values and fragment payloads are views into `bytes` (see {@link BinaryValue}).
 *
 * @example
 * ```ts
 * const frame = decodeFrame(Buffer.from("0000002f03000000010001…", "hex"));
 * if (frame.type === FrameType.NOTIFY) console.log(frame.messages[0]?.name);
 * ```
 */
export function decodeFrame(bytes: Uint8Array, options: DecodeOptions = {}): Frame {
  const buf = asBuffer(bytes);
  if (buf.length < FRAME_LENGTH_BYTES) {
    throw new SpopError(
      DisconnectStatus.INVALID_FRAME,
      `truncated frame: ${buf.length} bytes, no length prefix`,
      {
        field: "frame length",
        offset: 0,
      },
    );
  }
  const length = buf.readUInt32BE(0);
  checkFrameLength(length, options.maxFrameSize ?? DEFAULT_MAX_FRAME_SIZE);
  const total = FRAME_LENGTH_BYTES + length;
  if (buf.length !== total) {
    const detail =
      buf.length < total
        ? `truncated frame: length prefix says ${length} bytes, ${buf.length - FRAME_LENGTH_BYTES} present`
        : `${buf.length - total} bytes follow the frame`;
    throw new SpopError(DisconnectStatus.INVALID_FRAME, detail, { field: "frame length", offset: 0 });
  }
  return sharedDecoder.decode(buf, 0, length, options.fragmentation ?? false);
}
