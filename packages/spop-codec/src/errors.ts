import { DisconnectStatus, disconnectReason } from "./constants.ts";

/** Options of {@link SpopError}. */
export interface SpopErrorOptions {
  /** The part of the frame at fault, in the protocol's words (e.g. `"message name"`). */
  field?: string;
  /**
   * Byte offset of the fault from the first byte of the frame's 4-byte length prefix, so
   * that it points into a hex dump of the whole frame.
   */
  offset?: number;
  cause?: unknown;
}

/**
 * Base class of the errors this package throws: `code` is a stable identifier (match on it,
 * never on the message text); the original error, if any, travels as `cause`.
 */
export class SpopCodecError extends Error {
  override readonly name: string = "SpopCodecError";
  /** A stable identifier of the failure, e.g. `SPOP_INVALID_FRAME`. */
  readonly code: string;

  constructor(code: string, message: string, options: { cause?: unknown } = {}) {
    super(message, options.cause === undefined ? {} : { cause: options.cause });
    this.code = code;
  }
}

const codeNames = new Map<number, string>(
  Object.entries(DisconnectStatus).map(([name, status]) => [status, `SPOP_${name}`]),
);

/** The stable `code` of a {@link SpopError} with `status`: `SPOP_` and the status's name. */
export function spopErrorCode(status: number): string {
  return codeNames.get(status) ?? "SPOP_UNKNOWN_ERROR";
}

/**
 * The only error this package throws, for bytes it cannot decode and for frames it refuses to
 * encode. `code` names the fault (`SPOP_INVALID_FRAME`, `SPOP_FRAME_TOO_BIG`, …) and `status`
 * is the matching SPOP status code to send in the DISCONNECT frame before closing the
 * connection (3 frame too big, 4 invalid frame, 10 fragmentation not supported, …); match on
 * `code` or `status`, not on the message text.
 *
 * @example
 * ```ts
 * try {
 *   reader.push(chunk);
 *   for (const frame of reader) handle(frame);
 * } catch (error) {
 *   if (!(error instanceof SpopError)) throw error;
 *   socket.end(encodeFrame(agentDisconnectFrame(error.status, error.message)));
 * }
 * ```
 */
export class SpopError extends SpopCodecError {
  override readonly name = "SpopError";
  /** The DISCONNECT status code that describes the fault. */
  readonly status: number;
  /** The offending field, when the fault is in one. */
  readonly field: string | undefined;
  /** Byte offset of the fault from the start of the frame's length prefix, when known. */
  readonly offset: number | undefined;

  constructor(status: number, detail: string, options: SpopErrorOptions = {}) {
    const where =
      options.field === undefined
        ? ""
        : options.offset === undefined
          ? `${options.field}: `
          : `${options.field} at offset ${options.offset}: `;
    super(spopErrorCode(status), `${disconnectReason(status)}: ${where}${detail}`, {
      cause: options.cause,
    });
    this.status = status;
    this.field = options.field;
    this.offset = options.offset;
  }
}

/** Shorthand for the most common fault: status 4, invalid frame. */
export function invalidFrame(field: string, offset: number | undefined, detail: string): SpopError {
  return new SpopError(
    DisconnectStatus.INVALID_FRAME,
    detail,
    offset === undefined ? { field } : { field, offset },
  );
}
