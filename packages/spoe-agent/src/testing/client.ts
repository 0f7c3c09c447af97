/**
 * A client that plays HAProxy's side of SPOP against any agent: HELLO (traffic or health
 * check), NOTIFY — pipelined, with HAProxy 2.6's or 3.x's stream ids — and HAPROXY-DISCONNECT;
 * it returns the agent's frames decoded. For tests, and the load generator's handshake.
 */
import { connect as connectTcp, type Socket } from "node:net";
import { type ConnectionOptions, connect as connectTls } from "node:tls";
import {
  type AckFrame,
  type AgentFrame,
  type AgentHello,
  Capability,
  DEFAULT_MAX_FRAME_SIZE,
  type Disconnect,
  encodeFrame,
  type Frame,
  FrameReader,
  FrameType,
  type HaproxyHelloParams,
  haproxyDisconnectFrame,
  haproxyHelloFrame,
  type Message,
  notifyFrame,
  parseAgentHello,
  parseDisconnect,
} from "@spoekit/spop-codec";
import { SpoeAgentError } from "../errors.ts";

/** Where an agent listens. */
export interface SpopTarget {
  /** Default `127.0.0.1`. */
  host?: string;
  port?: number;
  /** A unix socket path instead of host and port. */
  path?: string;
  /** Connect with TLS: `true`, or `node:tls` options (CA, servername, client certificate, …). */
  tls?: boolean | ConnectionOptions;
}

/** Which HAProxy's stream ids to use for NOTIFYs sent without explicit ids. */
export type IdStyle =
  /** HAProxy 2.6: stream-id counts up from 0 (the stream's unique id), frame-id 1. */
  | "haproxy-2.6"
  /** HAProxy 3.x: a fresh odd stream-id per NOTIFY, frame-id 1. */
  | "haproxy-3";

/** Options of {@link connectClient}. */
export interface SpopClientOptions extends SpopTarget {
  /** The largest frame read from the agent. Default 16380. */
  maxFrameSize?: number;
  /** Default `"haproxy-3"`. */
  ids?: IdStyle;
  /** Milliseconds to wait for a connection, an AGENT-HELLO, an ACK or a frame. Default 5000. */
  timeoutMs?: number;
}

/** How the client's connection ended. */
export interface ClientClosed {
  /** The AGENT-DISCONNECT received before the close, if any. */
  readonly disconnect: Disconnect | undefined;
  /** The socket error, if any (a reset by the agent, …). */
  readonly error: Error | undefined;
  /** Frames received and not claimed by `hello()`, `notify()` or `nextFrame()`. */
  readonly unclaimed: readonly AgentFrame[];
}

/**
 * A client-side failure: `SPOP_CLIENT_TIMEOUT`, `SPOP_CLIENT_DISCONNECTED` (the agent sent
 * AGENT-DISCONNECT, see `disconnect`), `SPOP_CLIENT_CLOSED`, `SPOP_CLIENT_PROTOCOL` (the agent
 * sent bytes that are no valid frame).
 */
export class SpopClientError extends SpoeAgentError {
  override readonly name = "SpopClientError";
  /** The AGENT-DISCONNECT received, for `SPOP_CLIENT_DISCONNECTED`. */
  readonly disconnect: Disconnect | undefined;
  constructor(code: string, message: string, disconnect?: Disconnect, cause?: unknown) {
    super(code, message, { cause });
    this.disconnect = disconnect;
  }
}

interface Waiter<T> {
  resolve(value: T): void;
  reject(error: Error): void;
  timer: NodeJS.Timeout;
}

/** Opens a socket to an SPOA (TCP, unix or TLS) with TCP_NODELAY; resolves once connected. */
export function openSocket(target: SpopTarget, timeoutMs = 5000): Promise<Socket> {
  const where =
    target.path !== undefined
      ? { path: target.path }
      : { host: target.host ?? "127.0.0.1", port: target.port ?? 9000 };
  return new Promise((resolve, reject) => {
    const tlsOptions = target.tls === true ? {} : target.tls;
    const socket: Socket =
      tlsOptions === undefined || tlsOptions === false
        ? connectTcp({ ...where, noDelay: true })
        : connectTls({ ...where, ...tlsOptions });
    const event = tlsOptions === undefined || tlsOptions === false ? "connect" : "secureConnect";
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new SpopClientError("SPOP_CLIENT_TIMEOUT", `no connection within ${timeoutMs} ms`));
    }, timeoutMs);
    socket.once("error", (error) => {
      clearTimeout(timer);
      reject(error);
    });
    socket.once(event, () => {
      clearTimeout(timer);
      socket.setNoDelay(true);
      resolve(socket);
    });
  });
}

/** Connects to an agent; then say `hello()` (or `healthcheck()`). */
export async function connectClient(options: SpopClientOptions = {}): Promise<SpopClient> {
  const socket = await openSocket(options, options.timeoutMs);
  return new SpopClient(socket, options);
}

/**
 * HAProxy's side of one SPOP connection. Every method that waits rejects with
 * {@link SpopClientError} when the agent disconnects, the socket closes or `timeoutMs` passes.
 *
 * @example
 * ```ts
 * const client = await connectClient({ port: 9000 });
 * await client.hello();
 * const ack = await client.notify([checkRateMessage("192.0.2.1")]);
 * console.log(ack.actions);
 * await client.disconnect();
 * ```
 */
export class SpopClient {
  /** The connection to the agent. */
  readonly socket: Socket;
  /** The AGENT-HELLO, once received. */
  agentHello: AgentHello | undefined = undefined;
  /** Resolves when the socket closes (never rejects). */
  readonly closed: Promise<ClientClosed>;

  readonly #reader: FrameReader;
  readonly #timeoutMs: number;
  readonly #ids: IdStyle;
  #nextStreamId: number;
  #hello: Waiter<AgentHello> | undefined = undefined;
  readonly #acks = new Map<string, Waiter<AckFrame>>();
  readonly #unclaimed: AgentFrame[] = [];
  readonly #frameWaiters: Waiter<AgentFrame>[] = [];
  #disconnect: Disconnect | undefined = undefined;
  #error: Error | undefined = undefined;
  #isClosed = false;
  #onClose: () => void = () => {};
  readonly #onError = (error: Error): void => {
    this.#error = error;
  };

  /** Wraps a connected socket; {@link connectClient} does it for you. */
  constructor(socket: Socket, options: SpopClientOptions = {}) {
    this.socket = socket;
    this.#reader = new FrameReader({ maxFrameSize: options.maxFrameSize ?? DEFAULT_MAX_FRAME_SIZE });
    this.#timeoutMs = options.timeoutMs ?? 5000;
    this.#ids = options.ids ?? "haproxy-3";
    this.#nextStreamId = this.#ids === "haproxy-3" ? 1 : 0;
    socket.on("data", this.#onData);
    socket.on("error", this.#onError);
    this.closed = new Promise((resolve) => {
      this.#onClose = () => {
        this.#isClosed = true;
        this.#failAll(
          new SpopClientError(
            this.#disconnect === undefined ? "SPOP_CLIENT_CLOSED" : "SPOP_CLIENT_DISCONNECTED",
            this.#disconnect === undefined
              ? `the connection closed${this.#error === undefined ? "" : `: ${this.#error.message}`}`
              : `the agent disconnected with status ${this.#disconnect.status}: ${this.#disconnect.message}`,
            this.#disconnect,
            this.#error,
          ),
        );
        resolve({ disconnect: this.#disconnect, error: this.#error, unclaimed: [...this.#unclaimed] });
      };
      socket.once("close", this.#onClose);
    });
  }

  /** The AGENT-DISCONNECT received, if any. */
  get disconnectReceived(): Disconnect | undefined {
    return this.#disconnect;
  }

  /**
   * Sends HAPROXY-HELLO (by default as HAProxy 2.6 does for traffic: version 2.0, 16380 bytes,
   * `pipelining,async`, an engine-id) and resolves with the AGENT-HELLO.
   */
  hello(params: Partial<HaproxyHelloParams> = {}): Promise<AgentHello> {
    return this.#sayHello({
      maxFrameSize: DEFAULT_MAX_FRAME_SIZE,
      capabilities: [Capability.PIPELINING, Capability.ASYNC],
      engineId: "spoekit-test-client",
      ...params,
    });
  }

  /**
   * A health-check HELLO, as `option spop-check` sends it (no capabilities, `healthcheck`
   * true, no engine-id): resolves with the AGENT-HELLO; the agent then closes (see `closed`).
   */
  healthcheck(params: Partial<HaproxyHelloParams> = {}): Promise<AgentHello> {
    return this.#sayHello({
      maxFrameSize: DEFAULT_MAX_FRAME_SIZE,
      capabilities: [],
      healthcheck: true,
      ...params,
    });
  }

  #sayHello(params: HaproxyHelloParams): Promise<AgentHello> {
    if (this.#hello !== undefined)
      throw new SpopClientError("SPOP_CLIENT_STATE", "a HELLO is already pending");
    const promise = this.#wait<AgentHello>(
      (waiter) => {
        this.#hello = waiter;
      },
      "AGENT-HELLO",
      () => {
        this.#hello = undefined;
      },
    );
    this.send(haproxyHelloFrame(params));
    return promise;
  }

  /**
   * Sends a NOTIFY with `messages` and resolves with its ACK. Without `ids`, the next stream id
   * of the client's {@link IdStyle} and frame-id 1. Call it many times without awaiting to
   * pipeline; ACKs are matched by (stream-id, frame-id).
   */
  notify(messages: readonly Message[], ids?: { streamId: number; frameId: number }): Promise<AckFrame> {
    const { streamId, frameId } = ids ?? this.nextIds();
    const key = `${streamId}/${frameId}`;
    if (this.#acks.has(key)) {
      throw new SpopClientError("SPOP_CLIENT_STATE", `a NOTIFY ${key} is already waiting for its ACK`);
    }
    const promise = this.#wait<AckFrame>(
      (waiter) => this.#acks.set(key, waiter),
      `the ACK of ${key}`,
      () => this.#acks.delete(key),
    );
    this.send(notifyFrame(streamId, frameId, messages));
    return promise;
  }

  /** The ids the next NOTIFY without explicit ids gets. */
  nextIds(): { streamId: number; frameId: number } {
    const streamId = this.#nextStreamId;
    this.#nextStreamId += this.#ids === "haproxy-3" ? 2 : 1;
    return { streamId, frameId: 1 };
  }

  /**
   * Sends HAPROXY-DISCONNECT and resolves with the agent's AGENT-DISCONNECT once the connection
   * closed (`undefined` if the agent closed without one).
   */
  async disconnect(status = 0, message?: string): Promise<Disconnect | undefined> {
    this.send(haproxyDisconnectFrame(status, message));
    const closed = await this.closed;
    return closed.disconnect;
  }

  /**
   * Writes a frame (encoded without a size limit, to test the agent's) or raw bytes — anything,
   * valid or not — in one socket write.
   */
  send(frame: Frame | Uint8Array): void {
    const bytes = frame instanceof Uint8Array ? frame : encodeFrame(frame, { maxFrameSize: 0xffffffff });
    this.socket.write(bytes);
  }

  /** The next frame not claimed by `hello()` or `notify()` (e.g. an ACK for raw bytes sent). */
  nextFrame(): Promise<AgentFrame> {
    const frame = this.#unclaimed.shift();
    if (frame !== undefined) return Promise.resolve(frame);
    return this.#wait<AgentFrame>(
      (waiter) => this.#frameWaiters.push(waiter),
      "a frame",
      (waiter) => {
        const index = this.#frameWaiters.indexOf(waiter);
        if (index >= 0) this.#frameWaiters.splice(index, 1);
      },
    );
  }

  /** Closes the connection with a FIN, without DISCONNECT. */
  end(): Promise<ClientClosed> {
    this.socket.end();
    return this.closed;
  }

  /** Closes the connection with a TCP RST, as HAProxy 3.x often does. */
  reset(): Promise<ClientClosed> {
    if (typeof this.socket.resetAndDestroy === "function" && !this.socket.destroyed) {
      this.socket.resetAndDestroy();
    } else {
      this.socket.destroy();
    }
    return this.closed;
  }

  /**
   * Hands the socket over (e.g. to a load generator after the HELLO): the client stops reading
   * it. Fails if frames are pending or bytes are buffered.
   */
  release(): Socket {
    if (this.#reader.bufferedBytes > 0 || this.#acks.size > 0 || this.#hello !== undefined) {
      throw new SpopClientError("SPOP_CLIENT_STATE", "the connection still has frames in flight");
    }
    this.socket.off("data", this.#onData);
    this.socket.off("error", this.#onError);
    this.socket.off("close", this.#onClose);
    return this.socket;
  }

  #wait<T>(
    register: (waiter: Waiter<T>) => void,
    what: string,
    unregister?: (waiter: Waiter<T>) => void,
  ): Promise<T> {
    if (this.#isClosed) {
      return Promise.reject(
        new SpopClientError("SPOP_CLIENT_CLOSED", `closed before ${what}`, this.#disconnect),
      );
    }
    return new Promise<T>((resolve, reject) => {
      const waiter: Waiter<T> = {
        resolve: (value) => {
          clearTimeout(waiter.timer);
          resolve(value);
        },
        reject: (error) => {
          clearTimeout(waiter.timer);
          reject(error);
        },
        timer: setTimeout(() => {
          unregister?.(waiter);
          reject(new SpopClientError("SPOP_CLIENT_TIMEOUT", `no ${what} within ${this.#timeoutMs} ms`));
        }, this.#timeoutMs),
      };
      register(waiter);
    });
  }

  readonly #onData = (chunk: Buffer): void => {
    try {
      this.#reader.push(chunk);
      for (let frame = this.#reader.next(); frame !== undefined; frame = this.#reader.next()) {
        this.#onFrame(frame as AgentFrame);
      }
    } catch (error) {
      this.#error = new SpopClientError(
        "SPOP_CLIENT_PROTOCOL",
        `the agent sent an invalid frame: ${(error as Error).message}`,
        undefined,
        error,
      );
      this.socket.destroy();
    }
  };

  #onFrame(frame: AgentFrame): void {
    switch (frame.type) {
      case FrameType.AGENT_HELLO: {
        const waiter = this.#hello;
        if (waiter === undefined) break;
        this.#hello = undefined;
        try {
          this.agentHello = parseAgentHello(frame);
          waiter.resolve(this.agentHello);
        } catch (error) {
          waiter.reject(error as Error);
        }
        return;
      }
      case FrameType.ACK: {
        const key = `${frame.streamId}/${frame.frameId}`;
        const waiter = this.#acks.get(key);
        if (waiter === undefined) break;
        this.#acks.delete(key);
        waiter.resolve(frame);
        return;
      }
      case FrameType.AGENT_DISCONNECT:
        this.#disconnect = parseDisconnect(frame);
        break;
    }
    const frameWaiter = this.#frameWaiters.shift();
    if (frameWaiter !== undefined) frameWaiter.resolve(frame);
    else this.#unclaimed.push(frame);
  }

  #failAll(error: SpopClientError): void {
    this.#hello?.reject(error);
    this.#hello = undefined;
    for (const waiter of this.#acks.values()) waiter.reject(error);
    this.#acks.clear();
    for (const waiter of this.#frameWaiters.splice(0)) waiter.reject(error);
  }
}
