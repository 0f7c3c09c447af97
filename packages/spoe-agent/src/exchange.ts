/**
 * One NOTIFY on its way to its ACK ({@link Exchange}), and what a handler sees of it: the
 * {@link MessageContext} of the SPOE message it handles.
 */
import {
  type Action,
  getArg,
  type Message,
  type NotifyFrame,
  type Scope,
  setVar,
  type TypedValue,
  unsetVar,
} from "@spoekit/spop-codec";
import type { Logger } from "pino";
import type { ConnectionInfo } from "./connection.ts";
import type { NotifyOutcome } from "./diagnostics.ts";
import { InvalidOptionError } from "./errors.ts";

/**
 * Handles one SPOE message of a NOTIFY: read its arguments, set variables. May be `async`; the
 * NOTIFY is answered once every handler of its messages has returned (or its promise settled),
 * or at the deadline.
 */
export type MessageHandler = (message: MessageContext) => void | PromiseLike<void>;

/** What a `failureAck` function is told about a failed NOTIFY. */
export interface HandlerFailure {
  /** `error`: a handler threw or rejected; `timeout`: the deadline passed. */
  readonly kind: "error" | "timeout";
  readonly error: Error;
  readonly notify: NotifyFrame;
  /** The actions the handlers set before the failure. */
  readonly actions: readonly Action[];
  readonly connection: ConnectionInfo;
}

/** The empty action list, shared. */
export const NO_ACTIONS: readonly Action[] = Object.freeze([]);

/** What a recycled exchange holds until its next NOTIFY, so that it keeps no frame alive. */
const NO_NOTIFY: NotifyFrame = Object.freeze({ type: 3, flags: 1, streamId: 0, frameId: 0, messages: [] });

/**
 * The state of one NOTIFY, internal: the actions gathered so far, how many async handlers are
 * still running, its deadline, its place in its connection's list of running exchanges.
 *
 * Exchanges (with their action list) are recycled by their connection once the ACK is encoded,
 * so that answering a NOTIFY allocates little more than its context and actions. `generation`
 * counts the uses: a context or a promise callback from an earlier use sees another generation
 * and leaves the exchange alone. Contexts, which handlers may keep, are never reused.
 */
export class Exchange {
  readonly connection: ConnectionInfo;
  /** The NOTIFY, until the exchange settles (see {@link Exchange.releaseFrame}). */
  frame: NotifyFrame = NO_NOTIFY;
  /** The NOTIFY's ids, which its ACK echoes. */
  streamId = 0;
  frameId = 0;
  generation = 0;
  /** `performance.now()` when the NOTIFY was read; taken only when something needs it. */
  start = 0;
  deadline = 0;
  /** Actions set by the handlers (emptied when recycled). */
  readonly list: Action[] = [];
  /** The actions to send instead of `list`, decided when the NOTIFY failed. */
  ack: readonly Action[] | undefined = undefined;
  /** Async handlers not settled yet. */
  pending = 0;
  settled = false;
  outcome: NotifyOutcome = "ok";
  controller: AbortController | undefined = undefined;
  abortReason: Error | undefined = undefined;
  /** Neighbours in the connection's list of exchanges still running, oldest first. */
  prev: Exchange | undefined = undefined;
  next: Exchange | undefined = undefined;
  constructor(connection: ConnectionInfo) {
    this.connection = connection;
  }

  /** Starts a use for `frame`. */
  begin(frame: NotifyFrame, start: number): void {
    this.frame = frame;
    this.streamId = frame.streamId;
    this.frameId = frame.frameId;
    this.start = start;
  }

  /**
   * Drops the reference to the NOTIFY once settled: its ACK needs only the ids, and a decoded
   * frame that stays reachable until the flush may be caught alive by a young-generation GC,
   * which V8 counts as survival and answers by growing the young generation.
   */
  releaseFrame(): void {
    this.frame = NO_NOTIFY;
  }

  /** Ends a use: everything back to the start, a new generation. */
  recycle(): void {
    this.generation++;
    this.frame = NO_NOTIFY;
    // Popping the one or two actions is an order of magnitude cheaper than `length = 0`.
    const list = this.list;
    while (list.length !== 0) list.pop();
    this.ack = undefined;
    this.pending = 0;
    this.settled = false;
    this.outcome = "ok";
    this.controller = undefined;
    this.abortReason = undefined;
    this.deadline = 0;
  }

  /** The actions the ACK carries. */
  get ackActions(): readonly Action[] {
    return this.ack ?? this.list;
  }

  add(action: Action, generation: number): void {
    if (this.settled || generation !== this.generation) {
      this.connection.log.debug(
        { variable: action.name },
        "variable set after the NOTIFY was answered: ignored",
      );
      return;
    }
    this.list.push(action);
  }

  signal(generation: number): AbortSignal {
    if (generation !== this.generation) return AbortSignal.abort(this.abortReason);
    if (this.controller === undefined) {
      this.controller = new AbortController();
      if (this.abortReason !== undefined) this.controller.abort(this.abortReason);
    }
    return this.controller.signal;
  }

  abort(reason: Error): void {
    this.abortReason = reason;
    this.controller?.abort(reason);
  }
}

function checkVariable(scope: Scope, name: string): void {
  if (typeof name !== "string" || name === "") {
    throw new InvalidOptionError(`a variable name must be a non-empty string, got ${String(name)}`);
  }
  if (scope !== 0 && scope !== 1 && scope !== 2 && scope !== 3 && scope !== 4) {
    throw new InvalidOptionError(
      `a variable scope is one of Scope.PROC … Scope.RES (0..4), got ${String(scope)}`,
    );
  }
}

/**
 * What a {@link MessageHandler} gets: the SPOE message (its name and arguments) and the means
 * to answer — variables set here go into the ACK of the NOTIFY the message came in. The whole
 * NOTIFY, its connection and an `AbortSignal` are reachable too.
 *
 * @example
 * ```ts
 * agent.message("check-rate", (message) => {
 *   const source = message.arg("ip_src"); // TypedValue | undefined
 *   message.setVar(Scope.SESS, "ip_score", TypedValue.int32(0));
 * });
 * ```
 */
export class MessageContext {
  readonly #exchange: Exchange;
  readonly #generation: number;
  readonly #message: Message;
  readonly #notify: NotifyFrame;
  #args: Readonly<Record<string, TypedValue>> | undefined = undefined;

  /** @internal Created by the agent for each message of a NOTIFY. */
  constructor(exchange: Exchange, message: Message) {
    this.#exchange = exchange;
    this.#generation = exchange.generation;
    this.#message = message;
    this.#notify = exchange.frame;
  }

  /** The message as decoded: `name` and `args` in wire order (names may repeat or be empty). */
  get message(): Message {
    return this.#message;
  }

  /** The SPOE message name (`spoe-message <name>` in HAProxy's configuration). */
  get name(): string {
    return this.#message.name;
  }

  /**
   * The arguments by name, as typed values (`args.ip_src?.type === DataType.IPV4`). Built on
   * first use; the first of repeated names wins. {@link MessageContext.arg} does not allocate.
   */
  get args(): Readonly<Record<string, TypedValue>> {
    if (this.#args === undefined) {
      const args: Record<string, TypedValue> = Object.create(null);
      for (const arg of this.#message.args) if (!(arg.name in args)) args[arg.name] = arg.value;
      this.#args = args;
    }
    return this.#args;
  }

  /** The value of the first argument called `name`, or `undefined`. */
  arg(name: string): TypedValue | undefined {
    return getArg(this.#message, name);
  }

  /**
   * Adds SET-VAR to the ACK: HAProxy sets `<scope>.<var-prefix>.<name>` to `value` (e.g.
   * `sess.rl.ip_score`). Ignored once the NOTIFY has been answered (after a deadline).
   */
  setVar(scope: Scope, name: string, value: TypedValue): this {
    checkVariable(scope, name);
    this.#exchange.add(setVar(scope, name, value), this.#generation);
    return this;
  }

  /** Adds UNSET-VAR to the ACK: HAProxy unsets `<scope>.<var-prefix>.<name>` if it is set. */
  unsetVar(scope: Scope, name: string): this {
    checkVariable(scope, name);
    this.#exchange.add(unsetVar(scope, name), this.#generation);
    return this;
  }

  /** The actions of the NOTIFY's ACK so far (of every message's handler). */
  get actions(): readonly Action[] {
    return this.#generation === this.#exchange.generation ? this.#exchange.list : NO_ACTIONS;
  }

  /** The whole NOTIFY: every message, its stream-id and frame-id. */
  get notify(): NotifyFrame {
    return this.#notify;
  }

  get streamId(): number {
    return this.#notify.streamId;
  }

  get frameId(): number {
    return this.#notify.frameId;
  }

  /** The connection the NOTIFY came on: addresses, engine-id, negotiated parameters, socket. */
  get connection(): ConnectionInfo {
    return this.#exchange.connection;
  }

  /** The engine-id HAProxy announced in its HELLO (one per SPOE engine and process). */
  get engineId(): string | undefined {
    return this.#exchange.connection.engineId;
  }

  /**
   * Aborted when the answer no longer matters: at the deadline (reason: HandlerTimeoutError),
   * when the connection closes (ConnectionClosedError), when another handler of the same NOTIFY
   * failed (its error), or at the close deadline (AgentClosedError). Created on first use.
   */
  get signal(): AbortSignal {
    return this.#exchange.signal(this.#generation);
  }

  /** The connection's logger (a pino child with `connection` and `remote`). */
  get log(): Logger {
    return this.#exchange.connection.log;
  }
}
