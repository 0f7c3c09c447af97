/**
 * NOTIFY → handlers → settled exchange: runs the handlers of each message, tracks the exchanges
 * whose handlers still run in a list ordered by deadline (one timer per connection, on the
 * agent's clock), and applies the failure policy (`failureAck`) when a handler throws or misses
 * its deadline. Settled exchanges are handed to the connection, which queues their ACK.
 */
import type { NotifyFrame } from "@spoekit/spop-codec";
import { dc } from "./channels.ts";
import type { TimerHandle } from "./clock.ts";
import { HandlerFailedError, HandlerTimeoutError } from "./errors.ts";
import { Exchange, NO_ACTIONS } from "./exchange.ts";
import { MessageContext } from "./message-context.ts";
import type { Runtime } from "./runtime.ts";
import type { ConnectionInfo, NotifyOutcome } from "./types.ts";

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

/** @internal The handlers' side of one connection. */
export class Dispatcher {
  readonly #runtime: Runtime;
  readonly #connection: ConnectionInfo;
  readonly #onSettled: (exchange: Exchange) => void;
  /** Exchanges whose handlers still run, oldest first (so the head has the nearest deadline). */
  #head: Exchange | undefined = undefined;
  #tail: Exchange | undefined = undefined;
  #deadlineTimer: TimerHandle | undefined = undefined;

  constructor(runtime: Runtime, connection: ConnectionInfo, onSettled: (exchange: Exchange) => void) {
    this.#runtime = runtime;
    this.#connection = connection;
    this.#onSettled = onSettled;
  }

  /** Runs the handlers of `frame` on `exchange` (recycled, or new when `undefined`). */
  dispatch(frame: NotifyFrame, recycled: Exchange | undefined): void {
    const runtime = this.#runtime;
    const connection = this.#connection;
    const exchange = recycled ?? new Exchange(connection);
    // The clock is read only when something needs it: async handlers' deadline, diagnostics.
    exchange.begin(connection, frame, dc.notify.hasSubscribers ? runtime.options.clock.now() : 0);
    const messages = frame.messages;
    for (let i = 0; i < messages.length; i++) {
      const message = messages[i] as NotifyFrame["messages"][number];
      const handler = runtime.handlerFor(message.name);
      if (handler === undefined) {
        this.#connection.log.debug({ message: message.name }, "no handler for this message");
        continue;
      }
      let result: void | PromiseLike<void>;
      try {
        result = handler(new MessageContext(exchange, message));
      } catch (error) {
        this.settle(exchange, "error", asError(error));
        return;
      }
      if (isThenable(result)) {
        exchange.pending++;
        this.#watch(exchange, result);
        if (exchange.settled) return;
      }
    }
    if (exchange.pending === 0) {
      // Every handler returned (the common case): settled here, never in the running list.
      exchange.settled = true;
      this.#finish(exchange);
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
          if (--exchange.pending === 0) this.settle(exchange, "ok", undefined);
        },
        (error: unknown) => {
          if (exchange.generation === generation && !exchange.settled) {
            this.settle(exchange, "error", asError(error));
          }
        },
      );
    } catch (error) {
      this.settle(exchange, "error", asError(error));
    }
  }

  /** Appends a running exchange to the pending list and arms the deadline timer if idle. */
  #track(exchange: Exchange): void {
    const tail = this.#tail;
    exchange.prev = tail;
    if (tail === undefined) this.#head = exchange;
    else tail.next = exchange;
    this.#tail = exchange;
    const { handlerTimeout, clock } = this.#runtime.options;
    if (exchange.start === 0) exchange.start = clock.now();
    if (handlerTimeout > 0) {
      exchange.deadline = exchange.start + handlerTimeout;
      if (this.#deadlineTimer === undefined) {
        this.#deadlineTimer = clock.setTimer(this.#onDeadline, handlerTimeout);
      }
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
    const { clock, handlerTimeout } = this.#runtime.options;
    const now = clock.now();
    for (let head = this.#head; head !== undefined && head.deadline <= now + 1; head = this.#head) {
      this.settle(
        head,
        "timeout",
        new HandlerTimeoutError(
          `the handlers did not finish within ${handlerTimeout} ms; answered without them`,
        ),
      );
    }
    const head = this.#head;
    if (head !== undefined) {
      this.#deadlineTimer = clock.setTimer(this.#onDeadline, Math.max(1, head.deadline - now));
    }
  };

  /** Ends an exchange: outcome, failure policy, diagnostics; hands it to the connection. */
  settle(exchange: Exchange, outcome: NotifyOutcome, error: Error | undefined): void {
    exchange.settled = true;
    exchange.outcome = outcome;
    this.#untrack(exchange);
    if (error !== undefined) this.#failed(exchange, outcome, error);
    this.#finish(exchange);
  }

  /** Publishes a settled exchange and hands it to the connection to answer. */
  #finish(exchange: Exchange): void {
    this.#publishNotify(exchange);
    // From here on only the ids are needed: let the decoded NOTIFY go now, not at the flush.
    exchange.releaseFrame();
    this.#onSettled(exchange);
  }

  /** Answers every running exchange as timed out with `reason` (the close deadline passed). */
  timeOutAll(reason: Error): void {
    while (this.#head !== undefined) this.settle(this.#head, "timeout", reason);
  }

  #failed(exchange: Exchange, outcome: NotifyOutcome, error: Error): void {
    const { frame } = exchange;
    const runtime = this.#runtime;
    const connection = this.#connection;
    const kind = outcome === "timeout" ? "timeout" : "error";
    const details = {
      err: error,
      streamId: frame.streamId,
      frameId: frame.frameId,
      messages: frame.messages.map((message) => message.name),
    };
    if (kind === "timeout") connection.log.warn(details, "NOTIFY answered at its deadline");
    else connection.log.error(details, "handler failed; NOTIFY answered");
    runtime.reportError(kind === "timeout" ? "timeout" : "handler", error, connection);
    exchange.abort(error);
    const policy = runtime.options.failureAck;
    if (policy === "partial") return;
    if (policy === "empty") {
      exchange.ack = NO_ACTIONS;
      return;
    }
    try {
      exchange.ack = policy({ kind, error, notify: frame, actions: exchange.list.toArray(), connection });
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
      connection: this.#connection,
      streamId: frame.streamId,
      frameId: frame.frameId,
      messages: frame.messages.length,
      duration: exchange.start === 0 ? 0 : this.#runtime.options.clock.now() - exchange.start,
      outcome: exchange.outcome,
    });
  }

  /** The connection is going away: handlers still running are aborted, their ACK never sent. */
  cancelAll(reason: Error): void {
    this.#runtime.options.clock.clearTimer(this.#deadlineTimer);
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
}
