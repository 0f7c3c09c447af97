import { expect } from "vitest";
import { SpopError } from "../src/index.ts";

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
  if (expected.field !== undefined) expect(error.field).toBe(expected.field);
  if (expected.offset !== undefined) expect(error.offset).toBe(expected.offset);
  if (expected.message !== undefined) expect(error.message).toMatch(expected.message);
  return error;
}
