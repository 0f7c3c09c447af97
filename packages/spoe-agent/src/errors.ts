/**
 * The errors this package creates. One base class with a stable `code` (match on it, never on
 * the message text) and a subclass per failure; the original error travels as `cause`.
 */

/** Options of {@link SpoeAgentError}. */
export interface SpoeAgentErrorOptions {
  cause?: unknown;
}

/** Base class of every error this package creates; `code` is stable across releases. */
export class SpoeAgentError extends Error {
  override readonly name: string = "SpoeAgentError";
  /** A stable identifier of the failure, e.g. `SPOE_AGENT_HANDLER_TIMEOUT`. */
  readonly code: string;

  constructor(code: string, message: string, options: SpoeAgentErrorOptions = {}) {
    super(message, options.cause === undefined ? {} : { cause: options.cause });
    this.code = code;
  }
}

/** An option given to {@link createAgent} or `listen()` is out of its range. */
export class InvalidOptionError extends SpoeAgentError {
  override readonly name = "InvalidOptionError";
  constructor(message: string) {
    super("SPOE_AGENT_INVALID_OPTION", message);
  }
}

/**
 * A handler did not finish within `handlerTimeout`: its NOTIFY was answered at the deadline and
 * its late result discarded. Also the reason of the handler's aborted `signal`.
 */
export class HandlerTimeoutError extends SpoeAgentError {
  override readonly name = "HandlerTimeoutError";
  constructor(message: string) {
    super("SPOE_AGENT_HANDLER_TIMEOUT", message);
  }
}

/** A handler threw or its promise rejected with something that is not an `Error`. */
export class HandlerFailedError extends SpoeAgentError {
  override readonly name = "HandlerFailedError";
  constructor(message: string, options: SpoeAgentErrorOptions = {}) {
    super("SPOE_AGENT_HANDLER_FAILED", message, options);
  }
}

/** A lifecycle hook or the `failureAck` function threw something that is not an `Error` (in `cause`). */
export class HookFailedError extends SpoeAgentError {
  override readonly name = "HookFailedError";
  constructor(message: string, options: SpoeAgentErrorOptions = {}) {
    super("SPOE_AGENT_HOOK_FAILED", message, options);
  }
}

/**
 * The connection a NOTIFY came on is gone (HAProxy closed or reset it, or it broke the
 * protocol): the reason of the `signal` of handlers still running. Their ACK is not sent.
 */
export class ConnectionClosedError extends SpoeAgentError {
  override readonly name = "ConnectionClosedError";
  constructor(message: string, options: SpoeAgentErrorOptions = {}) {
    super("SPOE_AGENT_CONNECTION_CLOSED", message, options);
  }
}

/**
 * The agent is closing: `listen()` after `close()`, or — as a handler's abort reason — the
 * close deadline passed before the handler finished.
 */
export class AgentClosedError extends SpoeAgentError {
  override readonly name = "AgentClosedError";
  constructor(message: string) {
    super("SPOE_AGENT_CLOSED", message);
  }
}

/**
 * HAProxy broke the protocol (a frame the codec refused, a frame out of order); `status` is the
 * DISCONNECT status code the agent closed the connection with, `cause` the codec's `SpopError`.
 */
export class ProtocolError extends SpoeAgentError {
  override readonly name = "ProtocolError";
  /** The status code sent in the AGENT-DISCONNECT frame. */
  readonly status: number;
  constructor(status: number, message: string, options: SpoeAgentErrorOptions = {}) {
    super("SPOE_AGENT_PROTOCOL_ERROR", message, options);
    this.status = status;
  }
}

/**
 * The actions a handler set could not be encoded into an ACK (a value out of its type's range,
 * or more than fits the negotiated max-frame-size); `cause` is the codec's `SpopError`. The
 * NOTIFY was answered with an ACK without them.
 */
export class AckEncodingError extends SpoeAgentError {
  override readonly name = "AckEncodingError";
  constructor(message: string, options: SpoeAgentErrorOptions = {}) {
    super("SPOE_AGENT_ACK_ENCODING", message, options);
  }
}

/**
 * A bound of the agent was hit: a connection refused because the agent holds `maxConnections`,
 * or disconnected (status 13) because it buffered more than `maxBufferedBytes` or pushed the
 * total over `maxTotalBufferedBytes`.
 */
export class ResourceLimitError extends SpoeAgentError {
  override readonly name = "ResourceLimitError";
  constructor(message: string) {
    super("SPOE_AGENT_RESOURCE_LIMIT", message);
  }
}
