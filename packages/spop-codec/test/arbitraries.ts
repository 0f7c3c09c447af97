/** fast-check generators of every SPOP frame, in the canonical form the decoder yields. */
import fc from "fast-check";
import {
  type Action,
  ActionType,
  DataType,
  type Frame,
  FrameFlags,
  FrameType,
  type KVItem,
  type Message,
  Scope,
  type TypedValue,
} from "../src/index.ts";

const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER);

/** A 64-bit integer as the decoder yields it: a number when safe, a bigint otherwise. */
function canonical(value: bigint): number | bigint {
  return value >= -MAX_SAFE && value <= MAX_SAFE ? Number(value) : value;
}

/** Names: mostly short ASCII, sometimes any Unicode, sometimes longer than the name cache keeps. */
export const nameArb: fc.Arbitrary<string> = fc.oneof(
  { weight: 6, arbitrary: fc.string({ maxLength: 12 }) },
  { weight: 2, arbitrary: fc.string({ unit: "grapheme", maxLength: 12 }) },
  { weight: 1, arbitrary: fc.string({ unit: "grapheme-ascii", minLength: 60, maxLength: 300 }) },
);

/** STRING values, including bytes that are not UTF-8 (kept as `bytes`). */
const stringValueArb: fc.Arbitrary<TypedValue> = fc.oneof(
  fc.string({ unit: "grapheme", maxLength: 100 }).map((value) => ({ type: DataType.STRING, value })),
  fc.uint8Array({ maxLength: 40 }).map((bytes) => {
    const buffer = Buffer.from(bytes);
    const value = buffer.toString("utf8");
    return Buffer.from(value, "utf8").equals(buffer)
      ? { type: DataType.STRING, value }
      : { type: DataType.STRING, value, bytes: buffer };
  }),
);

const int64 = fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n });
const uint64 = fc.bigInt({ min: 0n, max: 2n ** 64n - 1n });

export const typedValueArb: fc.Arbitrary<TypedValue> = fc.oneof(
  fc.constant<TypedValue>({ type: DataType.NULL }),
  fc.boolean().map((value) => ({ type: DataType.BOOL, value })),
  fc.integer({ min: -(2 ** 31), max: 2 ** 31 - 1 }).map((value) => ({ type: DataType.INT32, value })),
  fc.integer({ min: 0, max: 2 ** 32 - 1 }).map((value) => ({ type: DataType.UINT32, value })),
  fc
    .oneof(int64, fc.integer().map(BigInt))
    .map((value) => ({ type: DataType.INT64, value: canonical(value) })),
  fc.oneof(uint64, fc.nat().map(BigInt)).map((value) => ({ type: DataType.UINT64, value: canonical(value) })),
  fc.uint8Array({ minLength: 4, maxLength: 4 }).map((value) => ({ type: DataType.IPV4, value })),
  fc.uint8Array({ minLength: 16, maxLength: 16 }).map((value) => ({ type: DataType.IPV6, value })),
  stringValueArb,
  fc.uint8Array({ maxLength: 300 }).map((value) => ({ type: DataType.BINARY, value })),
) as fc.Arbitrary<TypedValue>;

const kvItemArb: fc.Arbitrary<KVItem> = fc.record({ name: nameArb, value: typedValueArb });
const kvListArb = fc.array(kvItemArb, { maxLength: 6 });
const messageArb: fc.Arbitrary<Message> = fc.record({
  name: nameArb,
  args: fc.array(kvItemArb, { maxLength: 8 }),
});
const scopeArb = fc.constantFrom(Scope.PROC, Scope.SESS, Scope.TXN, Scope.REQ, Scope.RES);

export const actionArb: fc.Arbitrary<Action> = fc.oneof(
  fc.record({
    type: fc.constant(ActionType.SET_VAR),
    scope: scopeArb,
    name: nameArb,
    value: typedValueArb,
  }),
  fc.record({ type: fc.constant(ActionType.UNSET_VAR), scope: scopeArb, name: nameArb }),
);

/** Ids: mostly small, up to 2^53 − 1. */
const idArb = fc.oneof(fc.nat(1000), fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }));
/** Reserved flag bits (2–31), which the codec carries through unchanged. */
const reservedArb = fc.oneof(
  { weight: 4, arbitrary: fc.constant(0) },
  { weight: 1, arbitrary: fc.integer({ min: 1, max: 2 ** 30 - 1 }).map((bits) => bits * 4) },
);
const wholeFlagsArb = fc
  .tuple(reservedArb, fc.boolean())
  .map(([reserved, abort]) => reserved + (abort ? FrameFlags.ABORT : 0) + FrameFlags.FIN);

const handshakeTypes = [
  FrameType.HAPROXY_HELLO,
  FrameType.HAPROXY_DISCONNECT,
  FrameType.AGENT_HELLO,
  FrameType.AGENT_DISCONNECT,
] as const;

/** Any frame, fragment pieces included (decode them with `fragmentation: true`). */
export const frameArb: fc.Arbitrary<Frame> = fc.oneof(
  fc.record({
    type: fc.constantFrom(...handshakeTypes),
    flags: wholeFlagsArb,
    streamId: fc.constant(0),
    frameId: fc.constant(0),
    items: kvListArb,
  }),
  fc.record({
    type: fc.constant(FrameType.NOTIFY),
    flags: wholeFlagsArb,
    streamId: idArb,
    frameId: idArb,
    messages: fc.array(messageArb, { maxLength: 3 }),
  }),
  fc.record({
    type: fc.constant(FrameType.ACK),
    flags: wholeFlagsArb,
    streamId: idArb,
    frameId: idArb,
    actions: fc.array(actionArb, { maxLength: 6 }),
  }),
  fc.record({
    type: fc.constant(FrameType.UNSET),
    frameType: fc.constantFrom(FrameType.NOTIFY, FrameType.ACK),
    flags: reservedArb,
    streamId: idArb,
    frameId: idArb,
    payload: fc.uint8Array({ maxLength: 200 }),
  }),
  fc.record({
    type: fc.constant(FrameType.UNSET),
    frameType: fc.constant(FrameType.UNSET),
    flags: fc.oneof(reservedArb, wholeFlagsArb),
    streamId: idArb,
    frameId: idArb,
    payload: fc.uint8Array({ maxLength: 200 }),
  }),
) as fc.Arbitrary<Frame>;

/** Whole frames only (what a reader without fragmentation yields). */
export const wholeFrameArb: fc.Arbitrary<Frame> = frameArb.filter((frame) => frame.type !== FrameType.UNSET);

/** Sorted cut points splitting `length` bytes into chunks (1-byte chunks likely). */
export function cutsArb(length: number): fc.Arbitrary<number[]> {
  return fc
    .uniqueArray(fc.integer({ min: 1, max: Math.max(1, length - 1) }), { maxLength: Math.min(length, 40) })
    .map((cuts) => cuts.filter((cut) => cut < length).sort((a, b) => a - b));
}

/** One edit of a byte string. */
export type Mutation =
  | { kind: "set"; at: number; byte: number }
  | { kind: "insert"; at: number; bytes: Uint8Array }
  | { kind: "delete"; at: number; count: number }
  | { kind: "truncate"; at: number }
  | { kind: "repeat"; at: number; count: number };

export const mutationArb: fc.Arbitrary<Mutation> = fc.oneof(
  { weight: 5, arbitrary: fc.record({ kind: fc.constant("set" as const), at: fc.nat(), byte: fc.nat(255) }) },
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant("insert" as const),
      at: fc.nat(),
      bytes: fc.uint8Array({ minLength: 1, maxLength: 12 }),
    }),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant("delete" as const),
      at: fc.nat(),
      count: fc.integer({ min: 1, max: 12 }),
    }),
  },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant("truncate" as const), at: fc.nat() }) },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant("repeat" as const),
      at: fc.nat(),
      count: fc.integer({ min: 1, max: 12 }),
    }),
  },
);

/** Applies `mutations` to a copy of `bytes`; positions wrap around the current length. */
export function mutate(bytes: Uint8Array, mutations: readonly Mutation[]): Buffer {
  let out = Buffer.from(bytes);
  for (const mutation of mutations) {
    const at = out.length === 0 ? 0 : mutation.at % out.length;
    switch (mutation.kind) {
      case "set":
        if (out.length > 0) out[at] = mutation.byte;
        break;
      case "insert":
        out = Buffer.concat([out.subarray(0, at), mutation.bytes, out.subarray(at)]);
        break;
      case "delete":
        out = Buffer.concat([out.subarray(0, at), out.subarray(at + mutation.count)]);
        break;
      case "truncate":
        out = out.subarray(0, at);
        break;
      case "repeat":
        out = Buffer.concat([out.subarray(0, at + mutation.count), out.subarray(at)]);
        break;
    }
  }
  return out;
}
