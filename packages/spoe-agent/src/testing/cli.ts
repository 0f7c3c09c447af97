/**
 * `spop-bench`: the load generator as a command. Parses its arguments, runs {@link runLoad}
 * and prints NOTIFY/s, latency percentiles and errors, as text or JSON.
 */
import { readFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { type KVItem, type Message, parseIp, TypedValue } from "@spoekit/spop-codec";
import { SpoeAgentError } from "../errors.ts";
import type { IdStyle } from "./client.ts";
import { type LoadOptions, type LoadReport, runLoad } from "./load.ts";

const usage = `Usage: spop-bench [options]

Drives an SPOE agent (any SPOA) as HAProxy would, and measures it.

Target:
  --host <addr>            agent address (default 127.0.0.1)
  --port <n>               agent port (default 9000)
  --unix <path>            a unix socket instead of host and port
  --tls                    connect with TLS
  --tls-ca <file>          trust this CA (PEM) for TLS
  --insecure               do not verify the agent's TLS certificate

Load:
  -c, --connections <n>    connections (default 64)
  -d, --depth <n>          NOTIFYs in flight per connection (default 20)
  -t, --duration <s>       seconds measured (default 10)
      --warmup <s>         seconds of load before measuring (default 1)
  -r, --rate <n>           total NOTIFY/s, open loop (default: as fast as the agent answers)
      --ids <style>        stream ids as haproxy-3 (odd, default) or haproxy-2.6 send them

Message (default: check-rate with ip_fwd=null ip_xff=null ip_src=ipv4:127.0.0.1):
  -m, --message <name>     the SPOE message name
  -a, --arg <name=type:v>  an argument, repeatable; type is null, bool, int32, uint32, int64,
                           uint64, ipv4, ipv6, string or binary (hex), e.g. ip_src=ipv4:192.0.2.1

Output:
      --json               print the report as JSON
  -h, --help               this text

Exit status: 0 when every NOTIFY was answered, 1 on errors, 2 on bad arguments.`;

/** A bad command line (code `SPOP_BENCH_USAGE`). */
export class UsageError extends SpoeAgentError {
  override readonly name = "UsageError";
  constructor(message: string) {
    super("SPOP_BENCH_USAGE", message);
  }
}

/** Reads `name=type:value` into a KV item. */
export function parseArgSpec(spec: string): KVItem {
  const match = /^([^=]*)=([a-z0-9]+)(?::(.*))?$/s.exec(spec);
  if (match === null) throw new UsageError(`--arg ${spec}: expected name=type:value`);
  const [, name = "", type, text = ""] = match;
  const integer = () => {
    if (!/^-?\d+$/.test(text)) throw new UsageError(`--arg ${spec}: ${text} is not an integer`);
    const value = BigInt(text);
    return value >= BigInt(Number.MIN_SAFE_INTEGER) && value <= BigInt(Number.MAX_SAFE_INTEGER)
      ? Number(value)
      : value;
  };
  const value = (() => {
    switch (type) {
      case "null":
        return TypedValue.null;
      case "bool":
        return TypedValue.bool(text === "true" || text === "1");
      case "int32":
        return TypedValue.int32(Number(integer()));
      case "uint32":
        return TypedValue.uint32(Number(integer()));
      case "int64":
        return TypedValue.int64(integer());
      case "uint64":
        return TypedValue.uint64(integer());
      case "ipv4":
        return TypedValue.ipv4(parseIp(text, 4));
      case "ipv6":
        return TypedValue.ipv6(parseIp(text, 6));
      case "string":
        return TypedValue.string(text);
      case "binary":
        return TypedValue.binary(Buffer.from(text, "hex"));
      default:
        throw new UsageError(`--arg ${spec}: unknown type ${type}`);
    }
  })();
  return { name, value };
}

function number(flag: string, text: string | undefined, fallback: number): number {
  if (text === undefined) return fallback;
  const value = Number(text);
  if (!Number.isFinite(value) || value <= 0)
    throw new UsageError(`${flag} ${text}: expected a positive number`);
  return value;
}

/** The {@link LoadOptions} a command line asks for; throws {@link UsageError}. */
export function parseCommandLine(argv: readonly string[]): {
  options: LoadOptions;
  json: boolean;
  help: boolean;
} {
  let parsed: ReturnType<typeof parse>;
  try {
    parsed = parse(argv);
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
  const { values } = parsed;
  const ids = values.ids ?? "haproxy-3";
  if (ids !== "haproxy-3" && ids !== "haproxy-2.6")
    throw new UsageError(`--ids ${ids}: expected haproxy-3 or haproxy-2.6`);
  const args = (values.arg ?? ["ip_fwd=null", "ip_xff=null", "ip_src=ipv4:127.0.0.1"]).map(parseArgSpec);
  const message: Message = { name: values.message ?? "check-rate", args };
  const tls =
    values["tls-ca"] !== undefined
      ? { ca: readFileSync(values["tls-ca"]), rejectUnauthorized: !values.insecure }
      : values.tls || values.insecure
        ? { rejectUnauthorized: !values.insecure }
        : undefined;
  const options: LoadOptions = {
    ...(values.unix === undefined
      ? { host: values.host ?? "127.0.0.1", port: number("--port", values.port, 9000) }
      : { path: values.unix }),
    ...(tls === undefined ? {} : { tls }),
    connections: number("--connections", values.connections, 64),
    depth: number("--depth", values.depth, 20),
    duration: number("--duration", values.duration, 10) * 1000,
    warmup: values.warmup === undefined ? 1000 : Number(values.warmup) * 1000,
    ...(values.rate === undefined ? {} : { rate: number("--rate", values.rate, 0) }),
    ids: ids as IdStyle,
    messages: [message],
  };
  if (!Number.isInteger(options.connections) || !Number.isInteger(options.depth)) {
    throw new UsageError("--connections and --depth are whole numbers");
  }
  if (!((options.warmup as number) >= 0))
    throw new UsageError(`--warmup ${values.warmup}: expected seconds ≥ 0`);
  return { options, json: values.json ?? false, help: values.help ?? false };
}

function parse(argv: readonly string[]) {
  return parseArgs({
    args: [...argv],
    strict: true,
    allowPositionals: false,
    options: {
      host: { type: "string" },
      port: { type: "string" },
      unix: { type: "string" },
      tls: { type: "boolean" },
      "tls-ca": { type: "string" },
      insecure: { type: "boolean" },
      connections: { type: "string", short: "c" },
      depth: { type: "string", short: "d" },
      duration: { type: "string", short: "t" },
      warmup: { type: "string" },
      rate: { type: "string", short: "r" },
      ids: { type: "string" },
      message: { type: "string", short: "m" },
      arg: { type: "string", short: "a", multiple: true },
      json: { type: "boolean" },
      help: { type: "boolean", short: "h" },
    },
  });
}

const fmt = (value: number, digits = 0) =>
  value.toLocaleString("en-US", { minimumFractionDigits: digits, maximumFractionDigits: digits });
const ms = (value: number) => `${fmt(value, value < 10 ? 2 : 1)} ms`;

/** The report as the text `spop-bench` prints. */
export function formatReport(report: LoadReport, target: string): string {
  const { latency, errors } = report;
  const mode =
    report.targetRate === undefined ? "as fast as answered" : `at ${fmt(report.targetRate)} NOTIFY/s`;
  const lines = [
    `spop-bench: ${report.connections} connections × ${report.depth} in flight to ${target}, ${fmt(report.duration / 1000, 1)} s measured, ${mode}`,
    `  NOTIFY/s  ${fmt(report.rate)}   (${fmt(report.notifies)} answered)`,
    `  latency   p50 ${ms(latency.p50)}   p90 ${ms(latency.p90)}   p99 ${ms(latency.p99)}   p99.9 ${ms(latency.p999)}   max ${ms(latency.max)}`,
    `  errors    ${errors.total}${errors.total === 0 ? "" : ` (disconnects ${errors.disconnects}, closed ${errors.closed}, protocol ${errors.protocol}, unanswered ${errors.lost})`}`,
  ];
  if (report.missed > 0)
    lines.push(
      `  missed    ${fmt(report.missed)} NOTIFYs not sent on time: every connection had ${report.depth} in flight`,
    );
  for (const sample of errors.samples) lines.push(`            ${sample}`);
  return `${lines.join("\n")}\n`;
}

/** Runs `spop-bench` with `argv`; writes to `out`/`err` and resolves with the exit status. */
export async function runCli(
  argv: readonly string[],
  out: (text: string) => void = (text) => process.stdout.write(text),
  err: (text: string) => void = (text) => process.stderr.write(text),
): Promise<number> {
  let parsed: ReturnType<typeof parseCommandLine>;
  try {
    parsed = parseCommandLine(argv);
  } catch (error) {
    if (!(error instanceof UsageError) && !(error instanceof Error)) throw error;
    err(`spop-bench: ${error.message}\n\n${usage}\n`);
    return 2;
  }
  if (parsed.help) {
    out(`${usage}\n`);
    return 0;
  }
  const { options } = parsed;
  const target =
    options.path !== undefined
      ? `unix:${options.path}`
      : `${options.tls ? "tls" : "tcp"}://${options.host}:${options.port}`;
  const controller = new AbortController();
  const stop = () => controller.abort();
  process.once("SIGINT", stop);
  try {
    const report = await runLoad({ ...options, signal: controller.signal });
    out(parsed.json ? `${JSON.stringify({ target, ...report }, null, 2)}\n` : formatReport(report, target));
    return report.errors.total === 0 && report.notifies > 0 ? 0 : 1;
  } finally {
    process.off("SIGINT", stop);
  }
}
