/** The protocol's limits: integer ranges of its fields and data types, frame sizes. Internal. */
import { DisconnectStatus } from "./constants.ts";
import { SpopError } from "./errors.ts";

export const INT32_MIN = -(2 ** 31);
export const INT32_MAX = 2 ** 31 - 1;
export const UINT32_MAX = 2 ** 32 - 1;
export const INT64_MIN = -(1n << 63n);
export const INT64_MAX = (1n << 63n) - 1n;
export const UINT64_MAX = (1n << 64n) - 1n;
/** The highest scope code (`res`). */
export const SCOPE_MAX = 4;

const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER);

/** A 64-bit integer as this package hands it out: a `number` when safe, a `bigint` otherwise. */
export function canonicalInteger(value: number | bigint): number | bigint {
  if (typeof value === "number") return value;
  return value >= -MAX_SAFE && value <= MAX_SAFE ? Number(value) : value;
}

/** Validates a frame-size limit given by a caller. */
export function checkMaxFrameSize(value: number): number {
  if (!Number.isInteger(value) || value < 1 || value > UINT32_MAX) {
    throw new SpopError(
      DisconnectStatus.BAD_FRAME_SIZE,
      `max frame size ${value} is not an integer in 1..2^32-1`,
    );
  }
  return value;
}
