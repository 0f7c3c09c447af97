/**
 * The agent's sense of time: every deadline and timeout (handler deadlines, the HELLO and idle
 * timeouts, the close deadline) reads this clock and arms its timers. The default is the
 * process's monotonic clock and `setTimeout`; tests pass a manual clock (see
 * `ManualClock` in `@spoekit/spoe-agent/testing`) and move time themselves.
 */

/** A timer armed on an {@link AgentClock}; only handed back to `clearTimer`. */
export type TimerHandle = unknown;

/** The clock option of {@link AgentOptions}. */
export interface AgentClock {
  /** Milliseconds on a monotonic clock (any origin; only differences matter). */
  now(): number;
  /**
   * Calls `callback` once, `ms` milliseconds from now. The timer must not keep the process
   * alive by itself (the agent's servers and sockets do).
   */
  setTimer(callback: () => void, ms: number): TimerHandle;
  /** Cancels a timer armed by `setTimer`; `undefined` and fired timers are ignored. */
  clearTimer(handle: TimerHandle | undefined): void;
}

/** The default clock: `performance.now()` and unref'd `setTimeout`. */
export const systemClock: AgentClock = {
  now: () => performance.now(),
  setTimer(callback, ms) {
    const timer = setTimeout(callback, ms);
    timer.unref();
    return timer;
  },
  clearTimer(handle) {
    if (handle !== undefined) clearTimeout(handle as NodeJS.Timeout);
  },
};
