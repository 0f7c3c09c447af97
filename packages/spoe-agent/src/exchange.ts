/**
 * One NOTIFY on its way to its ACK: the actions its handlers set, how many still run, its
 * deadline and its place in its connection's list of running exchanges. Internal.
 */
import { type Action, ActionList, type NotifyFrame, type Scope, type TypedValue } from "@spoekit/spop-codec";
import type { ConnectionInfo, NotifyOutcome } from "./types.ts";

/** The empty action list, shared. */
export const NO_ACTIONS: readonly Action[] = Object.freeze([]);

/** What a recycled exchange holds until its next NOTIFY, so that it keeps no frame alive. */
const NO_NOTIFY: NotifyFrame = Object.freeze({ type: 3, flags: 1, streamId: 0, frameId: 0, messages: [] });

/**
 * The state of one NOTIFY, internal: the actions gathered so far, how many async handlers are
 * still running, its deadline, its place in its connection's list of running exchanges.
 *
 * Exchanges (with their action list) are recycled once the ACK is encoded, into a pool the
 * agent's connections share, so that answering a NOTIFY allocates little more than its context:
 * the actions are kept flat in a reused {@link ActionList}, no object per variable. `generation`
 * counts the uses: a context or a promise callback from an earlier use — on this connection or
 * another — sees another generation and leaves the exchange alone. Contexts, which handlers may
 * keep, are never reused.
 */
export class Exchange {
  /** The connection of the current use. */
  connection: ConnectionInfo;
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
  readonly list = new ActionList();
  /** The actions to send instead of `list`, decided when the NOTIFY failed (the ACK carries `ack ?? list`). */
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

  /** Starts a use for `frame`, received on `connection`. */
  begin(connection: ConnectionInfo, frame: NotifyFrame, start: number): void {
    this.connection = connection;
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
    this.list.clear();
    this.ack = undefined;
    this.pending = 0;
    this.settled = false;
    this.outcome = "ok";
    this.controller = undefined;
    this.abortReason = undefined;
    this.deadline = 0;
  }

  /**
   * Adds SET-VAR (`value`) or UNSET-VAR (`undefined`); false, and nothing added, when the use
   * `generation` is over or the NOTIFY was answered.
   */
  add(scope: Scope, name: string, value: TypedValue | undefined, generation: number): boolean {
    if (this.settled || generation !== this.generation) return false;
    if (value === undefined) this.list.unsetVar(scope, name);
    else this.list.setVar(scope, name, value);
    return true;
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
