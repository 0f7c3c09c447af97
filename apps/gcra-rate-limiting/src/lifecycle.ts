import { type Logger, pino } from "pino";
import type { ProbeResult } from "./admin.ts";
import { type Config, deadlineConflict } from "./config.ts";

/** The process's logger: pino JSON lines on stdout at LOG_LEVEL. */
export function createLogger(config: Config, fields: Record<string, unknown> = {}): Logger {
  return pino({ name: "gcra-rate-limiting", level: config.logLevel }).child(fields);
}

const signalNumbers = { SIGINT: 2, SIGTERM: 15 } as const;
export type StopSignal = keyof typeof signalNumbers;

/**
 * Calls `drain` on the first SIGTERM or SIGINT; a second one exits at once with 128 + its
 * number, whatever is still running.
 */
export function onStopSignals(log: Logger, drain: (signal: StopSignal) => void): void {
  let received = false;
  for (const signal of Object.keys(signalNumbers) as StopSignal[]) {
    process.on(signal, () => {
      if (received) {
        log.warn({ signal }, "second signal: exiting at once");
        process.exit(128 + signalNumbers[signal]);
      }
      received = true;
      drain(signal);
    });
  }
}

/**
 * How long the agent keeps serving after `signal` with `/readyz` at 503: DRAIN_DELAY after
 * SIGTERM (what orchestrators send; their load balancers need the time to see the 503), none
 * after SIGINT (Ctrl-C at a terminal: no load balancer watches it).
 */
export function drainDelayFor(signal: StopSignal, drainDelayMs: number): number {
  return signal === "SIGINT" ? 0 : drainDelayMs;
}

/**
 * The drain after `/readyz` turned 503: serves on for `delayMs`, then logs that it closes and
 * runs `close` (stop accepting, answer what is in flight, AGENT-DISCONNECT, close the store).
 */
export async function drainAfterDelay(
  log: Logger,
  delayMs: number,
  close: () => Promise<void>,
): Promise<void> {
  if (delayMs > 0) await new Promise((resolve) => setTimeout(resolve, delayMs));
  log.info("closing: no new SPOP connections; answering the NOTIFYs in flight");
  await close();
}

/** The start-up warnings of a configuration that works but contradicts itself (one line each). */
export function logStartWarnings(log: Logger, config: Config): void {
  if (config.valkeyNodes.length === 0) return;
  const conflict = deadlineConflict(config);
  if (conflict !== undefined) {
    log.warn(
      { valkeyTimeoutMs: config.valkeyTimeoutMs, processingTimeoutMs: config.processingTimeoutMs },
      conflict,
    );
  }
}

/**
 * Exits with code 1 if the drain has not finished `drainTimeoutMs` after it began (at least half
 * a second: with DRAIN_TIMEOUT=0 the agent still needs a moment to disconnect and close). The
 * agent answers what it received within its share of DRAIN_TIMEOUT, so this only fires when
 * something hangs.
 */
export function drainDeadline(log: Logger, drainTimeoutMs: number): NodeJS.Timeout {
  const ms = Math.max(drainTimeoutMs, 500);
  return setTimeout(() => {
    log.error({ drainTimeoutMs: ms }, "DRAIN_TIMEOUT passed before the drain finished; exiting");
    process.exit(1);
  }, ms);
}

/** The `/readyz` verdict from the state every mode tracks. */
export function readiness(state: {
  draining: boolean;
  listening: boolean;
  storeReady: boolean;
}): ProbeResult {
  if (state.draining) return { ok: false, reason: "draining" };
  if (!state.listening) return { ok: false, reason: "not listening yet" };
  if (!state.storeReady)
    return { ok: false, reason: "store unusable: Valkey is down and the failure policy is closed" };
  return { ok: true, reason: "ready" };
}

/** The `/startz` verdict. */
export function startup(started: boolean): ProbeResult {
  return started ? { ok: true, reason: "started" } : { ok: false, reason: "starting" };
}

/** Prints a configuration or start-up failure as one line on stderr and exits. */
export function fatal(message: string, code: number): never {
  process.stderr.write(`gcra-rate-limiting: ${message}\n`);
  process.exit(code);
}

/**
 * The V8 flag every way of running the app passes (the Containerfile's ENTRYPOINT, the systemd
 * unit, `pnpm start`): semi-spaces of 4 MiB, where V8 would grow them to 16 MiB under this
 * allocation rate. Almost every object of a request dies young, so more frequent scavenges cost
 * no throughput, and RSS under load stays near 100 MiB per process (95 MiB on the embedded
 * store, 99–105 MiB on Valkey: BENCHMARKS.md).
 */
export const V8_FLAG = "--max-semi-space-size=4";

/**
 * The worker processes' flags: the primary's, plus {@link V8_FLAG} unless the operator set the
 * semi-space size (on the command line or in NODE_OPTIONS).
 */
export function workerExecArgv(execArgv: readonly string[], nodeOptions = ""): string[] {
  const given = [...execArgv, ...nodeOptions.split(/\s+/)].some((arg) =>
    arg.startsWith("--max-semi-space-size"),
  );
  return given ? [...execArgv] : [...execArgv, V8_FLAG];
}
