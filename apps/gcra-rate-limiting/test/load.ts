/**
 * Steady HTTP load through HAProxy for the fault tests, and what they read from the app: its
 * decisions by source and its log lines. Phases are counted, not timed: a test runs load until
 * a number of replies (or an event) is seen, then stops it, so no bound widens with the
 * machine's load.
 */
import { waitFor } from "@spoekit/harness";
import { expect } from "vitest";
import { admittedCounts } from "./gcra-run.ts";
import { type AppProcess, type Front, type HttpReply, type Sample, total } from "./stack.ts";

/** A request that got no HTTP answer, and when it was sent (`performance.now()` ms). */
export interface LoadFailure {
  readonly sentAt: number;
  readonly error: string;
}

/** Clients sending GETs one after the other, each as an address of its own, until stopped. */
export interface Load {
  readonly replies: readonly HttpReply[];
  /** The replies of client `i`, in order. */
  readonly byClient: readonly (readonly HttpReply[])[];
  readonly failures: readonly LoadFailure[];
  /** Waits until `count` replies (matching `which`, default all) have come since the load began. */
  until(count: number, which?: (reply: HttpReply) => boolean): Promise<void>;
  /** Stops the clients and waits for their requests in flight. */
  stop(): Promise<void>;
}

/** A hang guard for waits on load and events: never reached unless something is broken. */
export const hangMs = 180_000;

/** Starts `clients` clients on `proxy`; client `i` sends `X-Forwarded-For: address(i)`. */
export function startLoad(proxy: Front, clients: number, address: (i: number) => string): Load {
  const replies: HttpReply[] = [];
  const byClient: HttpReply[][] = Array.from({ length: clients }, () => []);
  const failures: LoadFailure[] = [];
  let running = true;
  const loops = byClient.map(async (mine, i) => {
    const headers = { "X-Forwarded-For": address(i) };
    while (running) {
      const sentAt = performance.now();
      try {
        const reply = await proxy.get(headers, "/", 30_000);
        replies.push(reply);
        mine.push(reply);
      } catch (error) {
        failures.push({ sentAt, error: String(error) });
      }
    }
  });
  return {
    replies,
    byClient,
    failures,
    until: (count, which = () => true) =>
      waitFor(() => replies.filter(which).length >= count, {
        what: `${count} replies under load`,
        timeoutMs: hangMs,
      }),
    async stop() {
      running = false;
      await Promise.all(loops);
    },
  };
}

/** Decision sources that are the failure policy answering instead of the store. */
export const policySources = ["open", "closed", "fallback"] as const;

/** The app's decisions, by outcome and source, from its metrics. */
export interface Decisions {
  readonly allowed: number;
  readonly denied: number;
  /** Decided by the store (a call, or the deny cache learnt from the store). */
  readonly store: { readonly allowed: number; readonly denied: number };
  /** Answered by the failure policy (`open`, `closed`, `fallback`). */
  readonly policy: { readonly allowed: number; readonly denied: number };
}

export function decisionsOf(samples: readonly Sample[]): Decisions {
  const count = (outcome: string, sources: readonly string[]) =>
    sources.reduce((sum, source) => sum + total(samples, "gcra_decisions_total", { outcome, source }), 0);
  const storeSources = ["store", "deny-cache"];
  const store = { allowed: count("allowed", storeSources), denied: count("denied", storeSources) };
  const policy = { allowed: count("allowed", policySources), denied: count("denied", policySources) };
  return {
    allowed: store.allowed + policy.allowed,
    denied: store.denied + policy.denied,
    store,
    policy,
  };
}

/** `after` − `before`, field by field. */
export function decisionsBetween(before: Decisions, after: Decisions): Decisions {
  return {
    allowed: after.allowed - before.allowed,
    denied: after.denied - before.denied,
    store: {
      allowed: after.store.allowed - before.store.allowed,
      denied: after.store.denied - before.store.denied,
    },
    policy: {
      allowed: after.policy.allowed - before.policy.allowed,
      denied: after.policy.denied - before.policy.denied,
    },
  };
}

/** One JSON log line of the app. */
export interface LogLine {
  readonly msg: string;
  readonly time: number;
  readonly [field: string]: unknown;
}

/** The app's JSON log lines from character `from` of its output on. */
export function logLines(app: AppProcess, from = 0): LogLine[] {
  return app
    .output()
    .slice(from)
    .split("\n")
    .filter((line) => line.startsWith("{"))
    .map((line) => JSON.parse(line) as LogLine);
}

/** Waits for a log line with `msg` after character `from` of the app's output; returns it. */
export async function logLine(app: AppProcess, msg: string, from = 0): Promise<LogLine> {
  let found: LogLine | undefined;
  await waitFor(
    () => {
      found = logLines(app, from).find((line) => line.msg === msg);
      return found !== undefined;
    },
    { what: `the log line "${msg}"`, timeoutMs: hangMs },
    () => app.output().slice(from),
  );
  return found as LogLine;
}

/** What the fault tests give HAProxy and the app: no answer is late while Valkey is healthy. */
export const generous = { processingTimeout: "10s", valkeyTimeout: "1s" } as const;
/** Clients of each phase's load. */
const clients = 8;

/** Replies by HTTP status. */
export function statusCounts(replies: readonly HttpReply[]): {
  ok: number;
  limited: number;
  other: number[];
} {
  const ok = replies.filter((r) => r.status === 200).length;
  const limited = replies.filter((r) => r.status === 429).length;
  return { ok, limited, other: replies.map((r) => r.status).filter((s) => s !== 200 && s !== 429) };
}

/**
 * Runs `during` under load from `clients` fresh addresses, then stops the load and returns its
 * replies with the decisions the app made meanwhile (counters read with nothing in flight).
 */
export async function phase(
  app: AppProcess,
  proxy: Front,
  address: (i: number) => string,
  during: (load: Load) => Promise<void>,
): Promise<{ load: Load; decided: Decisions }> {
  const before = decisionsOf(await app.metrics());
  const load = startLoad(proxy, clients, address);
  try {
    await during(load);
  } finally {
    await load.stop();
  }
  return { load, decided: decisionsBetween(before, decisionsOf(await app.metrics())) };
}

/**
 * What every phase with a healthy store shows: no failed request, a verdict on each (the limit
 * header), HTTP statuses equal to the store's decisions, none by the policy, and each client's
 * admitted count one GCRA allows (1 request/s, bursts of 5).
 */
export function expectStoreDecidedAll(load: Load, decided: Decisions): void {
  const counts = statusCounts(load.replies);
  expect(load.failures).toEqual([]);
  expect(counts.other).toEqual([]);
  expect(load.replies.filter((r) => r.headers["ratelimit-limit"] !== "5")).toEqual([]);
  expect(decided).toEqual({
    allowed: counts.ok,
    denied: counts.limited,
    store: { allowed: counts.ok, denied: counts.limited },
    policy: { allowed: 0, denied: 0 },
  });
  for (const replies of load.byClient) {
    const admitted = replies.filter((r) => r.status === 200).length;
    expect(admittedCounts(replies, 1_000_000, 5_000_000)).toContain(admitted);
  }
}

/**
 * A fault the store rides through: load until 150 replies, `fault()`, load until 150 replies
 * sent after it returned; then {@link expectStoreDecidedAll} and no warning in the app's log.
 * Returns the app's log lines from the start.
 */
export async function ridesThrough(
  app: AppProcess,
  proxy: Front,
  address: (i: number) => string,
  fault: () => Promise<void>,
): Promise<LogLine[]> {
  const mark = app.output().length;
  const { load, decided } = await phase(app, proxy, address, async (running) => {
    await running.until(150);
    await fault();
    const after = performance.now();
    await running.until(150, (r) => r.sentAt > after);
  });
  expectStoreDecidedAll(load, decided);
  const lines = logLines(app, mark);
  expect(lines.filter((l) => Number(l.level) >= 40)).toEqual([]);
  return lines;
}
