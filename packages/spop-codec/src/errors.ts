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
 * The only error this package throws, for bytes it cannot decode and for frames it refuses to
 * encode. `status` is the SPOP status code to send in the DISCONNECT frame before closing the
 * connection (3 frame too big, 4 invalid frame, 10 fragmentation not supported, …); match on
 * `status`, not on the message text.
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
export class SpopError extends Error {
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
    super(
      `${disconnectReason(status)}: ${where}${detail}`,
      options.cause === undefined ? {} : { cause: options.cause },
    );
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
