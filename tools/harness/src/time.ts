import type { waitFor } from "./process.ts";

/**
 * Lets `ms` of wall time pass: to pace load or keep it running for a while. Never to wait for
 * the code under test to get somewhere — {@link waitFor} polls for that.
 */
export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
