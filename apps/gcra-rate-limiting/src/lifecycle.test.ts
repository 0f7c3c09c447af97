import { pino } from "pino";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { loadConfig } from "./config.ts";
import { drainAfterDelay, drainDelayFor } from "./lifecycle.ts";
import { drainBudget, handlerTimeoutOf } from "./service.ts";

describe("the drain's timeline", () => {
  beforeEach(() => vi.useFakeTimers());
  afterEach(() => vi.useRealTimers());
  const log = pino({ enabled: false });

  it("serves on for the delay, then closes", async () => {
    const close = vi.fn(async () => undefined);
    const done = drainAfterDelay(log, 5000, close);
    await vi.advanceTimersByTimeAsync(4999);
    expect(close).not.toHaveBeenCalled();
    await vi.advanceTimersByTimeAsync(1);
    expect(close).toHaveBeenCalledOnce();
    await done;
  });

  it("closes at once without a delay", async () => {
    const close = vi.fn(async () => undefined);
    await drainAfterDelay(log, 0, close);
    expect(close).toHaveBeenCalledOnce();
  });

  it("delays after SIGTERM only: Ctrl-C (SIGINT) drains at once", () => {
    expect(drainDelayFor("SIGTERM", 5000)).toBe(5000);
    expect(drainDelayFor("SIGINT", 5000)).toBe(0);
  });

  it("gives the in-flight NOTIFYs what DRAIN_DELAY leaves of DRAIN_TIMEOUT, less a reserve for the store", () => {
    expect(drainBudget(30_000, 5000)).toEqual({ agentMs: 23_000, storeMs: 1000 });
    expect(drainBudget(30_000, 0)).toEqual({ agentMs: 28_000, storeMs: 1000 });
    expect(drainBudget(4000, 2000)).toEqual({ agentMs: 1500, storeMs: 250 });
    expect(drainBudget(0, 0)).toEqual({ agentMs: 0, storeMs: 0 });
  });
});

describe("the agent's per-NOTIFY backstop", () => {
  it("is HAProxy's processing timeout, or the Valkey deadline and the answer's margin if that is later", () => {
    expect(handlerTimeoutOf(loadConfig({}))).toBe(100);
    expect(handlerTimeoutOf(loadConfig({ VALKEY_TIMEOUT: "5s" }))).toBe(5020);
    expect(handlerTimeoutOf(loadConfig({ HAPROXY_PROCESSING_TIMEOUT: "5s" }))).toBe(5000);
  });
});
