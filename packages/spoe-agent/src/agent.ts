/**
 * The public face: {@link createAgent} and the {@link SpoeAgent} it returns — handlers per SPOE
 * message, lifecycle hooks, `listen()` on TCP, unix sockets and TLS, and a graceful `close()`.
 */
import type { Server, Socket } from "node:net";
import type { Logger } from "pino";
import { dc } from "./channels.ts";
import { Connection } from "./connection.ts";
import { AgentClosedError, InvalidOptionError } from "./errors.ts";
import {
  createServer,
  type ListenAddress,
  type ListenOptions,
  parseListenAddress,
  startListening,
} from "./listen.ts";
import type { MessageHandler } from "./message-context.ts";
import { type AgentOptions, resolveOptions } from "./options.ts";
import { Refusals } from "./refusals.ts";
import { Runtime } from "./runtime.ts";
import type { AgentHooks, ConnectionInfo } from "./types.ts";

/**
 * An SPOE agent: register handlers, then `listen()`. Create it with {@link createAgent}.
 *
 * @example
 * ```ts
 * const agent = createAgent({ handlerTimeout: 50 });
 * agent.message("check-rate", (message) => {
 *   message.setVar(Scope.SESS, "ip_score", TypedValue.int32(0));
 * });
 * await agent.listen({ host: "0.0.0.0", port: 9000 });
 * process.once("SIGTERM", () => agent.close());
 * ```
 */
export class SpoeAgent {
  readonly #runtime: Runtime;
  readonly #servers = new Set<Server>();
  readonly #refusals: Refusals;
  /** Every accepted socket (TLS: the TCP socket under it), to destroy at the close deadline. */
  readonly #sockets = new Set<Socket>();
  /** The `close` listener of every tracked socket (`this`: the socket): one for all of them. */
  readonly #untrack: (this: Socket) => void;
  readonly #addresses: ListenAddress[] = [];
  #closed: Promise<void> | undefined = undefined;
  #unlinkSignal: (() => void) | undefined = undefined;

  /** @internal Use {@link createAgent}. */
  constructor(options: AgentOptions = {}) {
    this.#runtime = new Runtime(this, resolveOptions(options));
    this.#refusals = new Refusals(this.#runtime, this.#servers);
    const sockets = this.#sockets;
    this.#untrack = function (this: Socket) {
      sockets.delete(this);
    };
    const { signal } = options;
    if (signal !== undefined) {
      const onAbort = () => void this.close();
      if (signal.aborted) {
        onAbort();
      } else {
        signal.addEventListener("abort", onAbort, { once: true });
        this.#unlinkSignal = () => signal.removeEventListener("abort", onAbort);
      }
    }
  }

  /** The agent's logger (each connection logs through a child of it). */
  get log(): Logger {
    return this.#runtime.log;
  }

  /** True once `close()` was called (or the `signal` aborted). */
  get closing(): boolean {
    return this.#runtime.closing;
  }

  /** The open connections. */
  get connections(): ReadonlySet<ConnectionInfo> {
    return this.#runtime.connections;
  }

  /** Where the agent listens. */
  get addresses(): readonly ListenAddress[] {
    return this.#addresses;
  }

  /**
   * Handles the SPOE message `name` (as in `spoe-message <name>`). One handler per name; it may
   * be `async`. Registering twice is an error.
   */
  message(name: string, handler: MessageHandler): this {
    if (typeof name !== "string") throw new InvalidOptionError("a message name is a string");
    if (typeof handler !== "function")
      throw new InvalidOptionError(`the handler of "${name}" is not a function`);
    if (this.#runtime.handlers.has(name)) {
      throw new InvalidOptionError(`message "${name}" already has a handler`);
    }
    this.#runtime.setHandler(name, handler);
    return this;
  }

  /**
   * Handles every message that has no handler of its own. Without one, such messages are
   * skipped (their NOTIFY is still answered).
   */
  catchAll(handler: MessageHandler): this {
    if (typeof handler !== "function")
      throw new InvalidOptionError("the catch-all handler is not a function");
    if (this.#runtime.catchAll !== undefined)
      throw new InvalidOptionError("a catch-all handler is already set");
    this.#runtime.setHandler(undefined, handler);
    return this;
  }

  /** Adds a lifecycle hook (see {@link AgentHooks}). */
  addHook<K extends keyof AgentHooks>(name: K, hook: AgentHooks[K]): this {
    const hooks = this.#runtime.hooks[name] as AgentHooks[K][] | undefined;
    if (hooks === undefined) throw new InvalidOptionError(`unknown hook "${String(name)}"`);
    if (typeof hook !== "function") throw new InvalidOptionError(`the ${name} hook is not a function`);
    hooks.push(hook);
    return this;
  }

  /**
   * Starts a server: TCP (`{ port, host }`), a unix socket (`{ path }`), either with `tls`, or an
   * address as text (`"0.0.0.0:9000"`, `"[::]:9000"`, `":9000"`, `"unix:/run/spoa.sock"`). May be
   * called more than once to listen on several addresses. Resolves with the bound address.
   */
  async listen(target: ListenOptions | string): Promise<ListenAddress> {
    const runtime = this.#runtime;
    if (runtime.closing) throw new AgentClosedError("the agent is closing; it cannot listen");
    const options = typeof target === "string" ? parseListenAddress(target) : target;
    const server = createServer(options, runtime.options.helloTimeout, this.#accept, this.#onTlsError);
    server.on("connection", options.tls === undefined ? this.#track : this.#trackTls);
    this.#refusals.watch(server);
    let address: ListenAddress;
    try {
      address = await startListening(server, options);
    } catch (error) {
      server.close();
      throw error;
    }
    server.on("error", (error) => {
      runtime.log.error({ err: error, address: address.url }, "server error");
      runtime.reportError("socket", error);
    });
    this.#servers.add(server);
    this.#addresses.push(address);
    if (runtime.closing) server.close();
    runtime.log.info({ address: address.url }, "listening");
    if (dc.listen.hasSubscribers) dc.listen.publish({ agent: this, address });
    for (const hook of runtime.hooks.onListen) {
      try {
        await hook(address);
      } catch (error) {
        runtime.hookFailed("onListen", error);
      }
    }
    return address;
  }

  /**
   * Closes gracefully: stops accepting, lets every connection answer the NOTIFYs it received
   * (for up to `closeTimeout` ms; then the handlers still running are answered per
   * `failureAck`), sends AGENT-DISCONNECT status 0, closes the sockets. Resolves when every
   * server and connection is closed; calling it again returns the same promise.
   */
  close(): Promise<void> {
    this.#closed ??= this.#close();
    return this.#closed;
  }

  async #close(): Promise<void> {
    const runtime = this.#runtime;
    runtime.closing = true;
    this.#unlinkSignal?.();
    await this.#runHooks("preClose");
    const serversClosed = Promise.all(
      [...this.#servers].map((server) => new Promise<void>((resolve) => server.close(() => resolve()))),
    );
    const allClosed = new Promise<void>((resolve) => {
      runtime.onIdle = resolve;
      if (runtime.connections.size === 0) resolve();
    });
    for (const connection of runtime.connections) connection.drain();
    const { clock } = runtime.options;
    let deadline: unknown;
    const timedOut = await Promise.race([
      allClosed.then(() => false),
      new Promise<boolean>((resolve) => {
        deadline = clock.setTimer(() => resolve(true), runtime.options.closeTimeout);
      }),
    ]);
    clock.clearTimer(deadline);
    if (timedOut) {
      runtime.log.warn(
        { connections: runtime.connections.size },
        "close deadline passed; answering what still runs and disconnecting",
      );
      for (const connection of runtime.connections) connection.forceClose();
      await allClosed;
    }
    // Sockets that never became connections (a TLS handshake in progress) hold the servers open.
    for (const socket of this.#sockets) socket.destroy();
    await serversClosed;
    await this.#runHooks("onClose");
    runtime.log.info("closed");
  }

  async #runHooks(name: "preClose" | "onClose"): Promise<void> {
    for (const hook of this.#runtime.hooks[name]) {
      try {
        await hook();
      } catch (error) {
        this.#runtime.hookFailed(name, error);
      }
    }
  }

  readonly #track = (socket: Socket): void => {
    this.#sockets.add(socket);
    socket.on("close", this.#untrack);
  };

  /** A TCP socket under a TLS server: refused at once beyond `maxConnections` (handshakes count). */
  readonly #trackTls = (socket: Socket): void => {
    if (this.#sockets.size >= this.#runtime.options.maxConnections) {
      this.#refusals.refuse(socket, true);
      return;
    }
    this.#track(socket);
  };

  readonly #accept = (socket: Socket, tls: boolean): void => {
    const runtime = this.#runtime;
    if (runtime.closing) {
      // A TLS handshake that finished after close() began.
      socket.destroy();
      return;
    }
    if (runtime.connections.size >= runtime.options.maxConnections) {
      this.#refusals.refuse(socket, false);
      return;
    }
    runtime.connectionOpened(new Connection(runtime, socket, tls));
  };

  readonly #onTlsError = (error: Error, socket: Socket): void => {
    this.#runtime.log.debug({ err: error, remote: socket.remoteAddress }, "TLS handshake failed");
    socket.destroy();
  };
}

/**
 * Creates an SPOE agent. Every option has a default (see {@link AgentOptions}); throws
 * {@link InvalidOptionError} for an option out of range.
 */
export function createAgent(options: AgentOptions = {}): SpoeAgent {
  return new SpoeAgent(options);
}
