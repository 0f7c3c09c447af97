import { expect } from "vitest";
import { DisconnectStatus, SpopCodecError, SpopError } from "../src/index.ts";

const statusNames = new Map<number, string>(
  Object.entries(DisconnectStatus).map(([name, status]) => [status, name]),
);

/** What a {@link SpopError} must say: its status, and optionally its field, offset and message. */
export interface ExpectedSpopError {
  status: number;
  field?: string;
  offset?: number;
  message?: RegExp;
}

/** Runs `fn`, asserts it throws a {@link SpopError} as described, and returns the error. */
export function expectSpopError(fn: () => unknown, expected: ExpectedSpopError): SpopError {
  let thrown: unknown;
  try {
    fn();
  } catch (error) {
    thrown = error;
  }
  expect(thrown, "expected a SpopError").toBeInstanceOf(SpopError);
  const error = thrown as SpopError;
  expect(error.status).toBe(expected.status);
  // The stable code names the same fault as the status.
  expect(error).toBeInstanceOf(SpopCodecError);
  expect(error.code).toBe(`SPOP_${statusNames.get(expected.status) ?? "UNKNOWN_ERROR"}`);
  if (expected.field !== undefined) expect(error.field).toBe(expected.field);
  if (expected.offset !== undefined) expect(error.offset).toBe(expected.offset);
  if (expected.message !== undefined) expect(error.message).toMatch(expected.message);
  return error;
}
