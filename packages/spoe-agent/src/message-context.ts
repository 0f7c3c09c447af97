/**
 * What a handler sees of a NOTIFY: the {@link MessageContext} of the SPOE message it handles,
 * through which it reads arguments and sets the variables of the ACK.
 */
import {
  type Action,
  getArg,
  type Message,
  type NotifyFrame,
  type Scope,
  type TypedValue,
} from "@spoekit/spop-codec";
import type { Logger } from "pino";
import { InvalidOptionError } from "./errors.ts";
import { type Exchange, NO_ACTIONS } from "./exchange.ts";
import type { ConnectionInfo } from "./types.ts";

/**
 * Handles one SPOE message of a NOTIFY: read its arguments, set variables. May be `async`; the
 * NOTIFY is answered once every handler of its messages has returned (or its promise settled),
 * or at the deadline.
 */
export type MessageHandler = (message: MessageContext) => void | PromiseLike<void>;

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
 * The `args` of the contexts whose handler asked for them, built on first use. Kept aside rather
 * than in a field: most handlers use `arg()`, and a field would make every context larger.
 */
const argsOf = new WeakMap<MessageContext, Readonly<Record<string, TypedValue>>>();

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
  /** Its own: the exchange serves other connections once recycled. */
  readonly #connection: ConnectionInfo;
  readonly #message: Message;
  readonly #notify: NotifyFrame;

  /** @internal Created by the agent for each message of a NOTIFY. */
  constructor(exchange: Exchange, message: Message) {
    this.#exchange = exchange;
    this.#generation = exchange.generation;
    this.#connection = exchange.connection;
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
    let args = argsOf.get(this);
    if (args === undefined) {
      const byName: Record<string, TypedValue> = Object.create(null);
      for (const arg of this.#message.args) if (!(arg.name in byName)) byName[arg.name] = arg.value;
      args = byName;
      argsOf.set(this, args);
    }
    return args;
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
    // Kept flat in the exchange's reused action list: no action object per variable.
    if (!this.#exchange.add(scope, name, value, this.#generation)) this.#late(name);
    return this;
  }

  /** Adds UNSET-VAR to the ACK: HAProxy unsets `<scope>.<var-prefix>.<name>` if it is set. */
  unsetVar(scope: Scope, name: string): this {
    checkVariable(scope, name);
    if (!this.#exchange.add(scope, name, undefined, this.#generation)) this.#late(name);
    return this;
  }

  #late(name: string): void {
    this.#connection.log.debug({ variable: name }, "variable set after the NOTIFY was answered: ignored");
  }

  /**
   * The actions of the NOTIFY's ACK so far (of every message's handler): a new array of action
   * objects at each read, empty once the NOTIFY has been answered.
   */
  get actions(): readonly Action[] {
    return this.#generation === this.#exchange.generation ? this.#exchange.list.toArray() : NO_ACTIONS;
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
    return this.#connection;
  }

  /** The engine-id HAProxy announced in its HELLO (one per SPOE engine and process). */
  get engineId(): string | undefined {
    return this.#connection.engineId;
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
    return this.#connection.log;
  }
}
