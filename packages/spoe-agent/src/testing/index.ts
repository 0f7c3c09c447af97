/**
 * @spoekit/spoe-agent/testing — play HAProxy against any SPOE agent: a client that says HELLO
 * (traffic or health check), sends NOTIFYs (pipelined) and DISCONNECT and returns what the
 * agent answers, decoded; and a load generator (also the `spop-bench` command).
 *
 * @packageDocumentation
 */

export { formatReport, parseArgSpec, parseCommandLine, runCli, UsageError } from "./cli.ts";
export {
  type ClientClosed,
  connectClient,
  type IdStyle,
  openSocket,
  SpopClient,
  SpopClientError,
  type SpopClientOptions,
  type SpopTarget,
} from "./client.ts";
export { LatencyHistogram } from "./histogram.ts";
export { type LatencySummary, type LoadErrors, type LoadOptions, type LoadReport, runLoad } from "./load.ts";
export { ManualClock } from "./manual-clock.ts";
export { type CheckRateArgs, checkRateMessage, spoeMessage } from "./messages.ts";
