/**
 * The NOTIFY/ACK pair the benchmarks measure, over the codec whose sources are at the `src`
 * parameter of this module's URL: `codec.bench.ts` imports it for this tree's sources, and
 * `compare.bench.ts` once per revision, so that each gets functions (and type feedback) of its own.
 */
import type * as Codec from "../src/index.ts";
import { capturedFrame } from "../src/testing/index.ts";

const src = new URL(import.meta.url).searchParams.get("src");
if (src === null) throw new Error("import this module with ?src=<directory of the codec's sources>");
const { ActionList, DataType, FrameReader, FrameType, FrameWriter, Scope, setVar, TypedValue } =
  (await import(`${src}/index.ts`)) as typeof Codec;

const notifyBytes = capturedFrame("2.6.12", "NOTIFY", "IPv4");
const reader = new FrameReader();
const writer = new FrameWriter();
const actions = new ActionList();
let sink = 0;
/** Whether the pair being measured denies its client (every other one, as a verdict would). */
let denied = false;

/** Decodes the NOTIFY and sets `denied` (no object to carry both back, which would be measured). */
function decodeNotify(i: number): Codec.NotifyFrame {
  reader.push(notifyBytes);
  const notify = reader.next();
  if (notify?.type !== FrameType.NOTIFY) throw new Error("expected a NOTIFY");
  const source = notify.messages[0]?.args[2]?.value;
  denied = source?.type === DataType.IPV4 && (i & 1) === 1;
  return notify;
}

/** Decodes the NOTIFY, encodes its ACK with the actions as objects, releases the bytes. */
export function pair(i: number): void {
  const notify = decodeNotify(i);
  writer.writeAck(notify.streamId, notify.frameId, [
    setVar(Scope.SESS, "ip_score", TypedValue.int32(denied ? 100 : 0)),
    setVar(Scope.SESS, "retry_after", TypedValue.int32(denied ? i & 7 : 0)),
    setVar(Scope.SESS, "remaining", TypedValue.int32(i & 63)),
    setVar(Scope.SESS, "limit", TypedValue.int32(100)),
  ]);
  sink += writer.flush().length;
  writer.release(); // as an agent does once a socket has written the bytes at once
}

/** The same pair with the ACK's actions in a reused ActionList, as `@spoekit/spoe-agent` keeps them. */
export function pairList(i: number): void {
  const notify = decodeNotify(i);
  actions
    .setVar(Scope.SESS, "ip_score", TypedValue.int32(denied ? 100 : 0))
    .setVar(Scope.SESS, "retry_after", TypedValue.int32(denied ? i & 7 : 0))
    .setVar(Scope.SESS, "remaining", TypedValue.int32(i & 63))
    .setVar(Scope.SESS, "limit", TypedValue.int32(100));
  writer.writeAck(notify.streamId, notify.frameId, actions);
  actions.clear();
  sink += writer.flush().length;
  writer.release();
}

/** Each loop runs its pair `count` times; one loop per pair, so that each call site is monomorphic. */
export const loops = {
  "actions as objects": (count: number): number => {
    for (let i = 0; i < count; i++) pair(i);
    return sink;
  },
  "actions in an ActionList": (count: number): number => {
    for (let i = 0; i < count; i++) pairList(i);
    return sink;
  },
};
