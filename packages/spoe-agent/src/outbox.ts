/**
 * The write side of a connection: the ACKs of settled NOTIFYs wait here until the connection
 * flushes — once per tick, all of them in one socket write, each frame whole — and their
 * exchanges are recycled for the next NOTIFYs.
 */
import type { Socket } from "node:net";
import {
  type Action,
  type ActionList,
  type Disconnect,
  FrameType,
  type FrameWriter,
} from "@spoekit/spop-codec";
import { dc } from "./channels.ts";
import { AckEncodingError } from "./errors.ts";
import { type Exchange, NO_ACTIONS } from "./exchange.ts";
import type { Runtime } from "./runtime.ts";
import type { ConnectionInfo } from "./types.ts";

/** Publishes on the `frame:out` channel that `count` frames of `type` were written. */
export function publishFramesOut(
  runtime: Runtime,
  connection: ConnectionInfo,
  type: FrameType,
  count: number,
): void {
  if (dc.frameOut.hasSubscribers) {
    dc.frameOut.publish({ agent: runtime.agent, connection, type, count });
  }
}

/** Publishes on the `disconnect` channel a DISCONNECT frame `sent` or `received`. */
export function publishDisconnect(
  runtime: Runtime,
  connection: ConnectionInfo,
  direction: "sent" | "received",
  { status, message }: Disconnect,
): void {
  if (dc.disconnect.hasSubscribers) {
    dc.disconnect.publish({ agent: runtime.agent, connection, direction, status, message });
  }
}

/**
 * How many recycled exchanges the agent keeps for its next NOTIFYs (about 200 bytes each). With
 * synchronous handlers only those of one socket read are in use at a time.
 */
const EXCHANGE_POOL = 1024;

/** @internal The ready ACKs of one connection; recycles their exchanges into the shared pool. */
export class Outbox {
  readonly #runtime: Runtime;
  readonly #connection: ConnectionInfo;
  /**
   * Recycled exchanges, shared by every connection of the agent: the few a socket read uses are
   * those the previous read used, still in the CPU's caches, whichever connection it came on.
   */
  readonly #pool: Exchange[];
  /**
   * Settled exchanges whose ACK is not written yet: the first `size`. The array keeps its store
   * between flushes (`length = 0` would free it), so that queueing the ACKs of a read does not
   * allocate a new one each time.
   */
  readonly #ready: Exchange[] = [];
  /** `noEmptyAck`: what an ACK without actions carries instead, if anything. */
  readonly #filler: readonly Action[] | undefined;
  /** How many ACKs are ready. */
  size = 0;
  /** The last write hit the socket's high-water mark; wait for 'drain'. */
  blocked = false;

  constructor(runtime: Runtime, connection: ConnectionInfo) {
    this.#runtime = runtime;
    this.#connection = connection;
    this.#pool = runtime.exchanges;
    this.#filler = runtime.options.noEmptyAck;
  }

  /** A recycled exchange, if one is free. */
  take(): Exchange | undefined {
    return this.#pool.pop();
  }

  /** Queues the ACK of a settled exchange. */
  push(exchange: Exchange): void {
    this.#ready[this.size++] = exchange;
  }

  /**
   * Writes every ready ACK in one socket write. Returns how many, or `-1` when the socket still
   * needs draining (nothing written; `blocked` is set).
   */
  write(socket: Socket, writer: FrameWriter): number {
    if (socket.writableNeedDrain) {
      this.blocked = true;
      return -1;
    }
    const count = this.encode(writer);
    if (!socket.write(writer.flush())) this.blocked = true;
    // Written at once (the kernel has the bytes): the writer may write over them.
    if (socket.writableLength === 0) writer.release();
    publishFramesOut(this.#runtime, this.#connection, FrameType.ACK, count);
    return count;
  }

  /** Encodes the ready ACKs into `writer` and recycles their exchanges; returns how many. */
  encode(writer: FrameWriter): number {
    const ready = this.#ready;
    const pool = this.#pool;
    const count = this.size;
    for (let i = 0; i < count; i++) {
      const exchange = ready[i] as Exchange;
      this.#encodeAck(writer, exchange);
      exchange.recycle();
      if (pool.length < EXCHANGE_POOL) pool.push(exchange);
    }
    this.size = 0;
    return count;
  }

  /** The connection closed: the ready ACKs go nowhere. */
  clear(): void {
    this.#ready.length = 0;
    this.size = 0;
  }

  #encodeAck(writer: FrameWriter, exchange: Exchange): void {
    const { streamId, frameId } = exchange;
    const filler = this.#filler;
    let actions: readonly Action[] | ActionList = exchange.ack ?? exchange.list;
    if (filler !== undefined && actions.length === 0) actions = filler;
    try {
      writer.writeAck(streamId, frameId, actions);
    } catch (error) {
      // A SpopError (a value out of range, too many actions for the frame size), or a TypeError
      // for an object that is no typed value: never let a handler's data break the connection.
      const failure = new AckEncodingError(
        `the ACK for stream-id ${streamId} frame-id ${frameId} cannot be encoded; sent without its actions: ${(error as Error).message}`,
        { cause: error },
      );
      this.#connection.log.error(
        { err: failure, streamId, frameId },
        "ACK sent without the handlers' actions",
      );
      this.#runtime.reportError("encoding", failure, this.#connection);
      writer.writeAck(streamId, frameId, filler ?? NO_ACTIONS);
    }
  }
}
