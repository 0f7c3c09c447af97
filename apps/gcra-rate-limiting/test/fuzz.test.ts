/**
 * The mutation fuzzer (see fuzz.ts) against the app as a process of its own: a million frames in
 * CI (`SPOEKIT_FUZZ_FRAMES` for more, `SPOEKIT_FUZZ_SEED` to replay a run), over thousands of
 * connections. The process never exits, every connection ends with AGENT-DISCONNECT and a known
 * status (or a health check answered), the valid NOTIFYs before the first mutation are answered,
 * the resident set stays flat after the warm-up, and a valid client is answered correctly after.
 */
import { checkRateMessage, connectClient } from "@spoekit/spoe-agent/testing";
import { ActionType, Scope } from "@spoekit/spop-codec";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { median, type Outcome, planConnection, residentBytes, runConnection } from "./fuzz.ts";
import { type AppProcess, startApp, total } from "./stack.ts";

/**
 * Frames to send. At least a million: the RSS criterion takes the first quarter as the warm-up,
 * and a quarter of a million frames is what the heap needs to reach its working size (with fewer,
 * the second quarter still grows).
 */
const framesWanted = Number(process.env.SPOEKIT_FUZZ_FRAMES ?? 1_000_000);
if (!Number.isSafeInteger(framesWanted) || framesWanted < 1_000_000) {
  throw new RangeError(`SPOEKIT_FUZZ_FRAMES must be a whole number of at least 1000000, got ${framesWanted}`);
}
const seed =
  process.env.SPOEKIT_FUZZ_SEED === undefined
    ? (Math.random() * 2 ** 32) >>> 0
    : Number(process.env.SPOEKIT_FUZZ_SEED) >>> 0;
/** Connections in flight at once. */
const concurrency = 8;
/** A hang guard per connection, not a speed requirement. */
const hangMs = 60_000;
/** RSS samples over the run, evenly spaced by frames sent. */
const samples = 100;
/**
 * How far the resident set may rise from just after the warm-up to the end: the median of the
 * last quarter's samples against the median of the second quarter's (the first quarter is the
 * warm-up, in which the heap grows to its working size). The app runs with the production flag
 * `--max-semi-space-size=4` (as `npm start`): V8's young generation then takes up to 3 × 4 MiB
 * (two semi-spaces and the new large-object space), and a sample lands anywhere in that cycle;
 * old space grows in steps of about 1 MiB as the GC heuristics see fit; malloc keeps freed socket
 * buffers of the 8 connections in flight (≈ 0.5 MiB). 16 MiB covers those with room. The two
 * medians lie half a run apart (≥ 500,000 frames, about 3,800 connections per million): a leak of
 * 34 bytes per frame, or 4.5 KiB per connection, exceeds it. Measured: the medians within 3 MiB
 * of each other, either way.
 */
const allowanceBytes = 16 * 2 ** 20;

describe("the SPOP port under a mutation fuzzer", () => {
  let app: AppProcess;

  beforeAll(async () => {
    app = await startApp({
      // 1,000 requests/s per client, bursts of 100: keys expire within 100 ms and are swept.
      SPOA_RATE_INTERVAL: "1000",
      SPOA_RATE_BURST: "100000",
      NODE_OPTIONS: "--max-semi-space-size=4",
    });
  });

  afterAll(async () => {
    await app?.stop();
  });

  it(`survives ${framesWanted} fuzzed frames, answers what is valid, keeps its memory flat (seed ${seed})`, async () => {
    const pid = app.process.pid;
    const verdicts = new Map<string, number>();
    const rss: number[] = [];
    let framesSent = 0;
    let mutated = 0;
    let acks = 0;
    let connections = 0;
    let failure: unknown;
    let nextSample = 0;
    const started = performance.now();
    const cpuBefore = process.cpuUsage();
    const agentCpuBefore = total(await app.metrics(), "process_cpu_seconds_total");
    const record = (outcome: Outcome) => {
      const key = String(outcome.verdict);
      verdicts.set(key, (verdicts.get(key) ?? 0) + 1);
      acks += outcome.acks;
    };
    const worker = async () => {
      while (framesSent < framesWanted && failure === undefined) {
        const plan = planConnection(seed, connections++, framesWanted - framesSent);
        framesSent += plan.frames;
        mutated += plan.mutated;
        try {
          record(await runConnection(app.spopPort, plan, hangMs));
        } catch (error) {
          failure ??= error;
          return;
        }
        if (framesSent >= nextSample) {
          nextSample += framesWanted / samples;
          rss.push(await residentBytes(pid));
        }
      }
    };
    await Promise.all(Array.from({ length: concurrency }, worker));
    const seconds = (performance.now() - started) / 1000;
    const cpu = process.cpuUsage(cpuBefore);
    const replay = `replay with SPOEKIT_FUZZ_SEED=${seed} SPOEKIT_FUZZ_FRAMES=${framesWanted}`;
    if (failure !== undefined) throw new Error(`${String(failure)}\n${replay}\n${app.output().slice(-4000)}`);

    expect(app.process.child.exitCode, replay).toBeNull();
    expect(app.process.child.signalCode, replay).toBeNull();
    expect((await app.admin("/healthz")).status, replay).toBe(200);
    const metrics = await app.metrics();
    const decoded = total(metrics, "spoa_frames_received_total");
    const quarter = Math.floor(rss.length / 4);
    const afterWarmUp = median(rss.slice(quarter, 2 * quarter));
    const end = median(rss.slice(-quarter));
    const mib = (bytes: number) => (bytes / 2 ** 20).toFixed(1);
    console.info(
      `fuzz seed ${seed}: ${framesSent} frames (${mutated} mutated) on ${connections} connections in ` +
        `${seconds.toFixed(1)} s = ${Math.round(framesSent / seconds)} frames/s; the agent decoded ${decoded} ` +
        `frames and sent ${acks} ACKs; verdicts ${JSON.stringify(Object.fromEntries(verdicts))}; ` +
        `RSS MiB: first ${mib(rss[0] ?? 0)}, after warm-up ${mib(afterWarmUp)}, last quarter ${mib(end)}, ` +
        `max ${mib(Math.max(...rss))}; at the end V8 heap ` +
        `${mib(total(metrics, "nodejs_heap_size_used_bytes"))} used of ${mib(total(metrics, "nodejs_heap_size_total_bytes"))}, ` +
        `external ${mib(total(metrics, "nodejs_external_memory_bytes"))}; CPU s: agent ` +
        `${(total(metrics, "process_cpu_seconds_total") - agentCpuBefore).toFixed(1)}, fuzzer ` +
        `${((cpu.user + cpu.system) / 1e6).toFixed(1)}`,
    );
    expect(framesSent).toBeGreaterThanOrEqual(framesWanted);
    // Most frames reach the decoder: the fuzzer does not just feed a closed socket.
    expect(decoded, replay).toBeGreaterThan(framesWanted / 2);
    expect(acks, replay).toBeGreaterThan(framesWanted / 2);
    expect(rss.length).toBeGreaterThanOrEqual(samples / 2);
    expect(end, `RSS rose from ${mib(afterWarmUp)} to ${mib(end)} MiB; ${replay}`).toBeLessThanOrEqual(
      afterWarmUp + allowanceBytes,
    );

    // A valid client afterwards: answered, and correctly.
    const client = await connectClient({ port: app.spopPort });
    await client.hello();
    const ack = await client.notify([checkRateMessage("192.0.2.201")]);
    await client.disconnect();
    const vars = Object.fromEntries(
      ack.actions.flatMap((a) =>
        a.type === ActionType.SET_VAR && a.scope === Scope.SESS && "value" in a.value
          ? [[a.name, Number(a.value.value)]]
          : [],
      ),
    );
    expect(vars).toEqual({ ip_score: 0, retry_after: 0, remaining: 99, limit: 100 });
    expect(app.process.child.exitCode).toBeNull();
  }, 900_000);
});
