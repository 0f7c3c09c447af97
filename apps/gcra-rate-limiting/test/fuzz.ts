/**
 * A mutation fuzzer for the app's SPOP port. Seeds: the frames captured from real HAProxy
 * processes (`@spoekit/spop-codec/testing`) and HELLOs, NOTIFYs and DISCONNECTs built with the
 * codec. Each connection gets a plan — a HELLO (valid, mutated, a health check or none), a few
 * hundred frames of which a chosen share is mutated (bit flips, byte inserts and deletes, length
 * fields corrupted, varints overflowed, truncation, splices, huge declared lengths, frame types and
 * flags changed), then a tail that forces a verdict — and writes it whole or in fragments.
 *
 * Everything derives from one seed: connection `i` of seed `s` always gets the same bytes,
 * whatever the scheduling, so a failure names the seed and the connection that reproduce it.
 */
import { readFile } from "node:fs/promises";
import { connect } from "node:net";
import { setImmediate as yieldToLoop } from "node:timers/promises";
import { checkRateMessage, spoeMessage } from "@spoekit/spoe-agent/testing";
import {
  DEFAULT_MAX_FRAME_SIZE,
  type DisconnectStatus,
  disconnectReasons,
  encodeFrame,
  FRAME_LENGTH_BYTES,
  type Frame,
  FrameReader,
  FrameType,
  haproxyDisconnectFrame,
  haproxyHelloFrame,
  notifyFrame,
  parseDisconnect,
  TypedValue,
} from "@spoekit/spop-codec";
import { capturedFrames } from "@spoekit/spop-codec/testing";

/** A small, fast, seedable generator (mulberry32): the fuzzer's only source of randomness. */
export class Random {
  #state: number;

  constructor(seed: number) {
    this.#state = seed >>> 0;
  }

  /** A float in [0, 1). */
  next(): number {
    this.#state = (this.#state + 0x6d2b79f5) >>> 0;
    let t = this.#state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32;
  }

  /** An integer in [low, high]. */
  int(low: number, high: number): number {
    return low + Math.floor(this.next() * (high - low + 1));
  }

  chance(p: number): boolean {
    return this.next() < p;
  }

  pick<T>(items: readonly T[]): T {
    const item = items[Math.floor(this.next() * items.length)];
    if (item === undefined) throw new RangeError("pick from an empty list");
    return item;
  }

  /** One of `choices`, each with its weight. */
  weighted<T>(choices: readonly (readonly [T, number])[]): T {
    let r = this.next() * choices.reduce((sum, [, w]) => sum + w, 0);
    for (const [value, weight] of choices) {
      r -= weight;
      if (r < 0) return value;
    }
    return (choices[choices.length - 1] as readonly [T, number])[0];
  }

  bytes(n: number): Buffer {
    const out = Buffer.allocUnsafe(n);
    for (let i = 0; i < n; i++) out[i] = this.int(0, 255);
    return out;
  }
}

/** A NOTIFY's bytes and its `streamId:frameId`. */
interface SeedNotify {
  readonly bytes: Buffer;
  readonly ids: string;
}

function idsOf(notify: Buffer): string {
  const reader = new FrameReader();
  reader.push(notify);
  const frame = reader.next();
  if (frame?.type !== FrameType.NOTIFY) throw new Error("a captured NOTIFY does not decode");
  return `${frame.streamId}:${frame.frameId}`;
}

const hexFrames = (kind: string, note = "") =>
  capturedFrames
    .filter((f) => f.kind === kind && f.note.includes(note))
    .map((f) => Buffer.from(f.hex, "hex"));

/** The seeds, by kind. */
const seeds = {
  trafficHellos: [
    ...hexFrames("HAPROXY-HELLO", "traffic"),
    encodeFrame(haproxyHelloFrame({ maxFrameSize: 16380, capabilities: ["pipelining", "async"] })),
    encodeFrame(
      haproxyHelloFrame({ maxFrameSize: 1024, capabilities: ["pipelining"], engineId: "fuzz-engine" }),
    ),
  ],
  healthHellos: hexFrames("HAPROXY-HELLO", "health check"),
  notifies: hexFrames("NOTIFY").map((bytes) => ({ bytes, ids: idsOf(bytes) })),
  disconnects: [...hexFrames("HAPROXY-DISCONNECT"), encodeFrame(haproxyDisconnectFrame(0, "fuzz"))],
};

/** Bytes that make parsers take a different branch. */
const interesting = [0x00, 0x01, 0x02, 0x03, 0x07, 0x08, 0x09, 0x0f, 0x7f, 0x80, 0xef, 0xf0, 0xfe, 0xff];

function withLength(frame: Buffer): Buffer {
  frame.writeUInt32BE(Math.max(0, frame.length - FRAME_LENGTH_BYTES), 0);
  return frame;
}

/** A NOTIFY built with the codec: one or two messages, addresses of every kind, random ids. */
function builtNotify(rng: Random): SeedNotify {
  const ip4 = () => `${rng.pick([198, 203, 192])}.${rng.int(0, 255)}.${rng.int(0, 255)}.${rng.int(1, 254)}`;
  const ip6 = () => `2001:db8:${rng.int(0, 0xffff).toString(16)}::${rng.int(1, 0xffff).toString(16)}`;
  const message = () => {
    const src = rng.chance(0.7) ? ip4() : ip6();
    const kind = rng.int(0, 4);
    if (kind === 0) return checkRateMessage(src);
    if (kind === 1) return checkRateMessage(src, { ipXff: TypedValue.ipv4(ip4()) });
    if (kind === 2) return checkRateMessage(src, { ipFwd: TypedValue.string(`for="[${ip6()}]:80"`) });
    if (kind === 3) return checkRateMessage(src, { ipFwd: TypedValue.ipv6(ip6()) });
    return spoeMessage(rng.pick(["check-rate", "other-message", ""]), {
      ip_src: rng.pick([TypedValue.null, TypedValue.int32(rng.int(-5, 5)), TypedValue.binary(rng.bytes(4))]),
    });
  };
  const messages = rng.chance(0.9) ? [message()] : [message(), message()];
  const [streamId, frameId] = [rng.int(0, 2 ** 20), rng.int(0, 2 ** 20)];
  return { bytes: encodeFrame(notifyFrame(streamId, frameId, messages)), ids: `${streamId}:${frameId}` };
}

type Mutator = (frame: Buffer, rng: Random) => Buffer;

/** Each mutation takes a whole frame (length prefix included) and returns new bytes. */
const mutators: Record<string, Mutator> = {
  bitFlip(frame, rng) {
    const out = Buffer.from(frame);
    for (let n = rng.int(1, 8); n > 0; n--) {
      const at = rng.int(rng.chance(0.1) ? 0 : FRAME_LENGTH_BYTES, out.length - 1);
      out[at] = (out[at] ?? 0) ^ (1 << rng.int(0, 7));
    }
    return out;
  },
  byteSet(frame, rng) {
    const out = Buffer.from(frame);
    for (let n = rng.int(1, 4); n > 0; n--)
      out[rng.int(FRAME_LENGTH_BYTES, out.length - 1)] = rng.pick(interesting);
    return out;
  },
  insert(frame, rng) {
    const at = rng.int(FRAME_LENGTH_BYTES, frame.length);
    const out = Buffer.concat([frame.subarray(0, at), rng.bytes(rng.int(1, 16)), frame.subarray(at)]);
    return rng.chance(0.7) ? withLength(out) : out;
  },
  delete(frame, rng) {
    const at = rng.int(FRAME_LENGTH_BYTES, frame.length - 1);
    const out = Buffer.concat([
      frame.subarray(0, at),
      frame.subarray(Math.min(frame.length, at + rng.int(1, 16))),
    ]);
    return rng.chance(0.7) ? withLength(out) : out;
  },
  lengthField(frame, rng) {
    const out = Buffer.from(frame);
    const length = frame.length - FRAME_LENGTH_BYTES;
    out.writeUInt32BE(
      rng.pick(
        [0, 1, 4, 5, length - 1, length + 1, length + rng.int(2, 64), rng.int(0, 0xffff)].map((v) =>
          Math.max(0, v),
        ),
      ),
      0,
    );
    return out;
  },
  hugeLength(frame, rng) {
    const out = Buffer.from(frame);
    out.writeUInt32BE(
      rng.pick([
        DEFAULT_MAX_FRAME_SIZE,
        DEFAULT_MAX_FRAME_SIZE + 1,
        2 ** 16,
        2 ** 24,
        2 ** 31 - 1,
        2 ** 32 - 1,
      ]),
      0,
    );
    return out;
  },
  varintOverflow(frame, rng) {
    // The stream id's varint starts after LENGTH, TYPE and FLAGS; elsewhere is a guess.
    const at = rng.chance(0.5) ? FRAME_LENGTH_BYTES + 5 : rng.int(FRAME_LENGTH_BYTES + 5, frame.length);
    const run = Buffer.alloc(rng.int(2, 14), rng.pick([0xff, 0xf0, 0x80]));
    if (rng.chance(0.5)) run[run.length - 1] = rng.int(0, 0x7f); // terminated, but too long
    const out = Buffer.concat([frame.subarray(0, at), run, frame.subarray(Math.min(frame.length, at + 1))]);
    return rng.chance(0.8) ? withLength(out) : out;
  },
  truncate(frame, rng) {
    const out = Buffer.from(frame.subarray(0, rng.int(1, frame.length - 1)));
    return out.length >= FRAME_LENGTH_BYTES && rng.chance(0.5) ? withLength(out) : out;
  },
  splice(frame, rng) {
    const other = rng.chance(0.5) ? rng.pick(seeds.notifies).bytes : rng.pick(seeds.trafficHellos);
    const out = Buffer.concat([
      frame.subarray(0, rng.int(FRAME_LENGTH_BYTES, frame.length)),
      other.subarray(rng.int(FRAME_LENGTH_BYTES, other.length)),
    ]);
    return rng.chance(0.7) ? withLength(out) : out;
  },
  frameType(frame, rng) {
    const out = Buffer.from(frame);
    out[FRAME_LENGTH_BYTES] = rng.chance(0.5) ? rng.pick([0, 1, 2, 101, 102, 103]) : rng.int(0, 255);
    return out;
  },
  flags(frame, rng) {
    const out = Buffer.from(frame);
    // FIN unset (a fragment, not negotiated), ABORT set, or reserved bits.
    out.writeUInt32BE(rng.pick([0, 2, 3, rng.int(0, 2 ** 32 - 1)]), FRAME_LENGTH_BYTES + 1);
    return out;
  },
};
const mutatorNames = Object.keys(mutators);
/** LENGTH, TYPE and FLAGS. */
const headerBytes = FRAME_LENGTH_BYTES + 5;

function mutate(frame: Buffer, rng: Random): Buffer {
  let out = frame;
  for (let n = rng.chance(0.8) ? 1 : rng.int(2, 4); n > 0; n--) {
    const mutator = mutators[rng.pick(mutatorNames)] as Mutator;
    // Every mutator needs LENGTH, TYPE and FLAGS to work on: a frame cut shorter grows back.
    out = mutator(out.length < headerBytes ? Buffer.concat([out, rng.bytes(headerBytes)]) : out, rng);
  }
  return out;
}

/**
 * What follows each connection's frames: enough 0xFF bytes to complete any frame still being
 * read (at most `maxFrameSize` + its prefix) and then a 4-byte LENGTH of 2³² − 1, which no
 * agent may accept. Every connection thus ends in a verdict of the agent's.
 */
const tail = Buffer.alloc(DEFAULT_MAX_FRAME_SIZE + 2 * FRAME_LENGTH_BYTES, 0xff);

export type HelloKind = "valid" | "health" | "mutated" | "none";

/** One connection's bytes and what the agent must do with them. */
export interface Plan {
  readonly index: number;
  readonly hello: HelloKind;
  readonly bytes: Buffer;
  /** Sizes of the writes, in order; one write of everything when empty. */
  readonly chunks: readonly number[];
  /** Frames written (the HELLO and the tail not counted). */
  readonly frames: number;
  readonly mutated: number;
  /**
   * `streamId:frameId` of the NOTIFYs sent after a valid HELLO and before the first mutated frame
   * or DISCONNECT: the agent must answer each, first and in order.
   */
  readonly cleanIds: readonly string[];
}

/** The plan of connection `index` of the run seeded with `seed`. */
export function planConnection(seed: number, index: number, framesWanted: number): Plan {
  const rng = new Random((seed ^ Math.imul(index + 1, 0x9e3779b1)) >>> 0);
  const hello = rng.weighted<HelloKind>([
    ["valid", 85],
    ["health", 3],
    ["mutated", 8],
    ["none", 4],
  ]);
  const parts: Buffer[] = [];
  if (hello === "valid") parts.push(rng.pick(seeds.trafficHellos));
  if (hello === "health") parts.push(rng.pick(seeds.healthHellos));
  if (hello === "mutated") parts.push(mutate(rng.pick([...seeds.trafficHellos, ...seeds.healthHellos]), rng));
  // Frames after the first fatal mutation are discarded unread. So that most frames reach the
  // decoder, a connection sends a run of NOTIFYs with mutations sprinkled at a low rate, then a
  // short run mutated at a high rate; without a valid HELLO, only a few frames.
  const valid = hello === "valid";
  const sprinkled = rng.weighted([
    [0, 50],
    [0.002, 30],
    [0.01, 20],
  ]);
  const runs = valid
    ? [
        { frames: rng.int(0, 300), share: sprinkled },
        { frames: rng.int(1, 6), share: 0.7 },
      ]
    : [{ frames: rng.int(1, 8), share: 0.3 }];
  const cleanIds: string[] = [];
  let clean = valid;
  let frames = 0;
  let mutated = 0;
  for (const run of runs) {
    for (let i = 0; i < run.frames && frames < framesWanted; i++, frames++) {
      const notify = rng.chance(0.3) ? rng.pick(seeds.notifies) : builtNotify(rng);
      if (rng.chance(run.share)) {
        parts.push(mutate(notify.bytes, rng));
        mutated++;
        clean = false;
      } else {
        parts.push(notify.bytes);
        if (clean) cleanIds.push(notify.ids);
      }
    }
  }
  if (frames < framesWanted && rng.chance(0.05)) {
    parts.push(rng.pick(seeds.disconnects));
    frames++;
  }
  // A plan without a mutation leaves no frame half read: LENGTH 2³² − 1 alone decides.
  parts.push(mutated === 0 && hello !== "mutated" ? tail.subarray(0, FRAME_LENGTH_BYTES) : tail);
  const bytes = Buffer.concat(parts);
  const chunks: number[] = [];
  if (rng.chance(0.5)) {
    const small = rng.chance(0.3);
    for (let left = bytes.length; left > 0; ) {
      const size = Math.min(left, small ? rng.int(1, 64) : rng.int(1, 4096));
      chunks.push(size);
      left -= size;
    }
  }
  return { index, hello, bytes, chunks, frames, mutated, cleanIds };
}

/** What the agent did with one connection. */
export interface Outcome {
  /** The AGENT-DISCONNECT status, or `healthcheck` for a health check answered and closed. */
  readonly verdict: number | "healthcheck";
  readonly acks: number;
}

/** A connection whose answer breaks the contract. */
export class FuzzFailure extends Error {
  readonly code = "FUZZ_FAILURE";
}

const validStatuses = new Set(Object.keys(disconnectReasons).map(Number));

/**
 * Checks what the agent sent on a connection of `plan`: valid agent frames only, AGENT-HELLO
 * first after a HELLO, the clean NOTIFYs answered first and in order, and an AGENT-DISCONNECT
 * with a known status (and a message) last — or, after a health-check HELLO, AGENT-HELLO alone.
 */
export function judge(plan: Plan, received: Buffer): Outcome {
  const fail = (what: string): never => {
    throw new FuzzFailure(`connection ${plan.index} (hello ${plan.hello}): ${what}`);
  };
  const reader = new FrameReader({ maxFrameSize: 2 ** 24 });
  reader.push(received);
  const frames: Frame[] = [];
  try {
    for (let frame = reader.next(); frame !== undefined; frame = reader.next()) frames.push(frame);
  } catch (error) {
    fail(`the agent sent an invalid frame: ${String(error)}`);
  }
  if (reader.bufferedBytes > 0)
    fail(`the agent's output ends in a partial frame (${reader.bufferedBytes} bytes)`);
  const last = frames[frames.length - 1];
  if (last === undefined) return fail("closed without a frame");
  if (last.type !== FrameType.AGENT_DISCONNECT) {
    if (frames.length === 1 && last.type === FrameType.AGENT_HELLO && plan.hello !== "valid") {
      return { verdict: "healthcheck", acks: 0 };
    }
    return fail(`closed without AGENT-DISCONNECT after ${frames.length} frames (last type ${last.type})`);
  }
  const { status, message } = parseDisconnect(last);
  if (!validStatuses.has(status)) fail(`AGENT-DISCONNECT with unknown status ${status}`);
  if (message === "") fail(`AGENT-DISCONNECT status ${status} without a message`);
  const body = frames.slice(0, -1);
  if (plan.hello === "valid" && body[0]?.type !== FrameType.AGENT_HELLO)
    fail("no AGENT-HELLO after a valid HELLO");
  const acks = body.filter((f) => f.type === FrameType.ACK);
  if (
    body.length - acks.length > 1 ||
    (body.length > acks.length && body[0]?.type !== FrameType.AGENT_HELLO)
  ) {
    fail(`unexpected frame types ${body.map((f) => f.type).join(",")}`);
  }
  const answered = acks.slice(0, plan.cleanIds.length).map((f) => `${f.streamId}:${f.frameId}`);
  if (answered.join(" ") !== plan.cleanIds.join(" ")) {
    fail(`${plan.cleanIds.length} valid NOTIFYs before any mutation, ${answered.length} answered in order`);
  }
  return { verdict: status as DisconnectStatus, acks: acks.length };
}

/**
 * Writes `plan` to the agent on 127.0.0.1:`port` (whole, or in its chunks with a turn of the
 * event loop every few writes, so the agent reads partial frames), collects what the agent sends
 * until the socket closes, and judges it. The fuzzer never closes first: the plan's tail makes
 * the agent end every connection (a peer that closes first gets nothing answered, as HAProxy
 * expects), and the socket ends when the agent's does. Rejects after `hangMs` (a hang guard).
 */
export async function runConnection(port: number, plan: Plan, hangMs: number): Promise<Outcome> {
  const socket = connect({ host: "127.0.0.1", port });
  socket.setNoDelay(true);
  const received: Buffer[] = [];
  socket.on("data", (chunk: Buffer) => received.push(chunk));
  let timer: NodeJS.Timeout | undefined;
  const closed = new Promise<void>((resolve, reject) => {
    // A reset after the agent's last frame is a normal end; what it sent is judged.
    socket.on("error", () => undefined);
    socket.on("close", () => resolve());
    timer = setTimeout(() => {
      socket.destroy();
      reject(new FuzzFailure(`connection ${plan.index}: no close within ${hangMs} ms`));
    }, hangMs);
  });
  try {
    await new Promise<void>((resolve, reject) => {
      socket.once("connect", resolve);
      socket.once("error", reject);
    });
    if (plan.chunks.length === 0) {
      socket.write(plan.bytes);
    } else {
      let offset = 0;
      for (let i = 0; i < plan.chunks.length && !socket.destroyed; i++) {
        const size = plan.chunks[i] as number;
        socket.write(plan.bytes.subarray(offset, offset + size));
        offset += size;
        if (i % 8 === 7) await yieldToLoop();
      }
    }
    await closed;
  } finally {
    clearTimeout(timer);
  }
  return judge(plan, Buffer.concat(received));
}

/** The resident set of process `pid` in bytes, from /proc. */
export async function residentBytes(pid: number): Promise<number> {
  const match = /^VmRSS:\s+(\d+) kB$/m.exec(await readFile(`/proc/${pid}/status`, "utf8"));
  if (!match?.[1]) throw new Error(`no VmRSS in /proc/${pid}/status`);
  return Number(match[1]) * 1024;
}

/** The median of `values` (sorted copy). */
export function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1
    ? (sorted[mid] as number)
    : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
}
