import { DEFAULT_MAX_FRAME_SIZE, FRAME_LENGTH_BYTES } from "@spoekit/spop-codec";
import type { SettingName } from "./settings.ts";
import { fail, parseBytes, parseDuration, parseInteger, parseRatio } from "./values.ts";

/**
 * The settings read as groups: the store deadline with HAProxy's processing timeout, the
 * circuit breaker, the SPOP connection bounds and the drain.
 */

/** Reads a setting: its value, else its default (see `settings.ts`). */
export type Reader = (name: SettingName) => string;
/** Reads a setting as set: undefined when unset or empty. */
export type SetReader = (name: SettingName) => string | undefined;

/**
 * The share of HAProxy's `timeout processing` the store's deadline gets when VALKEY_TIMEOUT is
 * unset. The rest is the answer path's: the NOTIFY reaching the agent and waiting for its turn
 * on a busy event loop, the failure policy's answer and the ACK back to HAProxy.
 */
export const DEADLINE_SHARE = 0.6;

/** The least the answer path needs: a fifth of the processing timeout, at least 10 ms. */
export function answerMarginMs(processingTimeoutMs: number): number {
  return Math.max(10, Math.ceil(processingTimeoutMs / 5));
}

/** The store deadline and the HAProxy timeout it derives from. */
export interface Deadlines {
  readonly processingTimeoutMs: number;
  readonly valkeyTimeoutMs: number;
  readonly valkeyTimeoutDerived: boolean;
}

export function deadlines(value: Reader, set: SetReader): Deadlines {
  const processingTimeoutMs = parseDuration(
    "HAPROXY_PROCESSING_TIMEOUT",
    value("HAPROXY_PROCESSING_TIMEOUT"),
    2,
    60_000,
  );
  const raw = set("VALKEY_TIMEOUT");
  return raw === undefined
    ? {
        processingTimeoutMs,
        valkeyTimeoutMs: Math.max(1, Math.floor(processingTimeoutMs * DEADLINE_SHARE)),
        valkeyTimeoutDerived: true,
      }
    : {
        processingTimeoutMs,
        valkeyTimeoutMs: parseDuration("VALKEY_TIMEOUT", raw, 1, 60_000),
        valkeyTimeoutDerived: false,
      };
}

/**
 * The warning the agent logs at start when VALKEY_TIMEOUT leaves HAProxy less than
 * {@link answerMarginMs} to receive the answer: then a late store call makes HAProxy stop
 * waiting before the failure policy's answer arrives, and the request passes unchecked whatever
 * the policy. Undefined when they agree.
 */
export function deadlineConflict(d: Deadlines): string | undefined {
  const margin = answerMarginMs(d.processingTimeoutMs);
  if (d.valkeyTimeoutMs + margin <= d.processingTimeoutMs) return undefined;
  return (
    `VALKEY_TIMEOUT (${d.valkeyTimeoutMs} ms) leaves less than ${margin} ms of ` +
    `HAPROXY_PROCESSING_TIMEOUT (${d.processingTimeoutMs} ms) to answer: a late Valkey call lets the request pass unchecked`
  );
}

/** The circuit breaker of each shard. */
export interface CircuitConfig {
  readonly failureThreshold: number;
  readonly failureRatio: number;
  readonly ratioWindowMs: number;
  readonly ratioMinCalls: number;
  readonly probeDelayMs: number;
  readonly maxProbeDelayMs: number;
}

export function circuitConfig(value: Reader): CircuitConfig {
  const maxProbeDelayMs = parseDuration(
    "VALKEY_PROBE_MAX_DELAY",
    value("VALKEY_PROBE_MAX_DELAY"),
    1,
    600_000,
  );
  return {
    failureThreshold: parseInteger("VALKEY_CIRCUIT_FAILURES", value("VALKEY_CIRCUIT_FAILURES"), 1, 1_000_000),
    failureRatio: parseRatio("VALKEY_CIRCUIT_RATIO", value("VALKEY_CIRCUIT_RATIO")),
    ratioWindowMs: parseDuration("VALKEY_CIRCUIT_WINDOW", value("VALKEY_CIRCUIT_WINDOW"), 10, 3_600_000),
    ratioMinCalls: parseInteger("VALKEY_CIRCUIT_MIN_CALLS", value("VALKEY_CIRCUIT_MIN_CALLS"), 1, 1_000_000),
    probeDelayMs: parseDuration("VALKEY_PROBE_DELAY", value("VALKEY_PROBE_DELAY"), 1, maxProbeDelayMs),
    maxProbeDelayMs,
  };
}

/** The bounds of the SPOP side. */
export interface ConnectionLimits {
  readonly maxConnections: number;
  readonly maxBufferedBytes: number;
  readonly maxTotalBufferedBytes: number;
  readonly helloTimeoutMs: number;
  readonly idleTimeoutMs: number;
}

/** A connection must be able to hold one whole frame of the size the agent accepts. */
const MIN_BUFFERED_BYTES = DEFAULT_MAX_FRAME_SIZE + FRAME_LENGTH_BYTES;
const MAX_BUFFERED_BYTES = 1024 ** 3;

export function connectionLimits(value: Reader): ConnectionLimits {
  const maxBufferedBytes = parseBytes(
    "SPOA_MAX_BUFFERED_BYTES",
    value("SPOA_MAX_BUFFERED_BYTES"),
    MIN_BUFFERED_BYTES,
    MAX_BUFFERED_BYTES,
  );
  return {
    maxConnections: parseInteger("SPOA_MAX_CONNECTIONS", value("SPOA_MAX_CONNECTIONS"), 1, 1_000_000),
    maxBufferedBytes,
    maxTotalBufferedBytes: parseBytes(
      "SPOA_MAX_TOTAL_BUFFERED_BYTES",
      value("SPOA_MAX_TOTAL_BUFFERED_BYTES"),
      maxBufferedBytes,
      MAX_BUFFERED_BYTES,
    ),
    helloTimeoutMs: parseDuration("SPOA_HELLO_TIMEOUT", value("SPOA_HELLO_TIMEOUT"), 1, 600_000),
    idleTimeoutMs: parseDuration("SPOA_IDLE_TIMEOUT", value("SPOA_IDLE_TIMEOUT"), 1000, 3_600_000),
  };
}

/** The drain: its whole deadline and the delay at its start. */
/**
 * The drain: its whole deadline and the delay at its start. Unset, DRAIN_DELAY is its default
 * but at most half of DRAIN_TIMEOUT (a short DRAIN_TIMEOUT set before DRAIN_DELAY existed still
 * starts); set, it must be 0 or below DRAIN_TIMEOUT.
 */
export function drainTimes(value: Reader, set: SetReader): { drainTimeoutMs: number; drainDelayMs: number } {
  const drainTimeoutMs = parseDuration("DRAIN_TIMEOUT", value("DRAIN_TIMEOUT"), 0, 3_600_000);
  const raw = set("DRAIN_DELAY");
  if (raw === undefined) {
    const defaultMs = parseDuration("DRAIN_DELAY", value("DRAIN_DELAY"), 0, 3_600_000);
    return { drainTimeoutMs, drainDelayMs: Math.min(defaultMs, Math.floor(drainTimeoutMs / 2)) };
  }
  const drainDelayMs = parseDuration("DRAIN_DELAY", raw, 0, 3_600_000);
  // The delay is part of DRAIN_TIMEOUT: what is in flight when it ends needs time of its own.
  if (drainDelayMs > 0 && drainDelayMs >= drainTimeoutMs) fail("DRAIN_DELAY", raw);
  return { drainTimeoutMs, drainDelayMs };
}
