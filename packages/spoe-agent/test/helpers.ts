/**
 * Shared by the package's tests: agents on loopback ports, clients connected to them, captured
 * logs and diagnostics, and cleanup that runs also when a test fails (`afterEach(cleanup)`).
 */
import { type Channel, channel } from "node:diagnostics_channel";
import {
  type AgentOptions,
  type ConnectionCloseMessage,
  channels,
  createAgent,
  type MessageContext,
  type SpoeAgent,
} from "../src/index.ts";
import { connectClient, type SpopClient, type SpopClientOptions } from "../src/testing/index.ts";

const cleanups: (() => unknown)[] = [];

/** Registers something to undo after the current test. */
export function onCleanup(undo: () => unknown): void {
  cleanups.push(undo);
}

/** Undoes everything registered, newest first; use as `afterEach(cleanup)`. */
export async function cleanup(): Promise<void> {
  for (let undo = cleanups.pop(); undo !== undefined; undo = cleanups.pop()) await undo();
}

export interface TestAgent {
  readonly agent: SpoeAgent;
  readonly port: number;
  /** A connected client (closed after the test). */
  client(options?: SpopClientOptions): Promise<SpopClient>;
  /** A connected client that has said HELLO. */
  ready(options?: SpopClientOptions): Promise<SpopClient>;
}

/** A client to `port` on 127.0.0.1, destroyed after the test. */
export async function clientTo(port: number, options: SpopClientOptions = {}): Promise<SpopClient> {
  const client = await connectClient({ port, timeoutMs: 3000, ...options });
  onCleanup(() => client.socket.destroy());
  return client;
}

/** An agent on 127.0.0.1 (no logger unless given), set up by `setup`, closed after the test. */
export async function startAgent(
  options: AgentOptions = {},
  setup: (agent: SpoeAgent) => void = () => {},
): Promise<TestAgent> {
  const agent = createAgent({ logger: false, ...options });
  setup(agent);
  onCleanup(() => agent.close());
  const { port } = await agent.listen({ host: "127.0.0.1", port: 0 });
  if (port === undefined) throw new Error("no port");
  return {
    agent,
    port,
    client: (clientOptions) => clientTo(port, clientOptions),
    async ready(clientOptions) {
      const client = await clientTo(port, clientOptions);
      await client.hello();
      return client;
    },
  };
}

/** Collects what is published on diagnostics channels during the test. */
export function recordChannel<T>(name: string): T[] {
  const messages: T[] = [];
  const ch: Channel = channel(name);
  const listener = (message: unknown) => messages.push(message as T);
  ch.subscribe(listener);
  onCleanup(() => ch.unsubscribe(listener));
  return messages;
}

/** A pino-compatible destination that keeps every log line, parsed. */
export function logSink(): { write(line: string): void; lines: Record<string, unknown>[] } {
  const lines: Record<string, unknown>[] = [];
  return {
    lines,
    write(line: string) {
      lines.push(JSON.parse(line) as Record<string, unknown>);
    },
  };
}

/** A promise and the functions that settle it. */
export function deferred<T = void>(): {
  promise: Promise<T>;
  resolve: (value: T) => void;
  reject: (error: unknown) => void;
} {
  let resolve!: (value: T) => void;
  let reject!: (error: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

/** Counts events (a handler starting, …) and resolves waiters when a count is reached. */
export class Counter {
  count = 0;
  readonly #waiters: { n: number; resolve: () => void }[] = [];

  hit(): void {
    this.count++;
    for (const waiter of this.#waiters.filter((w) => w.n <= this.count)) {
      this.#waiters.splice(this.#waiters.indexOf(waiter), 1);
      waiter.resolve();
    }
  }

  /** Resolves once `n` events have happened. */
  reached(n: number): Promise<void> {
    if (this.count >= n) return Promise.resolve();
    return new Promise((resolve) => this.#waiters.push({ n, resolve }));
  }
}

/** Counts the messages published on the diagnostics channel `name` that match. */
export function countChannel<T>(name: string, matches: (message: T) => boolean = () => true): Counter {
  const counter = new Counter();
  const ch: Channel = channel(name);
  const listener = (message: unknown) => {
    if (matches(message as T)) counter.hit();
  };
  ch.subscribe(listener);
  onCleanup(() => ch.unsubscribe(listener));
  return counter;
}

/** Resolves with the next message published on the diagnostics channel `name` that matches. */
export function nextMessage<T>(name: string, matches: (message: T) => boolean = () => true): Promise<T> {
  const ch: Channel = channel(name);
  return new Promise((resolve) => {
    const listener = (message: unknown) => {
      if (!matches(message as T)) return;
      ch.unsubscribe(listener);
      resolve(message as T);
    };
    ch.subscribe(listener);
    onCleanup(() => ch.unsubscribe(listener));
  });
}

/** Resolves once `agent` has no open connection. */
export async function allClosed(agent: SpoeAgent): Promise<void> {
  while (agent.connections.size > 0) {
    await nextMessage<ConnectionCloseMessage>(channels.connectionClose, (m) => m.agent === agent);
  }
}

/** The number an argument holds (INT32, INT64, …); throws when it holds none. */
export function numberArg(message: MessageContext, name: string): number {
  const value = message.arg(name);
  if (value === undefined || !("value" in value) || typeof value.value !== "number") {
    throw new Error(`argument ${name} holds no number`);
  }
  return value.value;
}
