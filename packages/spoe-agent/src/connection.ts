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
 */
import type { Socket } from "node:net";
import {
  agentDisconnectFrame,
  agentHelloFrame,
  type Disconnect,
  DisconnectStatus,
  disconnectReason,
  type Frame,
  FrameReader,
  FrameType,
  type HaproxyDisconnectFrame,
  type HaproxyHello,
  type HaproxyHelloFrame,
  parseDisconnect,
  SpopError,
} from "@spoekit/spop-codec";
import type { Logger } from "pino";
import { dc } from "./channels.ts";
import { Dispatcher } from "./dispatch.ts";
import {
  AgentClosedError,
  ConnectionClosedError,
  ProtocolError,
  ResourceLimitError,
  type SpoeAgentError,
} from "./errors.ts";
import type { Exchange } from "./exchange.ts";
import { Outbox, publishDisconnect, publishFramesOut } from "./outbox.ts";
import type { Runtime } from "./runtime.ts";
import { acceptHello, type Handshake, outOfOrder, State } from "./session.ts";
import { peerOf, Teardown } from "./teardown.ts";
import { Timeouts } from "./timeouts.ts";
import type { ManagedConnection } from "./types.ts";

/** @internal Created by the agent for each accepted socket. */
export class Connection implements ManagedConnection {
  readonly id: number;
  readonly socket: Socket;
  readonly tls: boolean;
  readonly remoteAddress: string | undefined;
  readonly remotePort: number | undefined;
  readonly log: Logger;
  hello: HaproxyHello | undefined = undefined;
  engineId: string | undefined = undefined;
  healthcheck = false;
  maxFrameSize: number;
  capabilities: readonly string[] = [];
  inFlight = 0;

  readonly #runtime: Runtime;
  readonly #reader: FrameReader;
  readonly #dispatcher: Dispatcher;
  readonly #outbox: Outbox;
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
  readonly #timeouts: Timeouts;
  /** Bytes received and not yet decoded, as last counted into the runtime's total. */
  #buffered = 0;
  readonly #teardown: Teardown;

  constructor(runtime: Runtime, socket: Socket, tls: boolean) {
    const { options } = runtime;
    this.#runtime = runtime;
    this.id = runtime.nextConnectionId();
    this.socket = socket;
    this.tls = tls;
    this.remoteAddress = socket.remoteAddress;
    this.remotePort = socket.remotePort;
    this.maxFrameSize = options.maxFrameSize;
    this.log = runtime.log.child({
      connection: this.id,
      remote: socket.remoteAddress === undefined ? "unix" : `${socket.remoteAddress}:${socket.remotePort}`,
    });
    this.#reader = new FrameReader({
      maxFrameSize: options.maxFrameSize,
      fragmentation: options.fragmentation,
    });
    this.#dispatcher = new Dispatcher(runtime, this, this.#onSettled);
    this.#outbox = new Outbox(runtime, this);
    this.#teardown = new Teardown(runtime, this);
    socket.setNoDelay(true);
    socket.on("data", this.#onData);
    socket.on("close", this.#onClose);
    socket.on("drain", this.#onDrain);
    this.#timeouts = new Timeouts(options, this.#onHelloTimeout, this.#onIdle, () => this.inFlight > 0);
    this.log.debug("connection accepted");
  }

  // ── reading ────────────────────────────────────────────────────────────────────────────

  readonly #onData = (chunk: Buffer): void => {
    if (this.#state >= State.CLOSING || !this.#readFrames) return; // read and discarded
    this.#timeouts.received();
    this.#reader.push(chunk);
    this.#reading = true;
    try {
      this.#pump();
    } finally {
      this.#reading = false;
    }
    // The ACKs of synchronous handlers: one write for all of this read's (activity counted).
    if (this.#outbox.size > 0) this.#write(false);
  };

  /** Takes what the bounds allow, then counts what stays buffered against its bounds. */
  #pump(): void {
    this.#take();
    if (this.#reader.bufferedBytes !== this.#buffered) this.#account();
  }

  /** Takes frames while the bounds allow; pauses or resumes the socket accordingly. */
  #take(): void {
    if (this.#pumping) return;
    const reader = this.#reader;
    const maxInFlight = this.#runtime.options.maxInFlight;
    this.#pumping = true;
    try {
      while (this.#state <= State.DRAINING && this.#readFrames) {
        if (this.inFlight >= maxInFlight || this.#outbox.blocked) {
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
    const runtime = this.#runtime;
    const buffered = this.#state >= State.CLOSING ? 0 : this.#reader.bufferedBytes;
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
      dc.frameIn.publish({ agent: this.#runtime.agent, connection: this, type: frame.type, count: 1 });
    }
    const { type } = frame;
    if (type === FrameType.NOTIFY && this.#state !== State.HANDSHAKE) {
      this.inFlight++;
      this.#dispatcher.dispatch(frame, this.#outbox.take());
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
    const { options } = this.#runtime;
    let handshake: Handshake;
    try {
      handshake = acceptHello(frame, options);
    } catch (error) {
      this.#protocolError(error);
      return;
    }
    const { hello, agreed } = handshake;
    this.#timeouts.clear();
    this.hello = hello;
    this.engineId = hello.engineId;
    this.healthcheck = hello.healthcheck;
    this.maxFrameSize = agreed.maxFrameSize;
    this.capabilities = agreed.capabilities;
    this.#reader.maxFrameSize = agreed.maxFrameSize;
    const writer = this.#runtime.writerFor(this.maxFrameSize);
    writer.write(agentHelloFrame(agreed));
    const bytes = writer.flush();
    publishFramesOut(this.#runtime, this, FrameType.AGENT_HELLO, 1);
    if (dc.hello.hasSubscribers) {
      dc.hello.publish({ agent: this.#runtime.agent, connection: this, healthcheck: hello.healthcheck });
    }
    if (hello.healthcheck) {
      this.log.debug("health check answered");
      this.#teardown.cause = "healthcheck";
      this.#end(bytes);
      return;
    }
    this.socket.write(bytes);
    if (this.socket.writableLength === 0) writer.release();
    this.#state = State.OPEN;
    this.log.debug(
      { engineId: hello.engineId, maxFrameSize: agreed.maxFrameSize, capabilities: agreed.capabilities },
      "handshake done",
    );
    this.#timeouts.helloDone();
    if (this.#runtime.closing) this.drain();
  }

  #onHaproxyDisconnect(frame: HaproxyDisconnectFrame): void {
    let disconnect: Disconnect;
    try {
      disconnect = parseDisconnect(frame);
    } catch (error) {
      this.#protocolError(error);
      return;
    }
    this.log.debug({ status: disconnect.status, reason: disconnect.message }, "HAPROXY-DISCONNECT received");
    publishDisconnect(this.#runtime, this, "received", disconnect);
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
    const runtime = this.#runtime;
    if (status !== DisconnectStatus.NORMAL) {
      // What a peer did: one line without a stack, rate-limited per peer (the stack at debug).
      const error = limit ?? new ProtocolError(status, message, { cause });
      runtime.peerWarn(this.log, peerOf(this.socket), { status }, error, `disconnecting: ${message}`);
      runtime.reportError(limit === undefined ? "protocol" : "limit", error, this, status);
    } else {
      this.log.debug({ reason: message }, "disconnecting");
    }
    this.#teardown.cause ??= "agent-disconnect";
    this.#dispatcher.cancelAll(new ConnectionClosedError(`the agent disconnected: ${message}`));
    const writer = this.#runtime.writerFor(this.maxFrameSize);
    const acks = this.#outbox.encode(writer);
    this.inFlight -= acks;
    try {
      writer.write(agentDisconnectFrame(status, message));
    } catch {
      // A long message may not fit a small negotiated frame size; the reason alone does.
      writer.write(agentDisconnectFrame(status));
    }
    this.#end(writer.flush());
    if (acks > 0) publishFramesOut(runtime, this, FrameType.ACK, acks);
    publishFramesOut(runtime, this, FrameType.AGENT_DISCONNECT, 1);
    publishDisconnect(runtime, this, "sent", { status, message });
  }

  /** Writes `bytes` as the last write, then waits (bounded) for the socket to close. */
  #end(bytes: Buffer): void {
    this.#state = State.CLOSING;
    this.#timeouts.clear();
    this.#account(); // what is buffered now is discarded: it no longer counts
    this.#teardown.end(bytes);
    // Keep reading (and discarding) so that HAProxy's FIN is seen and the socket closes.
    this.#resumeReading();
  }

  readonly #onHelloTimeout = (): void => {
    if (this.#state !== State.HANDSHAKE) return;
    this.#sendDisconnect(
      DisconnectStatus.TIMEOUT,
      `no HAPROXY-HELLO within ${this.#runtime.options.helloTimeout} ms`,
    );
  };

  readonly #onIdle = (): void => {
    if (this.#state !== State.OPEN) return;
    this.#sendDisconnect(DisconnectStatus.NORMAL, `idle for ${this.#runtime.options.idleTimeout} ms`);
  };

  /** Graceful close (`close()`): answer what was received, read no more, AGENT-DISCONNECT 0. */
  drain(): void {
    if (this.#state === State.HANDSHAKE) {
      this.#sendDisconnect(DisconnectStatus.NORMAL, "the agent is closing");
      return;
    }
    if (this.#state !== State.OPEN) return;
    this.#state = State.DRAINING;
    this.#timeouts.clear();
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
    this.#dispatcher.timeOutAll(new AgentClosedError("the agent's close deadline passed"));
    this.#sendDisconnect(DisconnectStatus.NORMAL, "the agent is closing");
  }

  // ── writing ─────────────────────────────────────────────────────────────────────────────

  readonly #onSettled = (exchange: Exchange): void => {
    this.#outbox.push(exchange);
    if (!this.#scheduled && !this.#reading) {
      this.#scheduled = true;
      this.#runtime.schedule(this);
    }
  };

  /** Called by the runtime once per tick. */
  flush(): void {
    this.#scheduled = false;
    this.#write(true);
  }

  /** Writes every ready ACK in one socket write; `touch`: count the write as activity. */
  #write(touch: boolean): void {
    if (this.#state >= State.CLOSING || this.#outbox.size === 0) return;
    const written = this.#outbox.write(this.socket, this.#runtime.writerFor(this.maxFrameSize));
    if (written < 0) {
      this.#pauseReading();
      return;
    }
    this.inFlight -= written;
    if (touch) this.#timeouts.touch();
    // Frames stay in the reader only while reading is paused; draining waits for the last ACK.
    if (this.#paused || this.#state === State.DRAINING) this.#pump();
  }

  readonly #onDrain = (): void => {
    if (!this.#outbox.blocked) return;
    this.#outbox.blocked = false;
    if (this.#outbox.size > 0) this.#write(true);
    else this.#pump();
  };

  // ── the socket ends ─────────────────────────────────────────────────────────────────────

  readonly #onClose = (): void => {
    this.#state = State.CLOSED;
    this.#timeouts.clear();
    this.#account();
    const { error } = this.#teardown;
    this.#dispatcher.cancelAll(new ConnectionClosedError("the connection closed", { cause: error }));
    this.#outbox.clear();
    const cause = this.#teardown.closed();
    this.log.debug({ cause }, "connection closed");
    this.#runtime.connectionClosed(this, cause, error);
  };
}
