/**
 * A load generator for any SPOA: C connections that each say HELLO and keep D NOTIFYs in
 * flight (closed loop, as fast as the agent answers) or send at a fixed total rate (open loop,
 * bounded by D per connection); it measures NOTIFY/s and the latency from writing a NOTIFY to
 * reading its ACK, and counts what went wrong. Every frame the agent sends is decoded and
 * checked, so a misbehaving SPOA shows up as errors.
 */
import type { Socket } from "node:net";
import {
  type AckFrame,
  FrameReader,
  FrameType,
  FrameWriter,
  type HaproxyHelloParams,
  type Message,
  notifyFrame,
  parseDisconnect,
} from "@spoekit/spop-codec";
import { InvalidOptionError } from "../errors.ts";
import { connectClient, type IdStyle, type SpopTarget } from "./client.ts";
import { LatencyHistogram } from "./histogram.ts";
import { checkRateMessage } from "./messages.ts";

/** Options of {@link runLoad}. */
export interface LoadOptions extends SpopTarget {
  /** Connections to open. Default 64. */
  connections?: number;
  /** NOTIFYs in flight per connection at most (pipelining depth). Default 20. */
  depth?: number;
  /** Milliseconds measured, after the warm-up. Default 10000. */
  duration?: number;
  /** Milliseconds of load before measuring starts. Default 1000. */
  warmup?: number;
  /**
   * Total NOTIFY/s to send, spread over the connections (open loop); a NOTIFY due while its
   * connection already has `depth` in flight is not sent and counted as `missed`. Default:
   * none — every ACK is answered with a new NOTIFY at once (closed loop).
   */
  rate?: number;
  /** The messages of every NOTIFY. Default: the `check-rate` message for 127.0.0.1. */
  messages?: readonly Message[];
  /** Stream ids as HAProxy 3.x (odd, default) or 2.6 (counting) uses them. */
  ids?: IdStyle;
  /** HELLO parameters (default: as HAProxy 2.6 sends for traffic). */
  hello?: Partial<HaproxyHelloParams>;
  /** Milliseconds to wait for each connection and HELLO. Default 5000. */
  connectTimeout?: number;
  /** Stops the run early (the report covers what was measured). */
  signal?: AbortSignal;
}

/** Latency percentiles, in milliseconds. */
export interface LatencySummary {
  readonly p50: number;
  readonly p90: number;
  readonly p99: number;
  readonly p999: number;
  readonly max: number;
  readonly mean: number;
}

/** What went wrong, by kind. */
export interface LoadErrors {
  /** AGENT-DISCONNECT frames received. */
  readonly disconnects: number;
  /** Connections that closed (or failed to open) without AGENT-DISCONNECT. */
  readonly closed: number;
  /** Invalid frames, frames of the wrong type, ACKs for no NOTIFY in flight. */
  readonly protocol: number;
  /** NOTIFYs unanswered when their connection ended during the run (not those in flight at its end). */
  readonly lost: number;
  readonly total: number;
  /** The first few error descriptions. */
  readonly samples: readonly string[];
}

/** The result of {@link runLoad}. */
export interface LoadReport {
  readonly connections: number;
  readonly depth: number;
  /** The asked rate (open loop), or `undefined` (closed loop). */
  readonly targetRate: number | undefined;
  /** Milliseconds measured. */
  readonly duration: number;
  /** ACKs received in the measured window. */
  readonly notifies: number;
  /** `notifies` per second. */
  readonly rate: number;
  readonly latency: LatencySummary;
  /** Open loop: NOTIFYs not sent because their connection had `depth` in flight. */
  readonly missed: number;
  readonly errors: LoadErrors;
}

class ErrorLog {
  disconnects = 0;
  closed = 0;
  protocol = 0;
  lost = 0;
  readonly samples: string[] = [];

  note(kind: "disconnects" | "closed" | "protocol", text: string): void {
    this[kind]++;
    if (this.samples.length < 10) this.samples.push(text);
  }

  summary(): LoadErrors {
    const { disconnects, closed, protocol, lost } = this;
    return {
      disconnects,
      closed,
      protocol,
      lost,
      total: disconnects + closed + protocol + lost,
      samples: this.samples,
    };
  }
}

/** The run's clock and counters, shared by its connections. */
interface RunState {
  measuring: boolean;
  running: boolean;
  notifies: number;
  readonly histogram: LatencyHistogram;
  readonly errors: ErrorLog;
}

/** One connection's pipeline: NOTIFYs out, ACKs in, send times by stream-id. */
class LoadConnection {
  readonly #socket: Socket;
  readonly #reader: FrameReader;
  readonly #writer: FrameWriter;
  readonly #messages: readonly Message[];
  readonly #depth: number;
  readonly #step: number;
  readonly #closedLoop: boolean;
  readonly #run: RunState;
  readonly #sentAt = new Map<number, number>();
  #nextStreamId: number;
  alive = true;
  readonly closed: Promise<void>;

  constructor(
    socket: Socket,
    maxFrameSize: number,
    options: Required<Pick<LoadOptions, "depth" | "messages" | "ids">>,
    closedLoop: boolean,
    run: RunState,
  ) {
    this.#socket = socket;
    this.#reader = new FrameReader({ maxFrameSize });
    this.#writer = new FrameWriter({ maxFrameSize });
    this.#messages = options.messages;
    this.#depth = options.depth;
    this.#step = options.ids === "haproxy-3" ? 2 : 1;
    this.#nextStreamId = options.ids === "haproxy-3" ? 1 : 0;
    this.#closedLoop = closedLoop;
    this.#run = run;
    socket.on("data", this.#onData);
    socket.on("error", () => {});
    this.closed = new Promise((resolve) => socket.once("close", () => resolve()));
    socket.once("close", () => {
      if (this.alive && run.running)
        run.errors.note("closed", "a connection closed without AGENT-DISCONNECT");
      this.#end();
    });
  }

  /** Room for this many more NOTIFYs. */
  get capacity(): number {
    return this.alive ? this.#depth - this.#sentAt.size : 0;
  }

  /** Sends `count` NOTIFYs in one write. */
  send(count: number): void {
    if (count <= 0 || !this.alive) return;
    const writer = this.#writer;
    const now = performance.now();
    for (let i = 0; i < count; i++) {
      const streamId = this.#nextStreamId;
      this.#nextStreamId += this.#step;
      writer.write(notifyFrame(streamId, 1, this.#messages));
      this.#sentAt.set(streamId, now);
    }
    this.#socket.write(writer.flush());
  }

  stop(): void {
    this.#end();
    this.#socket.destroy();
  }

  #end(): void {
    if (!this.alive) return;
    this.alive = false;
    if (this.#run.running) this.#run.errors.lost += this.#sentAt.size;
    this.#sentAt.clear();
  }

  readonly #onData = (chunk: Buffer): void => {
    const run = this.#run;
    try {
      this.#reader.push(chunk);
      const now = performance.now();
      for (let frame = this.#reader.next(); frame !== undefined; frame = this.#reader.next()) {
        if (frame.type === FrameType.ACK) {
          this.#onAck(frame, now);
        } else if (frame.type === FrameType.AGENT_DISCONNECT) {
          const { status, message } = parseDisconnect(frame);
          run.errors.note("disconnects", `AGENT-DISCONNECT status ${status}: ${message}`);
          this.stop();
          return;
        } else {
          run.errors.note("protocol", `unexpected frame type ${frame.type}`);
        }
      }
    } catch (error) {
      run.errors.note("protocol", `invalid frame from the agent: ${(error as Error).message}`);
      this.stop();
      return;
    }
    if (this.#closedLoop && run.running) this.send(this.capacity);
  };

  #onAck(frame: AckFrame, now: number): void {
    const run = this.#run;
    const sentAt = this.#sentAt.get(frame.streamId);
    if (sentAt === undefined || frame.frameId !== 1) {
      run.errors.note(
        "protocol",
        `ACK for stream-id ${frame.streamId} frame-id ${frame.frameId}: no such NOTIFY in flight`,
      );
      return;
    }
    this.#sentAt.delete(frame.streamId);
    if (run.measuring) {
      run.notifies++;
      run.histogram.record((now - sentAt) * 1000);
    }
  }
}

function positive(name: string, value: number, integer = true): number {
  if (!(value > 0) || (integer && !Number.isInteger(value))) {
    throw new InvalidOptionError(
      `${name} must be a positive ${integer ? "integer" : "number"}, got ${value}`,
    );
  }
  return value;
}

const sleep = (ms: number, signal?: AbortSignal) =>
  new Promise<void>((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal?.addEventListener("abort", () => {
      clearTimeout(timer);
      resolve();
    });
  });

/** Opens the connections and says HELLO on each; those that fail count as closed. */
async function openConnections(
  options: LoadOptions,
  count: number,
  run: RunState,
  make: (socket: Socket, maxFrameSize: number) => LoadConnection,
): Promise<LoadConnection[]> {
  const opened = await Promise.all(
    Array.from({ length: count }, async () => {
      try {
        const client = await connectClient({ ...options, timeoutMs: options.connectTimeout ?? 5000 });
        try {
          const hello = await client.hello(options.hello);
          return make(client.release(), hello.maxFrameSize);
        } catch (error) {
          client.socket.destroy();
          throw error;
        }
      } catch (error) {
        run.errors.note("closed", `connection or HELLO failed: ${(error as Error).message}`);
        return undefined;
      }
    }),
  );
  return opened.filter((connection) => connection !== undefined);
}

/** Spreads `due` NOTIFYs over the connections with room, one write each; returns how many did not fit. */
function sendDue(connections: readonly LoadConnection[], due: number): number {
  const quotas = new Array<number>(connections.length).fill(0);
  let left = due;
  for (let progress = true; left > 0 && progress; ) {
    progress = false;
    for (let i = 0; i < connections.length && left > 0; i++) {
      if ((quotas[i] as number) < (connections[i] as LoadConnection).capacity) {
        quotas[i] = (quotas[i] as number) + 1;
        left--;
        progress = true;
      }
    }
  }
  connections.forEach((connection, i) => {
    connection.send(quotas[i] as number);
  });
  return left;
}

/**
 * Runs a load test against an SPOA and reports NOTIFY/s, latency percentiles and errors.
 *
 * @example
 * ```ts
 * const report = await runLoad({ port: 9000, connections: 64, depth: 20, duration: 10_000 });
 * console.log(report.rate, report.latency.p99, report.errors.total);
 * ```
 */
export async function runLoad(options: LoadOptions = {}): Promise<LoadReport> {
  const connections = positive("connections", options.connections ?? 64);
  const depth = positive("depth", options.depth ?? 20);
  const duration = positive("duration", options.duration ?? 10_000, false);
  const warmup = options.warmup ?? 1000;
  const targetRate = options.rate === undefined ? undefined : positive("rate", options.rate, false);
  const run: RunState = {
    measuring: false,
    running: true,
    notifies: 0,
    histogram: new LatencyHistogram(),
    errors: new ErrorLog(),
  };
  const settings = {
    depth,
    messages: options.messages ?? [checkRateMessage()],
    ids: options.ids ?? "haproxy-3",
  } as const;
  const pool = await openConnections(
    options,
    connections,
    run,
    (socket, maxFrameSize) =>
      new LoadConnection(socket, maxFrameSize, settings, targetRate === undefined, run),
  );

  let missed = 0;
  let measuredFrom = performance.now();
  let measuredUntil = measuredFrom;
  const started = performance.now();
  let scheduler: NodeJS.Timeout | undefined;
  if (targetRate === undefined) {
    for (const connection of pool) connection.send(depth);
  } else {
    let scheduled = 0;
    const tick = () => {
      const due = Math.floor(((performance.now() - started) * targetRate) / 1000) - scheduled;
      scheduled += due;
      const unsent = sendDue(pool, due);
      if (run.measuring) missed += unsent;
      if (run.running) scheduler = setTimeout(tick, 1);
    };
    tick();
  }
  await sleep(warmup, options.signal);
  run.measuring = true;
  measuredFrom = performance.now();
  await sleep(duration, options.signal);
  run.measuring = false;
  measuredUntil = performance.now();
  run.running = false;
  clearTimeout(scheduler);
  for (const connection of pool) connection.stop();
  await Promise.all(pool.map((connection) => connection.closed));

  const elapsed = measuredUntil - measuredFrom;
  const { histogram } = run;
  const ms = (micros: number) => micros / 1000;
  return {
    connections,
    depth,
    targetRate,
    duration: elapsed,
    notifies: run.notifies,
    rate: elapsed > 0 ? (run.notifies * 1000) / elapsed : 0,
    latency: {
      p50: ms(histogram.percentile(0.5)),
      p90: ms(histogram.percentile(0.9)),
      p99: ms(histogram.percentile(0.99)),
      p999: ms(histogram.percentile(0.999)),
      max: ms(histogram.max),
      mean: ms(histogram.mean),
    },
    missed,
    errors: run.errors.summary(),
  };
}
