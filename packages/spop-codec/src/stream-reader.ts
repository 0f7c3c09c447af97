/**
 * The streaming side: socket chunks in, whole frames out. Chunks are kept as they are and read
 * through cursors; bytes are copied only for a frame that straddles chunks, once, into a buffer
 * of exactly its size — and only after its length prefix has passed the size check.
 */
import {
  DEFAULT_MAX_FRAME_SIZE,
  DisconnectStatus,
  FRAME_LENGTH_BYTES,
  FrameFlags,
  FrameType,
  frameTypeNames,
} from "./constants.ts";
import { SpopError } from "./errors.ts";
import { asBuffer, checkFrameLength, type DecodeOptions, FrameDecoder } from "./frame-decoder.ts";
import { checkMaxFrameSize } from "./limits.ts";
import type { FragmentedFrameType, FragmentFrame, Frame } from "./types.ts";

/** Options of {@link FrameReader}. */
export interface FrameReaderOptions extends DecodeOptions {
  /**
   * With `fragmentation`, the largest payload reassembled from fragments; more is refused with
   * status 3. Default 1 MiB.
   */
  maxReassembledSize?: number;
}

interface Assembly {
  readonly type: FragmentedFrameType;
  readonly streamId: number;
  readonly frameId: number;
  readonly pieces: Buffer[];
  size: number;
}

const EMPTY = Buffer.alloc(0);
/** Consumed chunk slots are dropped from the queue in one go once this many pile up. */
const COMPACT_AFTER = 1024;
const DEFAULT_MAX_REASSEMBLED_SIZE = 1024 * 1024;
/**
 * One decoder (and its cache of recent names) for every reader: a decode runs start to end
 * without calling out, so readers never share it at the same time, and a reader costs a
 * server no more than its cursors until it holds bytes — connections that stay idle are many.
 */
const decoder = new FrameDecoder();

/**
 * Turns a byte stream into frames. `push()` each chunk as it arrives (any size: one byte, or
 * many frames at once), then take frames with `next()` until it returns `undefined`, or iterate.
 * Pulling lets a caller stop taking frames (backpressure) and leave the rest buffered.
 *
 * Each frame's length prefix is checked against {@link FrameReader.maxFrameSize} before anything
 * is allocated for it. Set `maxFrameSize` to the negotiated value once the HELLO handshake is
 * done; it applies from the next frame on.
 *
 * Zero-copy lifetimes: a frame that lies within one pushed chunk is decoded in place, so its
 * BINARY values (and fragment payloads) are views into that chunk — do not overwrite a chunk
 * after pushing it. A frame that straddles chunks is copied once into a buffer of its own.
 * Strings, numbers and IP addresses never refer to the chunk.
 *
 * Errors: `next()` throws {@link SpopError} for the first invalid frame, and again on every
 * later call (the stream cannot be resynchronised): disconnect with `error.status`.
 *
 * With `fragmentation` the reader reassembles fragmented NOTIFY and ACK payloads and yields only
 * whole frames; an aborted fragmented frame yields nothing. Offsets in errors about a reassembled
 * payload count from the start of that payload.
 *
 * @example
 * ```ts
 * const reader = new FrameReader({ maxFrameSize: 16380 });
 * socket.on("data", (chunk) => {
 *   reader.push(chunk);
 *   for (let frame = reader.next(); frame !== undefined; frame = reader.next()) handle(frame);
 * });
 * ```
 */
export class FrameReader implements Iterable<Frame> {
  readonly #fragmentation: boolean;
  readonly #maxReassembledSize: number;
  #maxFrameSize: number;
  /** The chunk the cursor is in; exhausted only when the queue is empty. */
  #chunk: Buffer = EMPTY;
  #offset = 0;
  /** Chunks pushed after `#chunk`, from `#head` on. */
  readonly #queue: Buffer[] = [];
  #head = 0;
  #buffered = 0;
  /** LENGTH of the frame at the cursor once its whole prefix is buffered, else -1. */
  #length = -1;
  #assembly: Assembly | undefined;
  #failure: SpopError | undefined;

  constructor(options: FrameReaderOptions = {}) {
    this.#maxFrameSize = checkMaxFrameSize(options.maxFrameSize ?? DEFAULT_MAX_FRAME_SIZE);
    this.#fragmentation = options.fragmentation ?? false;
    const maxReassembledSize = options.maxReassembledSize ?? DEFAULT_MAX_REASSEMBLED_SIZE;
    if (!Number.isSafeInteger(maxReassembledSize) || maxReassembledSize < 0) {
      throw new SpopError(
        DisconnectStatus.BAD_FRAME_SIZE,
        `maxReassembledSize ${maxReassembledSize} is not a non-negative integer`,
      );
    }
    this.#maxReassembledSize = maxReassembledSize;
  }

  /** The largest LENGTH accepted for the next frames (bytes after the 4-byte prefix). */
  get maxFrameSize(): number {
    return this.#maxFrameSize;
  }

  set maxFrameSize(value: number) {
    this.#maxFrameSize = checkMaxFrameSize(value);
  }

  /** Bytes pushed and not yet returned as frames (for backpressure decisions). */
  get bufferedBytes(): number {
    return this.#buffered;
  }

  /** Adds a chunk of the stream. The reader keeps a reference to it, not a copy. */
  push(chunk: Uint8Array): void {
    if (this.#failure !== undefined) throw this.#failure;
    if (chunk.length === 0) return;
    if (this.#offset === this.#chunk.length) {
      this.#chunk = asBuffer(chunk);
      this.#offset = 0;
    } else {
      this.#queue.push(asBuffer(chunk));
    }
    this.#buffered += chunk.length;
  }

  /** The next whole frame, or `undefined` until more bytes are pushed. */
  next(): Frame | undefined {
    if (this.#failure !== undefined) throw this.#failure;
    try {
      for (;;) {
        const frame = this.#nextFrame();
        if (frame === undefined || !this.#fragmentation) return frame;
        const whole = this.#reassemble(frame);
        if (whole !== undefined) return whole;
      }
    } catch (error) {
      if (error instanceof SpopError) this.#failure = error;
      throw error;
    }
  }

  /**
   * Declares the end of the stream, once `next()` has returned `undefined`: throws
   * {@link SpopError} (status 4) when it ended inside a frame or a fragmented payload.
   */
  end(): void {
    if (this.#failure !== undefined) throw this.#failure;
    if (this.#buffered > 0) {
      const expected = this.#length >= 0 ? ` of a ${FRAME_LENGTH_BYTES + this.#length}-byte frame` : "";
      throw new SpopError(
        DisconnectStatus.INVALID_FRAME,
        `truncated frame: the stream ended with ${this.#buffered} bytes${expected}`,
        { field: "frame", offset: 0 },
      );
    }
    const assembly = this.#assembly;
    if (assembly !== undefined) {
      throw new SpopError(
        DisconnectStatus.INVALID_FRAME,
        `truncated frame: the stream ended inside a fragmented ${frameTypeNames[assembly.type]} (stream-id ${assembly.streamId}, frame-id ${assembly.frameId})`,
        { field: "frame" },
      );
    }
  }

  *[Symbol.iterator](): Iterator<Frame> {
    for (let frame = this.next(); frame !== undefined; frame = this.next()) yield frame;
  }

  #nextFrame(): Frame | undefined {
    let length = this.#length;
    if (length < 0) {
      if (this.#buffered < FRAME_LENGTH_BYTES) return undefined;
      length = this.#peekLength();
      this.#length = length;
    }
    checkFrameLength(length, this.#maxFrameSize);
    const total = FRAME_LENGTH_BYTES + length;
    if (this.#buffered < total) return undefined;
    this.#length = -1;
    const chunk = this.#chunk;
    const start = this.#offset;
    if (chunk.length - start > total) {
      this.#offset = start + total;
      this.#buffered -= total;
      return decoder.decode(chunk, start, length, this.#fragmentation);
    }
    if (chunk.length - start === total) {
      this.#consume(total, undefined);
      return decoder.decode(chunk, start, length, this.#fragmentation);
    }
    const frame = Buffer.allocUnsafe(total);
    this.#consume(total, frame);
    return decoder.decode(frame, 0, length, this.#fragmentation);
  }

  /** Reads the 4-byte length prefix at the cursor without consuming it. */
  #peekLength(): number {
    const chunk = this.#chunk;
    let at = this.#offset;
    if (chunk.length - at >= FRAME_LENGTH_BYTES) {
      return (
        (chunk[at] as number) * 0x1000000 +
        (((chunk[at + 1] as number) << 16) | ((chunk[at + 2] as number) << 8) | (chunk[at + 3] as number))
      );
    }
    let value = 0;
    let current = chunk;
    let index = this.#head;
    for (let read = 0; read < FRAME_LENGTH_BYTES; ) {
      if (at < current.length) {
        value = value * 256 + (current[at++] as number);
        read++;
      } else {
        current = this.#queue[index++] as Buffer;
        at = 0;
      }
    }
    return value;
  }

  /** Drops `count` bytes from the front of the stream, copying them into `into` when given. */
  #consume(count: number, into: Buffer | undefined): void {
    this.#buffered -= count;
    let copied = 0;
    for (;;) {
      const chunk = this.#chunk;
      const offset = this.#offset;
      const take = Math.min(chunk.length - offset, count);
      if (into !== undefined) chunk.copy(into, copied, offset, offset + take);
      copied += take;
      count -= take;
      this.#offset = offset + take;
      if (this.#offset < chunk.length || !this.#advance() || count === 0) return;
    }
  }

  /** Moves the cursor to the next queued chunk; false when there is none. */
  #advance(): boolean {
    const queue = this.#queue;
    if (this.#head === queue.length) {
      this.#chunk = EMPTY;
      this.#offset = 0;
      return false;
    }
    this.#chunk = queue[this.#head] as Buffer;
    queue[this.#head++] = EMPTY;
    this.#offset = 0;
    if (this.#head === queue.length) {
      queue.length = 0;
      this.#head = 0;
    } else if (this.#head >= COMPACT_AFTER) {
      queue.splice(0, this.#head);
      this.#head = 0;
    }
    return true;
  }

  #reassemble(frame: Frame): Frame | undefined {
    const assembly = this.#assembly;
    if (frame.type !== FrameType.UNSET) {
      if (assembly !== undefined && (frame.type === FrameType.NOTIFY || frame.type === FrameType.ACK)) {
        throw this.#interlaced(assembly, frame);
      }
      return frame;
    }
    if (frame.frameType !== FrameType.UNSET) {
      if (assembly !== undefined) throw this.#interlaced(assembly, frame);
      const started: Assembly = {
        type: frame.frameType,
        streamId: frame.streamId,
        frameId: frame.frameId,
        pieces: [],
        size: 0,
      };
      this.#assembly = started;
      this.#addPiece(started, frame);
      return undefined;
    }
    if (
      assembly === undefined ||
      assembly.streamId !== frame.streamId ||
      assembly.frameId !== frame.frameId
    ) {
      const expected =
        assembly === undefined
          ? "no fragmented frame is in progress"
          : `expected ${assembly.streamId}/${assembly.frameId}`;
      throw new SpopError(
        DisconnectStatus.FRAME_ID_NOT_FOUND,
        `UNSET frame for stream-id/frame-id ${frame.streamId}/${frame.frameId}: ${expected}`,
        { field: "frame-id" },
      );
    }
    if ((frame.flags & FrameFlags.ABORT) !== 0) {
      this.#assembly = undefined;
      return undefined;
    }
    this.#addPiece(assembly, frame);
    if ((frame.flags & FrameFlags.FIN) === 0) return undefined;
    this.#assembly = undefined;
    const payload = Buffer.concat(assembly.pieces, assembly.size);
    return decoder.decodePayload(assembly.type, frame.flags, assembly.streamId, assembly.frameId, payload);
  }

  #addPiece(assembly: Assembly, frame: FragmentFrame): void {
    assembly.size += frame.payload.length;
    if (assembly.size > this.#maxReassembledSize) {
      throw new SpopError(
        DisconnectStatus.FRAME_TOO_BIG,
        `fragmented ${frameTypeNames[assembly.type]} exceeds ${this.#maxReassembledSize} bytes`,
        { field: "payload" },
      );
    }
    assembly.pieces.push(asBuffer(frame.payload));
  }

  #interlaced(assembly: Assembly, frame: Frame): SpopError {
    return new SpopError(
      DisconnectStatus.INVALID_INTERLACED_FRAMES,
      `a new frame (stream-id ${frame.streamId}, frame-id ${frame.frameId}) arrived inside fragmented ${frameTypeNames[assembly.type]} ${assembly.streamId}/${assembly.frameId}`,
      { field: "frame type" },
    );
  }
}
