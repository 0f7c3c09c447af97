/**
 * `pnpm bench`: the agent's hot path and the reader's throughput, with a baseline measured in
 * the same run. Run it on one core (`taskset -c 0 pnpm bench`); the package script takes the
 * machine-wide benchmark lock (`flock /tmp/spoekit-bench.lock`) so that runs do not overlap. Times
 * are given in CPU time (what the process used) and elapsed; on a shared machine the first is
 * the steadier, and the load average is printed with them.
 *
 * 1. Decode the NOTIFY HAProxy 2.6 sends for the check-rate message and encode its ACK with four
 *    SET-VARs — ns per pair, median of several runs, with the actions as objects and in a reused
 *    `ActionList`, against two baselines measured in the same runs: `Buffer.from(frame)` +
 *    `JSON.parse` of the same content as JSON, and the floor of any JavaScript codec (each byte
 *    of the NOTIFY read once, its address copied, each byte of the ACK written once); then the
 *    heap after a long run. Each run measures every loop in turn, so that they share the
 *    machine's state, and the ratios are the medians of the runs' own ratios.
 * 2. Stream 64 MiB of mixed frames through a FrameReader in random chunk sizes — MB/s.
 */
import { loadavg } from "node:os";
import { join } from "node:path";
import {
  ackFrame,
  agentHelloFrame,
  encodeFrame,
  FrameReader,
  haproxyDisconnectFrame,
  notifyFrame,
  Scope,
  setVar,
  TypedValue,
} from "../src/index.ts";
import { capturedFrame, capturedFrames } from "../src/testing/index.ts";

const gc = (globalThis as { gc?: () => void }).gc;
if (gc === undefined) throw new Error("run with node --expose-gc (pnpm bench does)");

const captured = capturedFrames.map((frame) => ({ ...frame, bytes: Buffer.from(frame.hex, "hex") }));
const notifyBytes = capturedFrame("2.6.12", "NOTIFY", "IPv4");

const RUNS = 7;
const median = (values: number[]) =>
  [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)] as number;
const fmt = (n: number, digits = 0) =>
  n.toLocaleString("en-US", { maximumFractionDigits: digits, minimumFractionDigits: digits });

/** Nanoseconds per op of each run: elapsed, and CPU time of the process (user + system). */
interface Timing {
  wall: number[];
  cpu: number[];
}

/** Runs `op` `count` times: ns per op, elapsed and in CPU time. */
function time(op: (i: number) => void, count: number, into: Timing): void {
  const used = process.cpuUsage();
  const start = process.hrtime.bigint();
  for (let i = 0; i < count; i++) op(i);
  into.wall.push(Number(process.hrtime.bigint() - start) / count);
  const { user, system } = process.cpuUsage(used);
  into.cpu.push(((user + system) * 1000) / count);
}

/**
 * Runs each op `count` times per run, `RUNS` runs after a warm-up, the ops one after the other
 * within each run (in a rotating order), so that a change in the machine's load during the
 * benchmark weighs on all of them alike. On a shared machine the CPU time is the steadier
 * figure: it leaves out the time the process waited for a core.
 */
function measure(ops: readonly ((i: number) => void)[], count: number): Timing[] {
  const timings = ops.map((): Timing => ({ wall: [], cpu: [] }));
  for (const op of ops) for (let i = 0; i < count; i++) op(i);
  for (let run = 0; run < RUNS; run++) {
    for (let k = 0; k < ops.length; k++) {
      const at = (run + k) % ops.length;
      time(ops[at] as (i: number) => void, count, timings[at] as Timing);
    }
  }
  return timings;
}

/** Median ns per op of the runs, elapsed and in CPU time. */
const medians = (timing: Timing) => ({ wall: median(timing.wall), cpu: median(timing.cpu) });

/** How many times faster than `baseline` `op` ran: the median of the runs' own ratios. */
const rate = (op: Timing, baseline: Timing, kind: keyof Timing) =>
  median(op[kind].map((ns, run) => (baseline[kind][run] as number) / ns));

// 1. NOTIFY in, ACK out ------------------------------------------------------------------
/** The pair, with the actions as objects and in a reused ActionList (shared with `bench:compare`). */
const { pair, pairList } = (await import(
  `./pair-loops.ts?src=${encodeURIComponent(join(import.meta.dirname, "..", "src"))}`
)) as typeof import("./pair-loops.ts");
let sink = 0;

const json = JSON.stringify({
  type: "NOTIFY",
  streamId: 0,
  frameId: 1,
  messages: [
    {
      name: "check-rate",
      args: [
        { name: "ip_fwd", value: null },
        { name: "ip_xff", value: null },
        { name: "ip_src", value: "127.0.0.1" },
      ],
    },
  ],
});
function baseline(): void {
  sink += Buffer.from(notifyBytes).length;
  sink += (JSON.parse(json) as { frameId: number }).frameId;
}

/**
 * The floor of a JavaScript codec for the pair: read each byte of the NOTIFY once, copy its
 * address into a Uint8Array of its own (as the decoder must), write each byte of the same ACK
 * once into a slab and hand it out as a Buffer. No validation, no objects for the frame: a
 * loop of the same kind of work as the codec's, so that load weighs on both alike.
 */
const ackBytes = Buffer.from(
  encodeFrame(
    ackFrame(0, 1, [
      setVar(Scope.SESS, "ip_score", TypedValue.int32(0)),
      setVar(Scope.SESS, "retry_after", TypedValue.int32(0)),
      setVar(Scope.SESS, "remaining", TypedValue.int32(0)),
      setVar(Scope.SESS, "limit", TypedValue.int32(100)),
    ]),
  ),
);
const floorSlab = Buffer.allocUnsafeSlow(64 * 1024);
const addressAt = notifyBytes.length - 4;
/** The ACK's frame-id: after the length prefix, the type, the flags and a one-byte stream-id. */
const frameIdAt = 4 + 1 + 4 + 1;
function floor(i: number): void {
  let sum = 0;
  for (let at = 0; at < notifyBytes.length; at++) sum += notifyBytes[at] as number;
  const address = new Uint8Array(4);
  for (let at = 0; at < 4; at++) address[at] = notifyBytes[addressAt + at] as number;
  for (let at = 0; at < ackBytes.length; at++) floorSlab[at] = ackBytes[at] as number;
  floorSlab[frameIdAt] = i & 127;
  sink += sum + (address[i & 3] as number) + floorSlab.subarray(0, ackBytes.length).length;
}

const PAIRS = 500_000;
const [pairRuns, pairListRuns, baselineRuns, floorRuns] = measure(
  [pair, pairList, baseline, floor],
  PAIRS,
) as [Timing, Timing, Timing, Timing];
const pairNs = medians(pairRuns);
const pairListNs = medians(pairListRuns);
const baselineNs = medians(baselineRuns);
const floorNs = medians(floorRuns);

// Memory after warm-up: rounds of pairs must leave nothing behind. The first rounds show a few
// KiB that V8 itself settles (compiled code, feedback); an empty loop shows the same.
const LONG_RUN = 2_000_000;
/** Full GCs, with pauses so that freed buffers' memory is actually released. */
async function settle(): Promise<NodeJS.MemoryUsage> {
  for (let i = 0; i < 3; i++) {
    gc?.();
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  return process.memoryUsage();
}
const checkpoints = [await settle()];
for (let round = 0; round < 5; round++) {
  for (let i = 0; i < LONG_RUN; i++) pair(i);
  checkpoints.push(await settle());
}
/** Growth per round of LONG_RUN pairs, in KiB. */
const growth = checkpoints.slice(1).map((after, round) => {
  const before = checkpoints[round] as NodeJS.MemoryUsage;
  return {
    heap: (after.heapUsed - before.heapUsed) / 1024,
    buffers: (after.arrayBuffers - before.arrayBuffers) / 1024,
  };
});

// 2. Streaming throughput -------------------------------------------------------------------
/** mulberry32: a seeded PRNG, so that every run streams the same bytes in the same chunks. */
function prng(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const ack = encodeFrame(
  ackFrame(12345, 1, [
    setVar(Scope.SESS, "ip_score", TypedValue.int32(0)),
    setVar(Scope.SESS, "retry_after", TypedValue.int32(0)),
    setVar(Scope.SESS, "remaining", TypedValue.int32(99)),
    setVar(Scope.SESS, "limit", TypedValue.int32(100)),
  ]),
);
const large = encodeFrame(
  notifyFrame(77, 1, [
    {
      name: "inspect",
      args: [
        { name: "user_agent", value: TypedValue.string("Mozilla/5.0 (X11; Linux x86_64) ".repeat(12)) },
        { name: "body", value: TypedValue.binary(new Uint8Array(2048).fill(0x5a)) },
      ],
    },
  ]),
);
const notifies = captured.filter((f) => f.kind === "NOTIFY").map((f) => f.bytes);
const handshakes = [
  ...captured.filter((f) => f.kind !== "NOTIFY").map((f) => f.bytes),
  encodeFrame(agentHelloFrame({ maxFrameSize: 16380, capabilities: ["pipelining"] })),
  encodeFrame(haproxyDisconnectFrame(0)),
];

const STREAM_BYTES = 64 * 1024 * 1024;
const random = prng(2024);
const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)] as T;

interface Stream {
  bytes: Buffer;
  frames: number;
  mix: Record<string, number>;
}

/** 64 MiB of frames drawn by `draw`, which names the kind of each frame it returns. */
function buildStream(draw: () => [string, Buffer]): Stream {
  const parts: Buffer[] = [];
  const mix: Record<string, number> = {};
  let length = 0;
  while (length < STREAM_BYTES) {
    const [kind, frame] = draw();
    mix[kind] = (mix[kind] ?? 0) + 1;
    parts.push(frame);
    length += frame.length;
  }
  return { bytes: Buffer.concat(parts), frames: parts.length, mix };
}

const mixed = buildStream(() => {
  const roll = random();
  if (roll < 0.6) return ["captured NOTIFYs", pick(notifies)];
  if (roll < 0.85) return ["ACKs", ack];
  if (roll < 0.9) return ["HELLO/DISCONNECT", pick(handshakes)];
  return ["2.5 KiB NOTIFYs", large];
});
let next = 0;
const capturedOnly = buildStream(() => {
  const frame = captured[next++ % captured.length] as (typeof captured)[number];
  return [frame.kind, frame.bytes];
});

function chunked(stream: Stream, maxChunk: number): Buffer[] {
  const chunks: Buffer[] = [];
  for (let at = 0; at < stream.bytes.length; ) {
    const size = 1 + Math.floor(random() * maxChunk);
    chunks.push(stream.bytes.subarray(at, at + size));
    at += size;
  }
  return chunks;
}

function throughput(stream: Stream, maxChunk: number): string {
  const chunks = chunked(stream, maxChunk);
  const seconds: number[] = [];
  for (let run = 0; run <= 5; run++) {
    const streamReader = new FrameReader();
    let frames = 0;
    const start = process.hrtime.bigint();
    for (const chunk of chunks) {
      streamReader.push(chunk);
      while (streamReader.next() !== undefined) frames++;
    }
    const elapsed = Number(process.hrtime.bigint() - start) / 1e9;
    if (frames !== stream.frames) throw new Error(`read ${frames} frames, wrote ${stream.frames}`);
    if (run > 0) seconds.push(elapsed);
  }
  const time = median(seconds);
  return `${fmt(stream.bytes.length / 1e6 / time)} MB/s, ${fmt(stream.frames / time)} frames/s`;
}

function describeMix(stream: Stream): string {
  return Object.entries(stream.mix)
    .map(([kind, count]) => `${fmt((100 * count) / stream.frames)}% ${kind}`)
    .join(", ");
}

const mixedLarge = throughput(mixed, 65536);
const mixedSmall = throughput(mixed, 1500);
const capturedLarge = throughput(capturedOnly, 65536);

// Report ------------------------------------------------------------------------------------
const pairsPerSecond = 1e9 / pairNs.wall;
const [loadOne, loadFive] = loadavg();
console.log(`@spoekit/spop-codec benchmark — Node ${process.version}, median of ${RUNS} runs`);
console.log(`machine load average ${fmt(loadOne ?? 0, 1)} (1 min), ${fmt(loadFive ?? 0, 1)} (5 min)\n`);
console.log("NOTIFY (HAProxy 2.6 check-rate) decoded + ACK with 4 SET-VARs encoded:");
console.log(
  `  ${fmt(pairNs.cpu, 1)} ns CPU per pair (target ≤ 400 ns), ${fmt(pairNs.wall, 1)} ns elapsed: ${fmt(pairsPerSecond)} pairs/s`,
);
console.log(
  `  the same, the ACK's actions in a reused ActionList (as spoe-agent keeps them): ${fmt(pairListNs.cpu, 1)} ns CPU per pair, ${fmt(pairListNs.wall, 1)} ns elapsed`,
);
console.log(
  `  baseline Buffer.from(frame) + JSON.parse(same content): ${fmt(baselineNs.cpu, 1)} ns CPU per op, ${fmt(baselineNs.wall, 1)} ns elapsed`,
);
console.log(
  `  codec pair vs baseline: ${fmt(rate(pairRuns, baselineRuns, "cpu"), 2)}× the baseline's rate in CPU time (${fmt(rate(pairRuns, baselineRuns, "wall"), 2)}× elapsed)`,
);
console.log(
  `  floor (each byte of the NOTIFY read, its address copied, each byte of the ACK written): ${fmt(floorNs.cpu, 1)} ns CPU per pair, ${fmt(floorNs.wall, 1)} ns elapsed`,
);
console.log(
  `  codec pair vs floor: ${fmt(1 / rate(pairRuns, floorRuns, "cpu"), 2)}× the floor's time in CPU time, ActionList pair ${fmt(1 / rate(pairListRuns, floorRuns, "cpu"), 2)}×`,
);
const signed = (kib: number) => `${kib >= 0 ? "+" : ""}${fmt(kib, 1)} KiB`;
console.log(
  `  memory after GC, per round of ${fmt(LONG_RUN)} pairs: ` +
    growth.map((g) => `${signed(g.heap)} heap / ${signed(g.buffers)} buffers`).join(", "),
);
console.log(`\nFrameReader, 64 MiB streams cut into chunks of random size (target ≥ 300 MB/s):`);
console.log(
  `  mixed frames (${describeMix(mixed)}, ${fmt(mixed.bytes.length / mixed.frames)} B/frame on average):`,
);
console.log(`    chunks of 1 B–64 KiB:  ${mixedLarge}`);
console.log(`    chunks of 1 B–1500 B:  ${mixedSmall}`);
console.log(
  `  the captured HAProxy frames only (${fmt(capturedOnly.bytes.length / capturedOnly.frames)} B/frame on average):`,
);
console.log(`    chunks of 1 B–64 KiB:  ${capturedLarge}`);
if (sink === 0) console.log("");
