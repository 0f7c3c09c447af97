/**
 * The codec's properties, shared by the test suite (a bounded number of runs) and the fuzz
 * script (many more). Assertions use node:assert so that both can run them.
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import { decodeFrame, encodeFrame, type Frame, FrameReader, SpopError } from "../src/index.ts";
import { cutsArb, frameArb, mutate, mutationArb, wholeFrameArb } from "./arbitraries.ts";
import { capturedFrames } from "./fixtures.ts";

/** Large enough for any generated frame. */
const MAX = 1 << 20;
const KNOWN_STATUSES = new Set([3, 4, 10, 11, 12]);

/** The frame with every byte array as hex, so that Buffer and Uint8Array compare equal. */
function comparable(frame: Frame): unknown {
  return JSON.parse(
    JSON.stringify(frame, (_key, value: unknown) => {
      if (typeof value === "bigint") return `${value}n`;
      if (value instanceof Uint8Array) return { hex: Buffer.from(value).toString("hex") };
      if (value !== null && typeof value === "object" && (value as { type?: unknown }).type === "Buffer") {
        return { hex: Buffer.from((value as { data: number[] }).data).toString("hex") };
      }
      return value;
    }),
  );
}

function split(bytes: Buffer, cuts: readonly number[]): Buffer[] {
  const chunks: Buffer[] = [];
  let from = 0;
  for (const cut of [...cuts, bytes.length]) {
    if (cut > from) chunks.push(bytes.subarray(from, cut));
    from = cut;
  }
  return chunks;
}

/** Decoding succeeds with a frame that re-encodes to the same bytes, or fails with a SpopError. */
function decodesCanonicallyOrRefuses(bytes: Buffer): void {
  let frame: Frame;
  try {
    frame = decodeFrame(bytes, { fragmentation: true, maxFrameSize: MAX });
  } catch (error) {
    assert.ok(error instanceof SpopError, `not a SpopError: ${String(error)}`);
    assert.ok(KNOWN_STATUSES.has(error.status), `unexpected status ${error.status}`);
    return;
  }
  assert.equal(encodeFrame(frame, { maxFrameSize: MAX }).toString("hex"), bytes.toString("hex"));
}

/** Streaming yields frames until it fails with a SpopError, never anything else. */
function streamsOrRefuses(chunks: readonly Buffer[], fragmentation: boolean): void {
  const reader = new FrameReader({ fragmentation, maxFrameSize: 4096 });
  try {
    for (const chunk of chunks) {
      reader.push(chunk);
      for (const frame of reader) assert.equal(typeof frame.type, "number");
    }
    reader.end();
  } catch (error) {
    assert.ok(error instanceof SpopError, `not a SpopError: ${String(error)}`);
  }
}

export interface PropertyRuns {
  /** encode → decode is the identity. */
  roundTrip: number;
  /** A sequence of frames cut anywhere streams back unchanged. */
  stream: number;
  /** Random bytes. */
  randomBytes: number;
  /** Random frame bodies behind a correct length prefix. */
  randomBodies: number;
  /** Random bytes streamed in random chunks. */
  randomStreams: number;
  /** Mutations of the captured HAProxy frames. */
  mutatedFixtures: number;
}

export type PropertyName = keyof PropertyRuns;

const bodyArb = fc.tuple(
  fc.constantFrom(0, 1, 2, 3, 101, 102, 103, 4, 255),
  fc.uint8Array({ maxLength: 120 }),
);

interface RunParameters {
  numRuns: number;
  seed?: number;
}

const properties: Record<PropertyName, (parameters: RunParameters) => void> = {
  roundTrip: (parameters) =>
    fc.assert(
      fc.property(frameArb, (frame) => {
        const bytes = encodeFrame(frame, { maxFrameSize: MAX });
        const decoded = decodeFrame(bytes, { fragmentation: true, maxFrameSize: MAX });
        assert.deepEqual(comparable(decoded), comparable(frame));
      }),
      parameters,
    ),
  stream: (parameters) =>
    fc.assert(
      fc.property(
        fc.array(wholeFrameArb, { minLength: 1, maxLength: 6 }).chain((frames) => {
          const bytes = Buffer.concat(frames.map((frame) => encodeFrame(frame, { maxFrameSize: MAX })));
          return fc.tuple(fc.constant(frames), fc.constant(bytes), cutsArb(bytes.length));
        }),
        ([frames, bytes, cuts]) => {
          const reader = new FrameReader({ maxFrameSize: MAX });
          const out: Frame[] = [];
          for (const chunk of split(bytes, cuts)) {
            reader.push(chunk);
            out.push(...reader);
          }
          reader.end();
          assert.deepEqual(out.map(comparable), frames.map(comparable));
        },
      ),
      parameters,
    ),
  randomBytes: (parameters) =>
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), (bytes) =>
        decodesCanonicallyOrRefuses(Buffer.from(bytes)),
      ),
      parameters,
    ),
  randomBodies: (parameters) =>
    fc.assert(
      fc.property(bodyArb, ([type, rest]) => {
        const bytes = Buffer.alloc(5 + rest.length);
        bytes.writeUInt32BE(1 + rest.length);
        bytes[4] = type;
        bytes.set(rest, 5);
        decodesCanonicallyOrRefuses(bytes);
      }),
      parameters,
    ),
  randomStreams: (parameters) =>
    fc.assert(
      fc.property(
        fc
          .uint8Array({ maxLength: 400 })
          .chain((bytes) => fc.tuple(fc.constant(Buffer.from(bytes)), cutsArb(bytes.length))),
        fc.boolean(),
        ([bytes, cuts], fragmentation) => streamsOrRefuses(split(bytes, cuts), fragmentation),
      ),
      parameters,
    ),
  mutatedFixtures: (parameters) =>
    fc.assert(
      fc.property(
        fc.nat(capturedFrames.length - 1),
        fc.array(mutationArb, { minLength: 1, maxLength: 4 }),
        fc.boolean(),
        (index, mutations, fixPrefix) => {
          const bytes = mutate((capturedFrames[index] as (typeof capturedFrames)[number]).bytes, mutations);
          if (fixPrefix && bytes.length >= 4) bytes.writeUInt32BE(bytes.length - 4);
          decodesCanonicallyOrRefuses(bytes);
          streamsOrRefuses(split(bytes, [1, 5, 17, 40]), true);
        },
      ),
      parameters,
    ),
};

/** Runs one property `runs` times (seeded when `seed` is given); throws with fast-check's report on failure. */
export function checkProperty(name: PropertyName, runs: number, seed?: number): void {
  properties[name](seed === undefined ? { numRuns: runs } : { numRuns: runs, seed });
}

/** The runs the test suite makes: 107 000 cases in all. */
export const suiteRuns: PropertyRuns = {
  roundTrip: 20_000,
  stream: 5_000,
  randomBytes: 15_000,
  randomBodies: 25_000,
  randomStreams: 7_000,
  mutatedFixtures: 35_000,
};
