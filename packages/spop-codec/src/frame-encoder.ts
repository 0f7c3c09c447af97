/**
 * Frames → bytes. A {@link FrameWriter} writes each frame, length prefix first, into one
 * contiguous region of a pooled slab, refuses frames above the maximum, and hands out the
 * frames written since the last flush as one Buffer — one socket write for a batch of ACKs.
 */

import { ActionList, actionSlots, UNSET } from "./action-list.ts";
import { BufferWriter } from "./buffer-writer.ts";
import {
  ActionType,
  DEFAULT_MAX_FRAME_SIZE,
  DisconnectStatus,
  FRAME_LENGTH_BYTES,
  FrameFlags,
  FrameType,
  frameTypeNames,
  MIN_FRAME_SIZE,
} from "./constants.ts";
import { invalidFrame, SpopError } from "./errors.ts";
import { checkMaxFrameSize, SCOPE_MAX, UINT32_MAX } from "./limits.ts";
import type {
  AckFrame,
  Action,
  FragmentFrame,
  Frame,
  KVList,
  Message,
  NotifyFrame,
  TypedValue,
} from "./types.ts";
import { varintLength } from "./varint.ts";

/** Options of {@link FrameWriter}. */
export interface FrameWriterOptions {
  /** The largest LENGTH written (bytes after the 4-byte prefix). Default {@link DEFAULT_MAX_FRAME_SIZE}. */
  maxFrameSize?: number;
  /** Size of each pooled slab. Default 64 KiB; a larger frame or batch gets a slab of its own. */
  slabSize?: number;
}

/** TYPE + FLAGS + two 10-byte varints. */
const MAX_HEADER_BYTES = 1 + 4 + 10 + 10;
const MAX_NB_ARGS = 255;

function checkScope(scope: number): number {
  if (!Number.isInteger(scope) || scope < 0 || scope > SCOPE_MAX) {
    throw invalidFrame("variable scope", undefined, `unknown scope ${scope}`);
  }
  return scope;
}

function checkId(id: number, field: string): void {
  if (!Number.isSafeInteger(id) || id < 0)
    throw invalidFrame(field, undefined, `${id} is not a safe non-negative integer`);
}

/** Refuses headers the decoder would refuse, so that whatever is written decodes again. */
function checkHeader(frame: Frame): void {
  const { flags, streamId, frameId } = frame;
  if (!Number.isInteger(flags) || flags < 0 || flags > UINT32_MAX)
    throw invalidFrame("flags", undefined, `${flags} is no u32`);
  checkId(streamId, "stream-id");
  checkId(frameId, "frame-id");
  const fin = (flags & FrameFlags.FIN) !== 0;
  if ((flags & FrameFlags.ABORT) !== 0 && !fin)
    throw invalidFrame("flags", undefined, "ABORT is set without FIN");
  switch (frame.type) {
    case FrameType.NOTIFY:
    case FrameType.ACK:
      if (!fin)
        throw invalidFrame("flags", undefined, "a whole frame has FIN set; write pieces as FragmentFrames");
      return;
    case FrameType.UNSET:
      if (frame.frameType !== FrameType.UNSET && fin) {
        throw invalidFrame("flags", undefined, "the first piece of a fragmented payload has no FIN");
      }
      if (
        frame.frameType !== FrameType.UNSET &&
        frame.frameType !== FrameType.NOTIFY &&
        frame.frameType !== FrameType.ACK
      ) {
        throw invalidFrame("frame type", undefined, `${frame.frameType} payloads cannot be fragmented`);
      }
      return;
    case FrameType.HAPROXY_HELLO:
    case FrameType.HAPROXY_DISCONNECT:
    case FrameType.AGENT_HELLO:
    case FrameType.AGENT_DISCONNECT:
      if (!fin)
        throw invalidFrame("flags", undefined, `${frameTypeNames[frame.type]} frames cannot be fragmented`);
      if (streamId !== 0 || frameId !== 0) {
        throw invalidFrame(
          "stream-id",
          undefined,
          `${frameTypeNames[frame.type]} frames carry stream-id 0 and frame-id 0`,
        );
      }
      return;
    default:
      throw invalidFrame("frame type", undefined, `unknown frame type ${(frame as { type: unknown }).type}`);
  }
}

/**
 * Writes frames into pooled slabs. Each frame lands in one contiguous region, its length prefix
 * filled in last; `flush()` returns everything written since the previous flush as one Buffer.
 * Bytes once returned are never overwritten (a full slab is left to the garbage collector and
 * writing continues in a new one), so a returned Buffer may be handed to `socket.write()` as is.
 *
 * A frame whose LENGTH would exceed {@link FrameWriter.maxFrameSize}, or which holds a value its
 * type cannot carry, is refused with {@link SpopError} (status 3, resp. 4) and leaves nothing
 * behind: frames written before it in the batch are kept.
 *
 * @example
 * ```ts
 * const writer = new FrameWriter({ maxFrameSize: negotiated });
 * for (const done of finished) writer.writeAck(done.streamId, done.frameId, done.actions);
 * socket.write(writer.flush()); // every ready ACK in one write
 * ```
 */
export class FrameWriter {
  readonly #w: BufferWriter;

  constructor(options: FrameWriterOptions = {}) {
    const slabSize = options.slabSize ?? 64 * 1024;
    if (!Number.isInteger(slabSize) || slabSize < MIN_FRAME_SIZE) {
      throw new SpopError(
        DisconnectStatus.UNKNOWN_ERROR,
        `slab size ${slabSize} is below ${MIN_FRAME_SIZE} bytes`,
      );
    }
    this.#w = new BufferWriter(slabSize, checkMaxFrameSize(options.maxFrameSize ?? DEFAULT_MAX_FRAME_SIZE));
  }

  /** The largest LENGTH written; set it to the negotiated max-frame-size after the handshake. */
  get maxFrameSize(): number {
    return this.#w.maxFrameSize;
  }

  set maxFrameSize(value: number) {
    this.#w.maxFrameSize = checkMaxFrameSize(value);
  }

  /** Bytes written since the last {@link FrameWriter.flush}. */
  get pendingBytes(): number {
    return this.#w.pos - this.#w.mark;
  }

  /** Appends one frame of any type to the batch. */
  write(frame: Frame): void {
    checkHeader(frame);
    const w = this.#begin(
      frame.type === FrameType.UNSET ? frame.frameType : frame.type,
      frame.flags,
      frame.streamId,
      frame.frameId,
    );
    try {
      switch (frame.type) {
        case FrameType.NOTIFY:
          this.#messages(frame.messages);
          break;
        case FrameType.ACK:
          this.#actions(frame.actions);
          break;
        case FrameType.UNSET:
          w.guard(frame.payload.length, "payload");
          w.ensure(frame.payload.length);
          w.slab.set(frame.payload, w.pos);
          w.pos += frame.payload.length;
          break;
        default:
          this.#kvList(frame.items);
      }
      this.#end();
    } catch (error) {
      w.pos = w.frameStart;
      throw error;
    }
  }

  /**
   * Appends an ACK without building an {@link AckFrame}: the hot path of an agent. `actions` is
   * an array of actions or an {@link ActionList} (the same bytes, no object per action). `flags`
   * may add ABORT (to abort a fragmented NOTIFY); FIN is always set.
   */
  writeAck(
    streamId: number,
    frameId: number,
    actions: readonly Action[] | ActionList,
    flags: number = FrameFlags.FIN,
  ): void {
    checkId(streamId, "stream-id");
    checkId(frameId, "frame-id");
    if (flags !== FrameFlags.FIN && flags !== (FrameFlags.FIN | FrameFlags.ABORT)) {
      throw invalidFrame("flags", undefined, "an ACK carries FIN, or FIN and ABORT");
    }
    const w = this.#begin(FrameType.ACK, flags, streamId, frameId);
    try {
      if (actions instanceof ActionList) this.#actionList(actions);
      else this.#actions(actions);
      this.#end();
    } catch (error) {
      w.pos = w.frameStart;
      throw error;
    }
  }

  /**
   * Everything written since the last flush, as one Buffer (empty when nothing was). The bytes
   * are not touched again by this writer, unless they are released ({@link FrameWriter.release}).
   */
  flush(): Buffer {
    return this.#w.take();
  }

  /**
   * Declares that the Buffer the last {@link FrameWriter.flush} returned is no longer used —
   * e.g. `socket.write()` wrote it at once (`socket.writableLength === 0` right after). Once
   * every Buffer flushed from the current slab has been released, the writer writes the next
   * frames over them instead of moving on through the slab, so that a steady stream of small
   * batches reuses the same memory instead of allocating a new slab every 64 KiB (and a flush
   * of the released one's size returns that same Buffer object again). Buffers never released
   * are never written over nor returned again; calling this is optional, and only for the last
   * flush.
   *
   * @example
   * ```ts
   * socket.write(writer.flush());
   * if (socket.writableLength === 0) writer.release(); // the kernel has the bytes
   * ```
   */
  release(): void {
    this.#w.release();
  }

  #begin(type: number, flags: number, streamId: number, frameId: number): BufferWriter {
    const w = this.#w;
    w.ensure(FRAME_LENGTH_BYTES + MAX_HEADER_BYTES);
    w.frameStart = w.pos;
    w.pos += FRAME_LENGTH_BYTES;
    w.u8(type);
    w.u32(flags);
    w.uvarint(streamId);
    w.uvarint(frameId);
    return w;
  }

  #end(): void {
    const w = this.#w;
    const length = w.frameLength();
    if (length > w.maxFrameSize) {
      throw new SpopError(
        DisconnectStatus.FRAME_TOO_BIG,
        `a ${length}-byte frame exceeds the maximum frame size ${w.maxFrameSize}`,
        { field: "frame length" },
      );
    }
    w.u32At(w.frameStart, length);
  }

  #kvList(items: KVList): void {
    const w = this.#w;
    for (const item of items) {
      w.string(item.name, "KV name");
      w.typedValue(item.value, "KV value");
    }
  }

  #messages(messages: readonly Message[]): void {
    const w = this.#w;
    for (const message of messages) {
      w.string(message.name, "message name");
      const args = message.args;
      if (args.length > MAX_NB_ARGS) {
        throw invalidFrame(
          "nb-args",
          undefined,
          `message "${message.name}" has ${args.length} arguments, at most 255 fit`,
        );
      }
      w.ensure(1);
      w.u8(args.length);
      for (const arg of args) {
        w.string(arg.name, "argument name");
        w.typedValue(arg.value, "argument value");
      }
    }
  }

  #actions(actions: readonly Action[]): void {
    for (let i = 0; i < actions.length; i++) {
      const action = actions[i] as Action;
      if (action.type === ActionType.SET_VAR) this.#setVar(i, action.scope, action.name, action.value);
      else if (action.type === ActionType.UNSET_VAR) this.#unsetVar(i, action.scope, action.name);
      else {
        throw invalidFrame(
          "action type",
          undefined,
          `unknown action type ${(action as { type: unknown }).type}`,
        );
      }
    }
  }

  #actionList(actions: ActionList): void {
    const slots = actionSlots(actions);
    const end = 3 * actions.length;
    for (let i = 0, at = 0; at < end; i++, at += 3) {
      const value = slots[at + 2];
      if (value === UNSET) this.#unsetVar(i, slots[at] as number, slots[at + 1] as string);
      else this.#setVar(i, slots[at] as number, slots[at + 1] as string, value as TypedValue);
    }
  }

  #setVar(index: number, scope: number, name: string, value: TypedValue): void {
    const w = this.#w;
    w.actionHeader(ActionType.SET_VAR, 3, checkScope(scope));
    w.variableName(name, index, "variable name");
    w.typedValue(value, "variable value");
  }

  #unsetVar(index: number, scope: number, name: string): void {
    const w = this.#w;
    w.actionHeader(ActionType.UNSET_VAR, 2, checkScope(scope));
    w.variableName(name, index, "variable name");
  }
}

const shared = new FrameWriter();

/** Options of {@link encodeFrame}. */
export interface EncodeOptions {
  /** The largest LENGTH allowed. Default {@link DEFAULT_MAX_FRAME_SIZE}. */
  maxFrameSize?: number;
}

/**
 * Encodes one frame, length prefix included, into one Buffer (a view into a pooled slab that is
 * never written again). Throws {@link SpopError} when the frame exceeds `maxFrameSize` or holds
 * a value its type cannot carry.
 *
 * @example
 * ```ts
 * socket.write(encodeFrame(agentHelloFrame({ maxFrameSize: 16380, capabilities: ["pipelining"] })));
 * ```
 */
export function encodeFrame(frame: Frame, options: EncodeOptions = {}): Buffer {
  shared.maxFrameSize = options.maxFrameSize ?? DEFAULT_MAX_FRAME_SIZE;
  shared.write(frame);
  return shared.flush();
}

const unbounded = new FrameWriter({ maxFrameSize: UINT32_MAX });

/**
 * Splits a NOTIFY or ACK into the pieces of a fragmented payload whose frames each fit
 * `maxFrameSize`: the first keeps the frame's type without FIN, the others are UNSET frames
 * with the same ids, the last with FIN (empty when the first piece already held everything).
 * Only for a peer that announced the `fragmentation` capability.
 */
export function fragmentFrame(frame: NotifyFrame | AckFrame, maxFrameSize: number): FragmentFrame[] {
  unbounded.write(frame);
  const bytes = unbounded.flush();
  const header = 1 + 4 + varintLength(frame.streamId) + varintLength(frame.frameId);
  const room = checkMaxFrameSize(maxFrameSize) - header;
  if (room < 1)
    throw invalidFrame(
      "frame length",
      undefined,
      `max frame size ${maxFrameSize} leaves no room for a payload`,
    );
  const payload = bytes.subarray(FRAME_LENGTH_BYTES + header);
  const { streamId, frameId } = frame;
  const pieces: FragmentFrame[] = [
    {
      type: FrameType.UNSET,
      frameType: frame.type,
      flags: 0,
      streamId,
      frameId,
      payload: payload.subarray(0, room),
    },
  ];
  let at = room;
  do {
    const end = Math.min(at + room, payload.length);
    const flags = end === payload.length ? FrameFlags.FIN : 0;
    pieces.push({
      type: FrameType.UNSET,
      frameType: FrameType.UNSET,
      flags,
      streamId,
      frameId,
      payload: payload.subarray(at, end),
    });
    at = end;
  } while (at < payload.length);
  return pieces;
}
