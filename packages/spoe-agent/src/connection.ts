/**
 * One SPOP connection from HAProxy: the socket's events, the session's state machine (HELLO,
 * open, draining, closing), the read pump and its backpressure, and every way a socket can end.
 * The handlers run in the {@link Dispatcher}; their ACKs wait in the {@link Outbox}.
 *
 * Reading is pulled: frames are taken from the {@link FrameReader} only while fewer than
 * `maxInFlight` NOTIFYs are unanswered and the socket does not need draining; otherwise the
 * socket is paused and the rest stays buffered (bounded by the stream's high-water mark), so
 * nothing queues without bound. ACKs are encoded when the connection flushes — once per tick,
 * all ready ACKs in one socket write, each frame whole.
 *
 * An idle connection costs little beyond Node's socket: the reader is made when bytes arrive,
 * the handlers' side at the HELLO; the socket's listeners are shared by every connection.
 */
import type { Socket } from "node:net";
import {
  type Disconnect,
  DisconnectStatus,
  disconnectReason,
  type Frame,
  FrameReader,
  FrameType,
  type HaproxyDisconnectFrame,
  type HaproxyHelloFrame,
  parseDisconnect,
  SpopError,
} from "@spoekit/spop-codec";
import { dc } from "./channels.ts";
import { ConnectionFields } from "./connection-fields.ts";
import { Dispatcher } from "./dispatch.ts";
import {
  AgentClosedError,
  ConnectionClosedError,
  ResourceLimitError,
  type SpoeAgentError,
} from "./errors.ts";
import type { Exchange } from "./exchange.ts";
import { Outbox, publishDisconnect, publishFramesOut } from "./outbox.ts";
import type { Runtime } from "./runtime.ts";
import { acceptHello, answerHello, type Handshake, outOfOrder, State } from "./session.ts";
import { Teardown, writeDisconnect } from "./teardown.ts";
import { type TimeoutQueue, timeoutsOf } from "./timeouts.ts";
import type { ManagedConnection } from "./types.ts";

/** The connection a socket belongs to, for the listeners every socket shares. */
const CONNECTION = Symbol("connection");
type Owned = Socket & { [CONNECTION]: Connection };

/** @internal Created by the agent for each accepted socket. */
export class Connection extends ConnectionFields implements ManagedConnection {
  /** Made when the first bytes arrive. */
  #reader: FrameReader | undefined = undefined;
  /** The handlers' side, made when the HELLO is done (no NOTIFY is taken before). */
  #dispatcher: Dispatcher | undefined = undefined;
  #outbox: Outbox | undefined = undefined;
  #state: State = State.HANDSHAKE;
  /** False once HAPROXY-DISCONNECT arrived: nothing after it is read. */
  #readFrames = true;
  #paused = false;
  /** Inside #pump(): a nested call (a drain started by a frame) leaves the work to the outer one. */
  #pumping = false;
  /** In the runtime's flush queue. */
  #scheduled = false;
  /** Inside a 'data' event: ACKs ready by its end are written at its end, not at setImmediate. */
  #reading = false;
  readonly #timeouts: TimeoutQueue;
  /** Bytes received and not yet decoded, as last counted into the runtime's total. */
  #buffered = 0;
  readonly #teardown: Teardown;

  constructor(runtime: Runtime, socket: Socket, tls: boolean) {
    super(runtime, socket, tls);
    const { options } = runtime;
    this.#teardown = new Teardown(runtime, this);
    (socket as Owned)[CONNECTION] = this;
    socket.setNoDelay(true);
    socket.on("data", Connection.#onData);
    socket.on("close", Connection.#onClose);
    socket.on("drain", Connection.#onDrain);
    socket.on("error", Connection.#onError);
    socket.on("end", Connection.#onEnd);
    this.#timeouts = timeoutsOf(options.clock);
    this.#timeouts.add(this, options.helloTimeout);
    this.debug("connection accepted");
  }

  // ── the socket's listeners, shared by every connection (`this`: the socket) ─────────────

  static readonly #onData = function (this: Socket, chunk: Buffer): void {
    (this as Owned)[CONNECTION].#read(chunk);
  };
  static readonly #onDrain = function (this: Socket): void {
    (this as Owned)[CONNECTION].#drained();
  };
  static readonly #onClose = function (this: Socket): void {
    (this as Owned)[CONNECTION].#closed();
  };
  static readonly #onError = function (this: Socket, error: NodeJS.ErrnoException): void {
    (this as Owned)[CONNECTION].#teardown.failed(error);
  };
  static readonly #onEnd = function (this: Socket): void {
    (this as Owned)[CONNECTION].#teardown.ended();
  };

  // ── reading ────────────────────────────────────────────────────────────────────────────

  #read(chunk: Buffer): void {
    if (this.#state >= State.CLOSING || !this.#readFrames) return; // read and discarded
    this.received = true; // no clock read per socket read: the idle check reads it
    const options = this.runtime.options;
    this.#reader ??= new FrameReader({
      maxFrameSize: this.maxFrameSize,
      fragmentation: options.fragmentation,
    });
    this.#reader.push(chunk);
    this.#reading = true;
    try {
      this.#pump();
    } finally {
      this.#reading = false;
    }
    // The ACKs of synchronous handlers: one write for all of this read's (activity counted).
    if (this.#outbox !== undefined && this.#outbox.size > 0) this.#write(false);
  }

  /** Takes what the bounds allow, then counts what stays buffered against its bounds. */
  #pump(): void {
    this.#take();
    if ((this.#reader?.bufferedBytes ?? 0) !== this.#buffered) this.#account();
  }

  /** Takes frames while the bounds allow; pauses or resumes the socket accordingly. */
  #take(): void {
    const reader = this.#reader;
    if (this.#pumping) return;
    const maxInFlight = this.runtime.options.maxInFlight;
    this.#pumping = true;
    try {
      while (reader !== undefined && this.#state <= State.DRAINING && this.#readFrames) {
        if (this.inFlight >= maxInFlight || this.#outbox?.blocked === true) {
          this.#pauseReading();
          return;
        }
        let frame: Frame | undefined;
        try {
          frame = reader.next();
        } catch (error) {
          this.#protocolError(error);
          return;
        }
        if (frame === undefined) break;
        this.#onFrame(frame);
      }
    } finally {
      this.#pumping = false;
    }
    if (this.#state === State.DRAINING) {
      if (this.inFlight === 0) this.#sendDisconnect(DisconnectStatus.NORMAL, disconnectReason(0));
    } else if (this.#state <= State.OPEN) {
      this.#resumeReading();
    }
  }

  /** Updates the runtime's total of buffered bytes; disconnects when a bound is passed. */
  #account(): void {
    const runtime = this.runtime;
    const buffered = this.#state >= State.CLOSING ? 0 : (this.#reader?.bufferedBytes ?? 0);
    runtime.bufferedBytes += buffered - this.#buffered;
    this.#buffered = buffered;
    const message = buffered === 0 ? undefined : runtime.overBufferBounds(buffered);
    if (message === undefined) return;
    this.#sendDisconnect(
      DisconnectStatus.RESOURCE_ALLOCATION_ERROR,
      message,
      undefined,
      new ResourceLimitError(message),
    );
  }

  #pauseReading(): void {
    if (this.#paused) return;
    this.#paused = true;
    this.socket.pause();
  }

  #resumeReading(): void {
    if (!this.#paused) return;
    this.#paused = false;
    this.socket.resume();
  }

  #onFrame(frame: Frame): void {
    if (dc.frameIn.hasSubscribers) {
      dc.frameIn.publish({ agent: this.runtime.agent, connection: this, type: frame.type, count: 1 });
    }
    const { type } = frame;
    const dispatcher = this.#dispatcher;
    if (type === FrameType.NOTIFY && dispatcher !== undefined) {
      this.inFlight++;
      dispatcher.dispatch(frame, (this.#outbox as Outbox).take());
    } else if (type === FrameType.HAPROXY_HELLO && this.#state === State.HANDSHAKE) {
      this.#onHello(frame);
    } else if (type === FrameType.HAPROXY_DISCONNECT) {
      this.#onHaproxyDisconnect(frame);
    } else {
      this.#protocolError(outOfOrder(type, this.#state));
    }
  }

  // ── handshake and disconnect ────────────────────────────────────────────────────────────

  #onHello(frame: HaproxyHelloFrame): void {
    const { options } = this.runtime;
    let handshake: Handshake;
    try {
      handshake = acceptHello(frame, options);
    } catch (error) {
      this.#protocolError(error);
      return;
    }
    const { hello, agreed } = handshake;
    this.#timeouts.remove(this);
    this.hello = hello;
    this.engineId = hello.engineId;
    this.healthcheck = hello.healthcheck;
    this.maxFrameSize = agreed.maxFrameSize;
    this.capabilities = agreed.capabilities;
    (this.#reader as FrameReader).maxFrameSize = agreed.maxFrameSize;
    const writer = this.runtime.writerFor(this.maxFrameSize);
    const bytes = answerHello(this.runtime, this, writer, agreed);
    if (hello.healthcheck) {
      this.debug("health check answered");
      this.#teardown.cause = "healthcheck";
      this.#end(bytes);
      return;
    }
    this.socket.write(bytes);
    if (this.socket.writableLength === 0) writer.release();
    this.#dispatcher = new Dispatcher(this.runtime, this, this.#onSettled);
    this.#outbox = new Outbox(this.runtime, this);
    this.#state = State.OPEN;
    const { maxFrameSize, capabilities } = agreed;
    this.debug("handshake done", { engineId: hello.engineId, maxFrameSize, capabilities });
    this.touch();
    if (options.idleTimeout > 0) this.#timeouts.add(this, this.idleCheckIn());
    if (this.runtime.closing) this.drain();
  }

  #onHaproxyDisconnect(frame: HaproxyDisconnectFrame): void {
    let disconnect: Disconnect;
    try {
      disconnect = parseDisconnect(frame);
    } catch (error) {
      this.#protocolError(error);
      return;
    }
    this.debug("HAPROXY-DISCONNECT received", { status: disconnect.status, reason: disconnect.message });
    publishDisconnect(this.runtime, this, "received", disconnect);
    this.#teardown.cause = "haproxy-disconnect";
    this.#readFrames = false;
    this.#state = State.DRAINING;
    // The rest is answered by #pump(): AGENT-DISCONNECT once the in-flight ACKs are written.
  }

  #protocolError(error: unknown): void {
    if (!(error instanceof SpopError)) throw error;
    if (this.#state >= State.CLOSING) return;
    this.#sendDisconnect(error.status, error.message, error);
  }

  /**
   * Sends the ready ACKs and AGENT-DISCONNECT in one write and ends the socket. Handlers still
   * running are cancelled: after a DISCONNECT HAProxy reads nothing more on this connection.
   */
  #sendDisconnect(status: number, message: string, cause?: SpopError, limit?: SpoeAgentError): void {
    const runtime = this.runtime;
    this.#teardown.disconnecting(status, message, cause, limit);
    this.#dispatcher?.cancelAll(new ConnectionClosedError(`the agent disconnected: ${message}`));
    const writer = this.runtime.writerFor(this.maxFrameSize);
    const acks = this.#outbox?.encode(writer) ?? 0;
    this.inFlight -= acks;
    writeDisconnect(writer, status, message);
    this.#end(writer.flush());
    if (acks > 0) publishFramesOut(runtime, this, FrameType.ACK, acks);
    publishFramesOut(runtime, this, FrameType.AGENT_DISCONNECT, 1);
    publishDisconnect(runtime, this, "sent", { status, message });
  }

  /** Writes `bytes` as the last write, then waits (bounded) for the socket to close. */
  #end(bytes: Buffer): void {
    this.#state = State.CLOSING;
    this.#timeouts.remove(this);
    this.#account(); // what is buffered now is discarded: it no longer counts
    this.#teardown.end(bytes);
    // Keep reading (and discarding) so that HAProxy's FIN is seen and the socket closes.
    this.#resumeReading();
  }

  // ── timeouts ────────────────────────────────────────────────────────────────────────────

  /**
   * @internal Called by the timeout queue at the deadline: no HELLO within `helloTimeout`, or
   * checks the idle timeout, queued again until nothing went either way for `idleTimeout` ms
   * with nothing in flight.
   */
  timedOut(): void {
    const { clock, helloTimeout, idleTimeout } = this.runtime.options;
    if (this.#state === State.HANDSHAKE) {
      this.#sendDisconnect(DisconnectStatus.TIMEOUT, `no HAPROXY-HELLO within ${helloTimeout} ms`);
      return;
    }
    if (this.#state !== State.OPEN) return;
    const busy = this.inFlight > 0;
    const quiet = this.quietAt(clock.now());
    if (!busy && quiet >= idleTimeout) {
      this.#sendDisconnect(DisconnectStatus.NORMAL, `idle for ${idleTimeout} ms`);
      return;
    }
    this.#timeouts.add(this, this.idleCheckIn(quiet, busy));
  }

  /** Graceful close (`close()`): answer what was received, read no more, AGENT-DISCONNECT 0. */
  drain(): void {
    if (this.#state === State.HANDSHAKE) {
      this.#sendDisconnect(DisconnectStatus.NORMAL, "the agent is closing");
      return;
    }
    if (this.#state !== State.OPEN) return;
    this.#state = State.DRAINING;
    this.#timeouts.remove(this);
    this.#pauseReading();
    this.#pump();
  }

  /** The close deadline passed: answer what runs per `failureAck`, disconnect, close. */
  forceClose(): void {
    if (this.#state === State.CLOSED) return;
    if (this.#state === State.CLOSING) {
      this.socket.destroy();
      return;
    }
    this.#dispatcher?.timeOutAll(new AgentClosedError("the agent's close deadline passed"));
    this.#sendDisconnect(DisconnectStatus.NORMAL, "the agent is closing");
  }

  // ── writing ─────────────────────────────────────────────────────────────────────────────

  readonly #onSettled = (exchange: Exchange): void => {
    (this.#outbox as Outbox).push(exchange);
    if (!this.#scheduled && !this.#reading) {
      this.#scheduled = true;
      this.runtime.schedule(this);
    }
  };

  /** Called by the runtime once per tick. */
  flush(): void {
    this.#scheduled = false;
    this.#write(true);
  }

  /** Writes every ready ACK in one socket write; `touch`: count the write as activity. */
  #write(touch: boolean): void {
    const outbox = this.#outbox;
    if (this.#state >= State.CLOSING || outbox === undefined || outbox.size === 0) return;
    const written = outbox.write(this.socket, this.runtime.writerFor(this.maxFrameSize));
    if (written < 0) {
      this.#pauseReading();
      return;
    }
    this.inFlight -= written;
    if (touch) this.touch();
    // Frames stay in the reader only while reading is paused; draining waits for the last ACK.
    if (this.#paused || this.#state === State.DRAINING) this.#pump();
  }

  #drained(): void {
    const outbox = this.#outbox;
    if (outbox === undefined || !outbox.blocked) return;
    outbox.blocked = false;
    if (outbox.size > 0) this.#write(true);
    else this.#pump();
  }

  // ── the socket ends ─────────────────────────────────────────────────────────────────────

  #closed(): void {
    this.#state = State.CLOSED;
    this.#timeouts.remove(this);
    this.#account();
    const { error } = this.#teardown;
    this.#dispatcher?.cancelAll(new ConnectionClosedError("the connection closed", { cause: error }));
    this.#outbox?.clear();
    const cause = this.#teardown.closed();
    this.debug("connection closed", { cause });
    this.runtime.connectionClosed(this, cause, error);
  }
}
