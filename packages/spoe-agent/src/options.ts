/**
 * The options of {@link createAgent}, their defaults, and their validation into the resolved
 * form the connections read on every frame.
 */
import {
  type Action,
  Capability,
  DEFAULT_MAX_FRAME_SIZE,
  FRAME_LENGTH_BYTES,
  MIN_FRAME_SIZE,
  Scope,
  unsetVar,
} from "@spoekit/spop-codec";
import { type Logger, type LoggerOptions, pino } from "pino";
import { type AgentClock, systemClock } from "./clock.ts";
import { InvalidOptionError } from "./errors.ts";
import type { HandlerFailure } from "./types.ts";

/**
 * What the ACK of a NOTIFY whose handler threw or missed its deadline carries:
 * - `"partial"`: the actions the handlers set before failing (the default);
 * - `"empty"`: no action (HAProxy then sees no variable, as when no agent answers);
 * - a function: the actions it returns, instead of those set so far (it must not throw).
 */
export type FailureAck = "partial" | "empty" | ((failure: HandlerFailure) => readonly Action[]);

/** The variable a non-empty ACK unsets when it would otherwise be empty; see {@link AgentOptions.noEmptyAck}. */
export interface NoEmptyAckVariable {
  readonly scope: Scope;
  readonly name: string;
}

/** Options of {@link createAgent}. Every one has a default. */
export interface AgentOptions {
  /**
   * The largest frame the agent accepts, in bytes after the 4-byte length prefix. The agent
   * announces `min(maxFrameSize, HAProxy's)`. Default `16380` (HAProxy's default,
   * `tune.bufsize` − 4); at least 256.
   */
  maxFrameSize?: number;
  /**
   * Capabilities the agent offers; it announces those HAProxy offers too. `"pipelining"` lets
   * HAProxy send many NOTIFYs on a connection without waiting; `"async"` is accepted by HAProxy
   * 2.x (the agent always answers on the connection a NOTIFY came on); `"fragmentation"` makes
   * the agent reassemble fragmented NOTIFYs (HAProxy 2.x only). Default `["pipelining"]`.
   */
  capabilities?: readonly string[];
  /**
   * The most NOTIFYs in flight (received and not yet answered) per connection. At the bound the
   * agent stops reading from the connection until an ACK is written. Default `64` (HAProxy
   * sends at most 20 by default: `max-waiting-frames` in 2.x, 20 streams per connection in 3.x).
   */
  maxInFlight?: number;
  /**
   * Milliseconds a NOTIFY's handlers may take. At the deadline the NOTIFY is answered per
   * {@link AgentOptions.failureAck}, the handlers' `signal` is aborted and their late result is
   * discarded. Set it below HAProxy's `timeout processing`. `0` disables it. Default `1000`.
   */
  handlerTimeout?: number;
  /**
   * Milliseconds from accepting a connection (including a TLS handshake) to its HAPROXY-HELLO;
   * then the agent sends AGENT-DISCONNECT status 2 and closes. Default `5000`.
   */
  helloTimeout?: number;
  /**
   * Milliseconds without a byte in either direction and nothing in flight after which the agent
   * closes a connection (AGENT-DISCONNECT status 0), checked every eighth of it, so at most that
   * much late after the last byte received. Keep it above HAProxy's `timeout idle`,
   * which closes idle connections from HAProxy's side. `0` disables it. Default `120000`.
   */
  idleTimeout?: number;
  /**
   * Milliseconds `close()` lets in-flight NOTIFYs finish. Then the handlers still running are
   * answered per {@link AgentOptions.failureAck} and every connection gets AGENT-DISCONNECT and
   * is closed. Default `10000`.
   */
  closeTimeout?: number;
  /**
   * The most connections the agent holds at once (over all its `listen()` addresses, TLS
   * handshakes included). A connection beyond it is refused at accept: AGENT-DISCONNECT status
   * 13 (resource allocation error) with a message saying so, then closed (a TLS socket still in
   * its handshake is closed). Only the first 20 refusals of a second are answered so; the next
   * ones that second are closed at accept, without a frame, so that a peer reconnecting as fast
   * as it is refused costs little. Default `1000`: an idle connection costs about 10 KiB, so the
   * bound holds idle floods to about 10 MiB of a 128 MiB pod.
   */
  maxConnections?: number;
  /**
   * The most bytes received and not yet decoded one connection may hold (a partial frame, and
   * frames waiting while `maxInFlight` NOTIFYs run). Beyond it the agent sends AGENT-DISCONNECT
   * status 13 and closes. At least `maxFrameSize + 4`. Default: 64 KiB (one socket read) plus
   * two frames of `maxFrameSize`, which a well-behaved HAProxy never reaches.
   */
  maxBufferedBytes?: number;
  /**
   * The most bytes received and not yet decoded all connections together may hold. The
   * connection whose bytes go beyond it gets AGENT-DISCONNECT status 13 and is closed; the
   * others keep theirs. Default 16 MiB.
   */
  maxTotalBufferedBytes?: number;
  /** What the ACK carries when a handler throws or times out. Default `"partial"`. */
  failureAck?: FailureAck;
  /**
   * Never send an ACK without actions: HAProxy 3.1.0 to 3.2-dev6 left an empty ACK waiting
   * until `timeout processing`. `true` adds UNSET-VAR `txn.<var-prefix>.noop` (harmless: HAProxy
   * unsets a variable only if it exists) to every ACK that would be empty; an object names
   * another variable. Default `false`.
   */
  noEmptyAck?: boolean | NoEmptyAckVariable;
  /**
   * A pino logger, pino options to create one, or `false` for none. Each connection logs through
   * a child logger with `connection` (its id) and `remote` (HAProxy's address).
   * Default: a pino logger at level `info` on stdout.
   */
  logger?: Logger | LoggerOptions | false;
  /** Aborting it closes the agent, as `close()`. */
  signal?: AbortSignal;
  /**
   * The clock every deadline and timeout reads and arms its timers on. Default: the process's
   * monotonic clock and `setTimeout`. Tests pass a manual clock (`ManualClock` from
   * `@spoekit/spoe-agent/testing`) to move time without waiting.
   */
  clock?: AgentClock;
}

/** The options after validation, with every default filled in. */
export interface ResolvedOptions {
  readonly maxFrameSize: number;
  readonly capabilities: readonly string[];
  readonly fragmentation: boolean;
  readonly maxInFlight: number;
  readonly handlerTimeout: number;
  readonly helloTimeout: number;
  readonly idleTimeout: number;
  readonly closeTimeout: number;
  readonly maxConnections: number;
  readonly maxBufferedBytes: number;
  readonly maxTotalBufferedBytes: number;
  readonly failureAck: FailureAck;
  /** The action an otherwise empty ACK carries, or `undefined`. */
  readonly noEmptyAck: readonly Action[] | undefined;
  readonly logger: Logger;
  readonly clock: AgentClock;
}

/** The defaults of {@link AgentOptions}, as documented there. */
export const defaultOptions = {
  maxFrameSize: DEFAULT_MAX_FRAME_SIZE,
  capabilities: [Capability.PIPELINING] as readonly string[],
  maxInFlight: 64,
  handlerTimeout: 1000,
  helloTimeout: 5000,
  idleTimeout: 120_000,
  closeTimeout: 10_000,
  maxConnections: 1000,
  /** Added to two frames of `maxFrameSize` for the default of `maxBufferedBytes`. */
  maxBufferedBytesBase: 64 * 1024,
  maxTotalBufferedBytes: 16 * 1024 * 1024,
  failureAck: "partial",
  noEmptyAck: false,
  noEmptyAckVariable: { scope: Scope.TXN, name: "noop" } as NoEmptyAckVariable,
} as const;

const knownCapabilities: readonly string[] = Object.values(Capability);
/** The bound of counts (connections, NOTIFYs in flight). */
const MAX_COUNT = 1_000_000;
/** The largest delay `setTimeout` honours. */
const MAX_TIMER_MS = 2 ** 31 - 1;

function integerIn(name: string, value: number, min: number, max: number): number {
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new InvalidOptionError(`${name} must be an integer in ${min}..${max}, got ${String(value)}`);
  }
  return value;
}

function capabilitiesOf(value: readonly string[]): readonly string[] {
  if (!Array.isArray(value)) throw new InvalidOptionError("capabilities must be an array of strings");
  for (const capability of value) {
    if (!knownCapabilities.includes(capability)) {
      throw new InvalidOptionError(
        `capabilities: unknown capability ${JSON.stringify(capability)} (known: ${knownCapabilities.join(", ")})`,
      );
    }
  }
  return [...new Set(value)];
}

function loggerOf(value: AgentOptions["logger"]): Logger {
  if (value === false) return pino({ enabled: false });
  if (value === undefined) return pino({ level: "info" });
  if (typeof (value as Logger).child === "function") return value as Logger;
  return pino(value as LoggerOptions);
}

function noEmptyAckOf(value: AgentOptions["noEmptyAck"]): readonly Action[] | undefined {
  if (value === undefined || value === false) return undefined;
  const variable = value === true ? defaultOptions.noEmptyAckVariable : value;
  if (typeof variable.name !== "string" || variable.name === "") {
    throw new InvalidOptionError("noEmptyAck.name must be a non-empty string");
  }
  integerIn("noEmptyAck.scope", variable.scope, Scope.PROC, Scope.RES);
  return [unsetVar(variable.scope, variable.name)];
}

function failureAckOf(value: FailureAck): FailureAck {
  if (value !== "partial" && value !== "empty" && typeof value !== "function") {
    throw new InvalidOptionError(`failureAck must be "partial", "empty" or a function, got ${String(value)}`);
  }
  return value;
}

function clockOf(value: AgentClock): AgentClock {
  if (
    typeof value?.now !== "function" ||
    typeof value.setTimer !== "function" ||
    typeof value.clearTimer !== "function"
  ) {
    throw new InvalidOptionError("clock must have now(), setTimer() and clearTimer()");
  }
  return value;
}

/** Validates `options` and fills in the defaults; throws {@link InvalidOptionError}. */
export function resolveOptions(options: AgentOptions): ResolvedOptions {
  const capabilities = capabilitiesOf(options.capabilities ?? defaultOptions.capabilities);
  const maxFrameSize = integerIn(
    "maxFrameSize",
    options.maxFrameSize ?? defaultOptions.maxFrameSize,
    MIN_FRAME_SIZE,
    0xffffffff,
  );
  const frameBytes = maxFrameSize + FRAME_LENGTH_BYTES;
  return {
    maxFrameSize,
    capabilities,
    fragmentation: capabilities.includes(Capability.FRAGMENTATION),
    maxInFlight: integerIn("maxInFlight", options.maxInFlight ?? defaultOptions.maxInFlight, 1, MAX_COUNT),
    handlerTimeout: integerIn(
      "handlerTimeout",
      options.handlerTimeout ?? defaultOptions.handlerTimeout,
      0,
      MAX_TIMER_MS,
    ),
    helloTimeout: integerIn(
      "helloTimeout",
      options.helloTimeout ?? defaultOptions.helloTimeout,
      1,
      MAX_TIMER_MS,
    ),
    idleTimeout: integerIn("idleTimeout", options.idleTimeout ?? defaultOptions.idleTimeout, 0, MAX_TIMER_MS),
    closeTimeout: integerIn(
      "closeTimeout",
      options.closeTimeout ?? defaultOptions.closeTimeout,
      0,
      MAX_TIMER_MS,
    ),
    maxConnections: integerIn(
      "maxConnections",
      options.maxConnections ?? defaultOptions.maxConnections,
      1,
      MAX_COUNT,
    ),
    maxBufferedBytes: integerIn(
      "maxBufferedBytes",
      options.maxBufferedBytes ?? defaultOptions.maxBufferedBytesBase + 2 * frameBytes,
      frameBytes,
      Number.MAX_SAFE_INTEGER,
    ),
    maxTotalBufferedBytes: integerIn(
      "maxTotalBufferedBytes",
      options.maxTotalBufferedBytes ?? defaultOptions.maxTotalBufferedBytes,
      frameBytes,
      Number.MAX_SAFE_INTEGER,
    ),
    failureAck: failureAckOf(options.failureAck ?? defaultOptions.failureAck),
    noEmptyAck: noEmptyAckOf(options.noEmptyAck ?? defaultOptions.noEmptyAck),
    logger: loggerOf(options.logger),
    clock: clockOf(options.clock ?? systemClock),
  };
}
