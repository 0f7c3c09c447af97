/**
 * The state an agent's connections share, internal: resolved options, handlers, hooks, the one
 * frame writer, and the write scheduler that groups every ACK made ready in a tick into one
 * socket write per connection.
 */
import { FrameWriter } from "@spoekit/spop-codec";
import type { Logger } from "pino";
import { dc } from "./channels.ts";
import { HookFailedError } from "./errors.ts";
import type { Exchange } from "./exchange.ts";
import type { MessageHandler } from "./message-context.ts";
import type { ResolvedOptions } from "./options.ts";
import { PeerLog } from "./peer-log.ts";
import type { AgentHooks, CloseCause, ConnectionInfo, ErrorKind, ManagedConnection } from "./types.ts";

type HookLists = { [K in keyof AgentHooks]: AgentHooks[K][] };

/** Internal: what one agent's connections share. */
export class Runtime {
  /** The agent, as published on the diagnostics channels. */
  readonly agent: object;
  readonly options: ResolvedOptions;
  readonly log: Logger;
  /**
   * Shared by every connection: frames are encoded only when a connection flushes, and each
   * flush hands out its bytes before the next connection writes, so one slab serves them all.
   */
  readonly writer: FrameWriter;
  /** Set through {@link Runtime.setHandler}, which keeps {@link Runtime.handlerFor}'s memo right. */
  readonly handlers = new Map<string, MessageHandler>();
  /** Exchanges recycled for the next NOTIFYs, shared by every connection (see `Outbox`). */
  readonly exchanges: Exchange[] = [];
  catchAll: MessageHandler | undefined = undefined;
  /** The last message name looked up and its handler: NOTIFY after NOTIFY repeats one name. */
  #lastName: string | undefined = undefined;
  #lastHandler: MessageHandler | undefined = undefined;
  readonly hooks: HookLists = {
    onListen: [],
    onConnection: [],
    onConnectionClose: [],
    preClose: [],
    onClose: [],
  };
  readonly connections = new Set<ManagedConnection>();
  closing = false;
  /** Bytes received and not yet decoded, over every connection. */
  bufferedBytes = 0;
  /** Rate limit of what peers make the agent log. */
  readonly peerLog: PeerLog;
  #nextConnectionId = 1;
  #dirty: ManagedConnection[] = [];
  #spare: ManagedConnection[] = [];
  #immediate: NodeJS.Immediate | undefined = undefined;
  /** Called when the last connection closes while the agent is closing. */
  onIdle: (() => void) | undefined = undefined;

  constructor(agent: object, options: ResolvedOptions) {
    this.agent = agent;
    this.options = options;
    this.log = options.logger;
    this.writer = new FrameWriter({ maxFrameSize: options.maxFrameSize });
    this.peerLog = new PeerLog(options.clock);
  }

  /** The shared writer, set to a connection's negotiated max-frame-size. */
  writerFor(maxFrameSize: number): FrameWriter {
    const writer = this.writer;
    // The setter validates; connections mostly share one negotiated size.
    if (writer.maxFrameSize !== maxFrameSize) writer.maxFrameSize = maxFrameSize;
    return writer;
  }

  nextConnectionId(): number {
    return this.#nextConnectionId++;
  }

  /** Registers the handler of message `name`, or the catch-all (`name` undefined). */
  setHandler(name: string | undefined, handler: MessageHandler): void {
    if (name === undefined) this.catchAll = handler;
    else this.handlers.set(name, handler);
    this.#lastName = undefined;
    this.#lastHandler = undefined;
  }

  handlerFor(name: string): MessageHandler | undefined {
    // Decoded names are the reader's cached strings: the same name is the same string.
    if (name === this.#lastName) return this.#lastHandler;
    const handler = this.handlers.get(name) ?? this.catchAll;
    this.#lastName = name;
    this.#lastHandler = handler;
    return handler;
  }

  /** Queues `connection` for a flush once this tick's I/O is done (one setImmediate for all). */
  schedule(connection: ManagedConnection): void {
    this.#dirty.push(connection);
    if (this.#immediate === undefined) this.#immediate = setImmediate(this.#flushAll);
  }

  readonly #flushAll = (): void => {
    this.#immediate = undefined;
    const dirty = this.#dirty;
    this.#dirty = this.#spare;
    this.#spare = dirty;
    for (let i = 0; i < dirty.length; i++) (dirty[i] as ManagedConnection).flush();
    dirty.length = 0;
  };

  reportError(kind: ErrorKind, error: Error, connection?: ConnectionInfo, status?: number): void {
    if (dc.error.hasSubscribers) {
      dc.error.publish({ agent: this.agent, connection, kind, error, status });
    }
  }

  /** Runs the synchronous hooks `name`; a hook that throws is logged and reported, not fatal. */
  runHooks<K extends "onConnection" | "onConnectionClose">(
    name: K,
    ...args: Parameters<AgentHooks[K]>
  ): void {
    for (const hook of this.hooks[name]) {
      try {
        (hook as (...a: Parameters<AgentHooks[K]>) => void)(...args);
      } catch (error) {
        this.hookFailed(name, error);
      }
    }
  }

  /**
   * Logs what a peer did wrong: one warning line without a stack, at most one per peer per
   * window (with `suppressed`, the lines left out since the last); every one with its stack at
   * debug level.
   */
  peerWarn(log: Logger, peer: string, fields: Record<string, unknown>, error: Error, msg: string): void {
    const suppressed = this.peerLog.allow(peer);
    if (suppressed >= 0) log.warn(suppressed > 0 ? { ...fields, suppressed } : fields, msg);
    if (log.isLevelEnabled("debug")) log.debug({ ...fields, err: error }, msg);
  }

  /**
   * Whether a connection holding `buffered` undecoded bytes (already counted in the total)
   * passes `maxBufferedBytes` or `maxTotalBufferedBytes`: the disconnect message, or `undefined`.
   */
  overBufferBounds(buffered: number): string | undefined {
    const { maxBufferedBytes, maxTotalBufferedBytes } = this.options;
    const bound =
      buffered > maxBufferedBytes
        ? `maxBufferedBytes (${maxBufferedBytes})`
        : this.bufferedBytes > maxTotalBufferedBytes
          ? `maxTotalBufferedBytes (${maxTotalBufferedBytes}) over all connections`
          : undefined;
    return bound === undefined ? undefined : `${buffered} bytes buffered and not decoded: beyond ${bound}`;
  }

  hookFailed(name: string, error: unknown): void {
    const failure =
      error instanceof Error
        ? error
        : new HookFailedError(`the ${name} hook threw a non-Error value: ${String(error)}`, { cause: error });
    this.log.error({ err: failure, hook: name }, "hook failed");
    this.reportError("hook", failure);
  }

  connectionOpened(connection: ManagedConnection): void {
    this.connections.add(connection);
    if (dc.connectionOpen.hasSubscribers) dc.connectionOpen.publish({ agent: this.agent, connection });
    this.runHooks("onConnection", connection);
  }

  connectionClosed(connection: ManagedConnection, cause: CloseCause, error: Error | undefined): void {
    this.connections.delete(connection);
    if (dc.connectionClose.hasSubscribers) {
      dc.connectionClose.publish({ agent: this.agent, connection, cause, error });
    }
    this.runHooks("onConnectionClose", connection, cause);
    if (this.closing && this.connections.size === 0) this.onIdle?.();
  }
}
