/**
 * One SPOP connection from HAProxy: the HELLO handshake, NOTIFYs dispatched to handlers and
 * answered in completion order, backpressure, deadlines, DISCONNECT in both directions and
 * every way a socket can end.
 *
 * Reading is pulled: frames are taken from the {@link FrameReader} only while fewer than
 * `maxInFlight` NOTIFYs are unanswered and the socket does not need draining; otherwise the
 * socket is paused and the rest stays buffered (bounded by the stream's high-water mark), so
 * nothing queues without bound. ACKs are encoded when the connection flushes — once per tick,
 * all ready ACKs in one socket write, each frame whole.
 */
import type { Socket } from "node:net";
import {
  type Action,
  agentDisconnectFrame,
  agentHelloFrame,
  DisconnectStatus,
  disconnectReason,
  type Frame,
  FrameReader,
  FrameType,
  type FrameWriter,
  frameTypeNames,
  type HaproxyDisconnectFrame,
  type HaproxyHello,
  type HaproxyHelloFrame,
  type NotifyFrame,
  negotiateHello,
  parseDisconnect,
  parseHaproxyHello,
  SpopError,
} from "@spoekit/spop-codec";
import type { Logger } from "pino";
import { type CloseCause, dc, type NotifyOutcome } from "./diagnostics.ts";
import {
  AckEncodingError,
  AgentClosedError,
  ConnectionClosedError,
  HandlerFailedError,
  HandlerTimeoutError,
  ProtocolError,
} from "./errors.ts";
import { Exchange, MessageContext, NO_ACTIONS } from "./exchange.ts";
import type { Runtime } from "./runtime.ts";

/** What handlers, hooks and diagnostics see of a connection. */
export interface ConnectionInfo {
  /** Unique per agent, from 1. */
  readonly id: number;
  /** The socket (a `TLSSocket` with TLS). Writing to it breaks the protocol: read only. */
  readonly socket: Socket;
  readonly tls: boolean;
  /** HAProxy's address (`undefined` on a unix socket). */
  readonly remoteAddress: string | undefined;
  readonly remotePort: number | undefined;
  /** The connection's logger: a child of the agent's with `connection` and `remote`. */
  readonly log: Logger;
  /** What HAProxy's HELLO said, once received. */
  readonly hello: HaproxyHello | undefined;
  /** The `engine-id` of HAProxy's HELLO (one per SPOE engine and HAProxy process). */
  readonly engineId: string | undefined;
  /** A health-check connection (`healthcheck` in the HELLO). */
  readonly healthcheck: boolean;
  /** The negotiated max-frame-size (the agent's own until the HELLO). */
  readonly maxFrameSize: number;
  /** The negotiated capabilities (empty until the HELLO). */
  readonly capabilities: readonly string[];
  /** NOTIFYs received and not yet answered on this connection. */
  readonly inFlight: number;
}

const State = {
  /** Waiting for HAPROXY-HELLO. */
  HANDSHAKE: 0,
  OPEN: 1,
  /** Answering what is in flight (and, on `close()`, what is buffered), then AGENT-DISCONNECT. */
  DRAINING: 2,
  /** AGENT-DISCONNECT (or a health check's AGENT-HELLO) sent; waiting for the socket to close. */
  CLOSING: 3,
  CLOSED: 4,
} as const;
type State = (typeof State)[keyof typeof State];

/** Errors that mean "HAProxy went away": a normal close, logged at debug. */
const RESET_CODES = new Set(["ECONNRESET", "EPIPE", "ECONNABORTED", "ERR_STREAM_PREMATURE_CLOSE"]);
/** How long a socket may take to close after the agent ended it before it is destroyed. */
const END_GRACE_MS = 1000;

function asError(value: unknown): Error {
  return value instanceof Error
    ? value
    : new HandlerFailedError(`a handler threw a non-Error value: ${String(value)}`, { cause: value });
}

function isThenable(value: unknown): value is PromiseLike<void> {
  return (
    value !== null &&
    (typeof value === "object" || typeof value === "function") &&
    typeof (value as PromiseLike<void>).then === "function"
  );
}

/** @internal Created by the agent for each accepted socket. */
export class Connection implements ConnectionInfo {
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
  #state: State = State.HANDSHAKE;
  /** False once HAPROXY-DISCONNECT arrived: nothing after it is read. */
  #readFrames = true;
  #paused = false;
  /** Inside #pump(): a nested call (a drain started by a frame) leaves the work to the outer one. */
  #pumping = false;
  /** The last write hit the socket's high-water mark; wait for 'drain'. */
  #writeBlocked = false;
  /** In the runtime's flush queue. */
  #scheduled = false;
  /** Inside a 'data' event: ACKs ready by its end are written at its end, not at setImmediate. */
  #reading = false;
  /** Recycled exchanges, at most maxInFlight. */
  readonly #pool: Exchange[] = [];
  /**
   * Settled exchanges whose ACK is not written yet: the first `#readyCount`. The array keeps its
   * store between flushes (`length = 0` would free it), so that queueing the ACKs of a read does
   * not allocate a new one each time.
   */
  readonly #ready: Exchange[] = [];
  #readyCount = 0;
  /** Exchanges whose handlers still run, oldest first (so the head has the nearest deadline). */
  #head: Exchange | undefined = undefined;
  #tail: Exchange | undefined = undefined;
  #deadlineTimer: NodeJS.Timeout | undefined = undefined;
  #helloTimer: NodeJS.Timeout | undefined = undefined;
  #endTimer: NodeJS.Timeout | undefined = undefined;
  #closeCause: CloseCause | undefined = undefined;
  #sawEnd = false;
  #socketError: Error | undefined = undefined;

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
    socket.setNoDelay(true);
    socket.on("data", this.#onData);
    socket.on("error", this.#onError);
    socket.on("end", this.#onEnd);
    socket.on("close", this.#onClose);
    socket.on("drain", this.#onDrain);
    socket.on("timeout", this.#onIdle);
    this.#helloTimer = setTimeout(this.#onHelloTimeout, options.helloTimeout);
    this.log.debug("connection accepted");
  }

  // ── reading ────────────────────────────────────────────────────────────────────────────

  readonly #onData = (chunk: Buffer): void => {
    if (this.#state >= State.CLOSING || !this.#readFrames) return; // read and discarded
    this.#reader.push(chunk);
    this.#reading = true;
    try {
      this.#pump();
    } finally {
      this.#reading = false;
    }
    // The ACKs of synchronous handlers are ready now: one write for all of this read's.
    if (this.#readyCount > 0) this.flush();
  };

  /** Takes frames while the bounds allow; pauses or resumes the socket accordingly. */
  #pump(): void {
    if (this.#pumping) return;
    const reader = this.#reader;
    const maxInFlight = this.#runtime.options.maxInFlight;
    this.#pumping = true;
    try {
      while (this.#state <= State.DRAINING && this.#readFrames) {
        if (this.inFlight >= maxInFlight || this.#writeBlocked) {
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
    switch (frame.type) {
      case FrameType.NOTIFY:
        if (this.#state === State.HANDSHAKE) {
          this.#protocolError(
            new SpopError(DisconnectStatus.INVALID_FRAME, "NOTIFY before HAPROXY-HELLO", {
              field: "frame type",
            }),
          );
        } else {
          this.#onNotify(frame);
        }
        return;
      case FrameType.HAPROXY_HELLO:
        this.#onHello(frame);
        return;
      case FrameType.HAPROXY_DISCONNECT:
        this.#onHaproxyDisconnect(frame);
        return;
      default:
        this.#protocolError(
          new SpopError(
            DisconnectStatus.INVALID_FRAME,
            `${frameTypeNames[frame.type]} is not a frame HAProxy sends`,
            { field: "frame type" },
          ),
        );
    }
  }

  // ── handshake and disconnect ────────────────────────────────────────────────────────────

  #onHello(frame: HaproxyHelloFrame): void {
    if (this.#state !== State.HANDSHAKE) {
      this.#protocolError(
        new SpopError(DisconnectStatus.INVALID_FRAME, "a second HAPROXY-HELLO", { field: "frame type" }),
      );
      return;
    }
    const { options } = this.#runtime;
    let hello: HaproxyHello;
    let agreed: ReturnType<typeof negotiateHello>;
    try {
      hello = parseHaproxyHello(frame);
      agreed = negotiateHello(hello, {
        maxFrameSize: options.maxFrameSize,
        capabilities: options.capabilities,
      });
    } catch (error) {
      this.#protocolError(error);
      return;
    }
    clearTimeout(this.#helloTimer);
    this.hello = hello;
    this.engineId = hello.engineId;
    this.healthcheck = hello.healthcheck;
    this.maxFrameSize = agreed.maxFrameSize;
    this.capabilities = agreed.capabilities;
    this.#reader.maxFrameSize = agreed.maxFrameSize;
    const writer = this.#writer();
    writer.write(agentHelloFrame(agreed));
    const bytes = writer.flush();
    this.#published(FrameType.AGENT_HELLO, 1);
    if (dc.hello.hasSubscribers) {
      dc.hello.publish({ agent: this.#runtime.agent, connection: this, healthcheck: hello.healthcheck });
    }
    if (hello.healthcheck) {
      this.log.debug("health check answered");
      this.#closeCause = "healthcheck";
      this.#end(bytes);
      return;
    }
    this.socket.write(bytes);
    this.#state = State.OPEN;
    this.log.debug(
      { engineId: hello.engineId, maxFrameSize: agreed.maxFrameSize, capabilities: agreed.capabilities },
      "handshake done",
    );
    const { idleTimeout } = options;
    if (idleTimeout > 0) this.socket.setTimeout(idleTimeout);
    if (this.#runtime.closing) this.drain();
  }

  #onHaproxyDisconnect(frame: HaproxyDisconnectFrame): void {
    let status: number;
    let message: string;
    try {
      ({ status, message } = parseDisconnect(frame));
    } catch (error) {
      this.#protocolError(error);
      return;
    }
    this.log.debug({ status, reason: message }, "HAPROXY-DISCONNECT received");
    if (dc.disconnect.hasSubscribers) {
      dc.disconnect.publish({
        agent: this.#runtime.agent,
        connection: this,
        direction: "received",
        status,
        message,
      });
    }
    this.#closeCause = "haproxy-disconnect";
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
  #sendDisconnect(status: number, message: string, cause?: SpopError): void {
    const { agent } = this.#runtime;
    if (status !== DisconnectStatus.NORMAL) {
      const error = new ProtocolError(status, message, { cause });
      this.log.warn({ err: error, status }, "disconnecting: %s", message);
      this.#runtime.reportError("protocol", error, this, status);
    } else {
      this.log.debug({ reason: message }, "disconnecting");
    }
    this.#closeCause ??= "agent-disconnect";
    this.#cancelRunning(new ConnectionClosedError(`the agent disconnected: ${message}`));
    const writer = this.#writer();
    const acks = this.#encodeReady(writer);
    try {
      writer.write(agentDisconnectFrame(status, message));
    } catch {
      // A long message may not fit a small negotiated frame size; the reason alone does.
      writer.write(agentDisconnectFrame(status));
    }
    this.#end(writer.flush());
    if (acks > 0) this.#published(FrameType.ACK, acks);
    this.#published(FrameType.AGENT_DISCONNECT, 1);
    if (dc.disconnect.hasSubscribers) {
      dc.disconnect.publish({ agent, connection: this, direction: "sent", status, message });
    }
  }

  /** Writes `bytes` as the last write, then waits (bounded) for the socket to close. */
  #end(bytes: Buffer): void {
    this.#state = State.CLOSING;
    clearTimeout(this.#helloTimer);
    this.socket.setTimeout(0);
    this.socket.end(bytes);
    // Keep reading (and discarding) so that HAProxy's FIN is seen and the socket closes.
    this.#resumeReading();
    this.#endTimer = setTimeout(() => this.socket.destroy(), END_GRACE_MS);
    this.#endTimer.unref();
  }

  readonly #onHelloTimeout = (): void => {
    if (this.#state !== State.HANDSHAKE) return;
    this.#sendDisconnect(
      DisconnectStatus.TIMEOUT,
      `no HAPROXY-HELLO within ${this.#runtime.options.helloTimeout} ms`,
    );
  };

  readonly #onIdle = (): void => {
    if (this.#state !== State.OPEN || this.inFlight > 0) return;
    this.#sendDisconnect(DisconnectStatus.NORMAL, `idle for ${this.#runtime.options.idleTimeout} ms`);
  };

  /**
   * Graceful close (the agent's `close()`): answer what was received — in flight and still
   * buffered — without reading more, then AGENT-DISCONNECT status 0.
   */
  drain(): void {
    if (this.#state === State.HANDSHAKE) {
      this.#sendDisconnect(DisconnectStatus.NORMAL, "the agent is closing");
      return;
    }
    if (this.#state !== State.OPEN) return;
    this.#state = State.DRAINING;
    this.socket.setTimeout(0);
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
    const reason = new AgentClosedError("the agent's close deadline passed");
    while (this.#head !== undefined) this.#settle(this.#head, "timeout", reason);
    this.#sendDisconnect(DisconnectStatus.NORMAL, "the agent is closing");
  }

  // ── NOTIFY → handlers → ACK ─────────────────────────────────────────────────────────────

  #onNotify(frame: NotifyFrame): void {
    const runtime = this.#runtime;
    const exchange = this.#pool.pop() ?? new Exchange(this);
    // The clock is read only when something needs it: async handlers' deadline, diagnostics.
    exchange.begin(frame, dc.notify.hasSubscribers ? performance.now() : 0);
    this.inFlight++;
    const messages = frame.messages;
    for (let i = 0; i < messages.length; i++) {
      const message = messages[i] as NotifyFrame["messages"][number];
      const handler = runtime.handlerFor(message.name);
      if (handler === undefined) {
        this.log.debug({ message: message.name }, "no handler for this message");
        continue;
      }
      let result: void | PromiseLike<void>;
      try {
        result = handler(new MessageContext(exchange, message));
      } catch (error) {
        this.#settle(exchange, "error", asError(error));
        return;
      }
      if (isThenable(result)) {
        exchange.pending++;
        this.#watch(exchange, result);
        if (exchange.settled) return;
      }
    }
    if (exchange.pending === 0) {
      this.#settle(exchange, "ok", undefined);
      return;
    }
    this.#track(exchange);
  }

  #watch(exchange: Exchange, result: PromiseLike<void>): void {
    const { generation } = exchange;
    try {
      result.then(
        () => {
          if (exchange.generation !== generation || exchange.settled) return;
          if (--exchange.pending === 0) this.#settle(exchange, "ok", undefined);
        },
        (error: unknown) => {
          if (exchange.generation === generation && !exchange.settled) {
            this.#settle(exchange, "error", asError(error));
          }
        },
      );
    } catch (error) {
      this.#settle(exchange, "error", asError(error));
    }
  }

  /** Appends a running exchange to the pending list and arms the deadline timer if idle. */
  #track(exchange: Exchange): void {
    const tail = this.#tail;
    exchange.prev = tail;
    if (tail === undefined) this.#head = exchange;
    else tail.next = exchange;
    this.#tail = exchange;
    const timeout = this.#runtime.options.handlerTimeout;
    if (exchange.start === 0) exchange.start = performance.now();
    if (timeout > 0) {
      exchange.deadline = exchange.start + timeout;
      if (this.#deadlineTimer === undefined) this.#deadlineTimer = setTimeout(this.#onDeadline, timeout);
    }
  }

  #untrack(exchange: Exchange): void {
    const { prev, next } = exchange;
    if (prev === undefined) {
      if (this.#head !== exchange) return; // not tracked (settled synchronously)
      this.#head = next;
    } else {
      prev.next = next;
    }
    if (next === undefined) this.#tail = prev;
    else next.prev = prev;
    exchange.prev = undefined;
    exchange.next = undefined;
  }

  /** One timer per connection, armed for the oldest running exchange (deadlines are in start order). */
  readonly #onDeadline = (): void => {
    this.#deadlineTimer = undefined;
    const now = performance.now();
    const timeout = this.#runtime.options.handlerTimeout;
    for (let head = this.#head; head !== undefined && head.deadline <= now + 1; head = this.#head) {
      this.#settle(
        head,
        "timeout",
        new HandlerTimeoutError(`the handlers did not finish within ${timeout} ms; answered without them`),
      );
    }
    const head = this.#head;
    if (head !== undefined && this.#state < State.CLOSED) {
      this.#deadlineTimer = setTimeout(this.#onDeadline, Math.max(1, head.deadline - now));
    }
  };

  /** Ends an exchange: outcome, failure policy, diagnostics; queues its ACK. */
  #settle(exchange: Exchange, outcome: NotifyOutcome, error: Error | undefined): void {
    exchange.settled = true;
    exchange.outcome = outcome;
    this.#untrack(exchange);
    if (error !== undefined) this.#failed(exchange, outcome, error);
    this.#publishNotify(exchange);
    // From here on only the ids are needed: let the decoded NOTIFY go now, not at the flush.
    exchange.releaseFrame();
    this.#ready[this.#readyCount++] = exchange;
    if (!this.#scheduled && !this.#reading) {
      this.#scheduled = true;
      this.#runtime.schedule(this);
    }
  }

  #failed(exchange: Exchange, outcome: NotifyOutcome, error: Error): void {
    const { frame } = exchange;
    const runtime = this.#runtime;
    const kind = outcome === "timeout" ? "timeout" : "error";
    const details = {
      err: error,
      streamId: frame.streamId,
      frameId: frame.frameId,
      messages: frame.messages.map((message) => message.name),
    };
    if (kind === "timeout") this.log.warn(details, "NOTIFY answered at its deadline");
    else this.log.error(details, "handler failed; NOTIFY answered");
    runtime.reportError(kind === "timeout" ? "timeout" : "handler", error, this);
    exchange.abort(error);
    const policy = runtime.options.failureAck;
    if (policy === "partial") return;
    if (policy === "empty") {
      exchange.ack = NO_ACTIONS;
      return;
    }
    try {
      exchange.ack = policy({ kind, error, notify: frame, actions: [...exchange.list], connection: this });
    } catch (policyError) {
      runtime.hookFailed("failureAck", policyError);
      exchange.ack = NO_ACTIONS;
    }
  }

  #publishNotify(exchange: Exchange): void {
    if (!dc.notify.hasSubscribers) return;
    const { frame } = exchange;
    // A subscriber that came after the NOTIFY was read finds no start time: duration 0.
    dc.notify.publish({
      agent: this.#runtime.agent,
      connection: this,
      streamId: frame.streamId,
      frameId: frame.frameId,
      messages: frame.messages.length,
      duration: exchange.start === 0 ? 0 : performance.now() - exchange.start,
      outcome: exchange.outcome,
    });
  }

  /** The connection is going away: handlers still running are aborted, their ACK never sent. */
  #cancelRunning(reason: Error): void {
    clearTimeout(this.#deadlineTimer);
    this.#deadlineTimer = undefined;
    for (let exchange = this.#head; exchange !== undefined; ) {
      const next = exchange.next;
      exchange.settled = true;
      exchange.outcome = "cancelled";
      exchange.prev = undefined;
      exchange.next = undefined;
      exchange.abort(reason);
      this.#publishNotify(exchange);
      exchange = next;
    }
    this.#head = undefined;
    this.#tail = undefined;
  }

  // ── writing ─────────────────────────────────────────────────────────────────────────────

  #writer(): FrameWriter {
    const writer = this.#runtime.writer;
    writer.maxFrameSize = this.maxFrameSize;
    return writer;
  }

  /** Writes every ready ACK in one socket write; called by the runtime once per tick. */
  flush(): void {
    this.#scheduled = false;
    if (this.#state >= State.CLOSING || this.#readyCount === 0) return;
    if (this.socket.writableNeedDrain) {
      this.#writeBlocked = true;
      this.#pauseReading();
      return;
    }
    const count = this.#encodeReady(this.#writer());
    if (!this.socket.write(this.#runtime.writer.flush())) this.#writeBlocked = true;
    this.#published(FrameType.ACK, count);
    this.#pump();
  }

  /** Encodes the ready ACKs into `writer`; returns how many. */
  #encodeReady(writer: FrameWriter): number {
    const ready = this.#ready;
    const pool = this.#pool;
    const poolSize = this.#runtime.options.maxInFlight;
    const count = this.#readyCount;
    for (let i = 0; i < count; i++) {
      const exchange = ready[i] as Exchange;
      this.#encodeAck(writer, exchange);
      exchange.recycle();
      if (pool.length < poolSize) pool.push(exchange);
    }
    this.#readyCount = 0;
    this.inFlight -= count;
    return count;
  }

  #encodeAck(writer: FrameWriter, exchange: Exchange): void {
    const { streamId, frameId } = exchange;
    const filler = this.#runtime.options.noEmptyAck;
    let actions: readonly Action[] = exchange.ackActions;
    if (actions.length === 0 && filler !== undefined) actions = filler;
    try {
      writer.writeAck(streamId, frameId, actions);
    } catch (error) {
      // A SpopError (a value out of range, too many actions for the frame size), or a TypeError
      // for an object that is no typed value: never let a handler's data break the connection.
      const failure = new AckEncodingError(
        `the ACK for stream-id ${streamId} frame-id ${frameId} cannot be encoded; sent without its actions: ${(error as Error).message}`,
        { cause: error },
      );
      this.log.error({ err: failure, streamId, frameId }, "ACK sent without the handlers' actions");
      this.#runtime.reportError("encoding", failure, this);
      writer.writeAck(streamId, frameId, filler ?? NO_ACTIONS);
    }
  }

  #published(type: FrameType, count: number): void {
    if (dc.frameOut.hasSubscribers) {
      dc.frameOut.publish({ agent: this.#runtime.agent, connection: this, type, count });
    }
  }

  readonly #onDrain = (): void => {
    if (!this.#writeBlocked) return;
    this.#writeBlocked = false;
    if (this.#readyCount > 0) this.flush();
    else this.#pump();
  };

  // ── the socket ends ─────────────────────────────────────────────────────────────────────

  readonly #onError = (error: NodeJS.ErrnoException): void => {
    this.#socketError = error;
    if (error.code !== undefined && RESET_CODES.has(error.code)) {
      this.log.debug({ code: error.code }, "connection reset");
    } else {
      this.log.warn({ err: error }, "socket error");
      this.#runtime.reportError("socket", error, this);
    }
  };

  readonly #onEnd = (): void => {
    this.#sawEnd = true;
    this.log.debug("HAProxy closed the connection");
  };

  readonly #onClose = (): void => {
    this.#state = State.CLOSED;
    clearTimeout(this.#helloTimer);
    clearTimeout(this.#endTimer);
    this.#cancelRunning(new ConnectionClosedError("the connection closed", { cause: this.#socketError }));
    this.#ready.length = 0;
    this.#readyCount = 0;
    const cause: CloseCause =
      this.#closeCause ??
      (this.#socketError !== undefined ? "reset" : this.#sawEnd ? "peer-closed" : "destroyed");
    this.log.debug({ cause }, "connection closed");
    this.#runtime.connectionClosed(this, cause, this.#socketError);
  };
}
