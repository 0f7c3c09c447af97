/**
 * What decoding keeps: a reader lets go of each chunk once its frames are taken. This keeps a
 * long-running agent's young generation small; the benchmarks measure the effect, these tests
 * pin the behaviour.
 */
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { describe, expect, it } from "vitest";
import { wireFrame, wireItem, wireMessage } from "../test/wire.ts";
import { DataType, FrameType } from "./constants.ts";
import { decodeFrame } from "./decoder.ts";
import { FrameReader } from "./reader.ts";
import { type KVItem, type NotifyFrame, TypedValue } from "./types.ts";

setFlagsFromString("--expose-gc");
const gc = runInNewContext("gc") as () => void;

/** Whether the object `make()` returns, once `use` has had it, is collected by a full GC. */
async function collectedAfter<T extends object>(make: () => T, use: (value: T) => void): Promise<boolean> {
  const ref = ((): WeakRef<T> => {
    const value = make();
    use(value);
    return new WeakRef(value);
  })();
  // A WeakRef keeps its target alive until the current job ends.
  await new Promise((resolve) => setImmediate(resolve));
  gc();
  return ref.deref() === undefined;
}

function notify(streamId: number, messages: string[]): Buffer {
  return wireFrame({ type: FrameType.NOTIFY, streamId, frameId: 1, payload: messages.join("") });
}

/** The bytes of an IPV4/IPV6 value, as hex. */
function addressHex(value: TypedValue | undefined): string {
  if (value?.type !== DataType.IPV4 && value?.type !== DataType.IPV6) throw new Error("not an address");
  return Buffer.from(value.value).toString("hex");
}

function argsOf(frame: unknown): readonly KVItem[] {
  const notifyFrame = frame as NotifyFrame;
  if (notifyFrame.type !== FrameType.NOTIFY) throw new Error("not a NOTIFY");
  return notifyFrame.messages.flatMap((message) => message.args);
}

const checkRate = (ip: string) =>
  notify(1, [
    wireMessage("check-rate", [
      wireItem("ip_fwd", "00"),
      wireItem("ip_xff", "00"),
      wireItem("ip_src", `06${Buffer.from(TypedValue.ipv4(ip).value).toString("hex")}`),
    ]),
  ]);

describe("what decoding keeps", () => {
  it("a reader keeps no reference to a chunk whose frames were all taken", async () => {
    const reader = new FrameReader();
    const frames: unknown[] = [];
    const collected = await collectedAfter(
      () => Buffer.concat([checkRate("192.0.2.1"), checkRate("192.0.2.2")]),
      (chunk) => {
        reader.push(chunk);
        for (let frame = reader.next(); frame !== undefined; frame = reader.next()) frames.push(frame);
      },
    );
    expect(collected).toBe(true);
    // The frames it gave out do not need the chunk either: strings and addresses are copies.
    expect(frames.map((frame) => addressHex(argsOf(frame)[2]?.value))).toEqual(["c0000201", "c0000202"]);
  });

  it("a reader keeps the chunk that holds the start of a frame still incomplete", async () => {
    const reader = new FrameReader();
    const frame = checkRate("192.0.2.1");
    const collected = await collectedAfter(
      () => frame.subarray(0, 10),
      (chunk) => {
        reader.push(chunk);
        expect(reader.next()).toBeUndefined();
      },
    );
    expect(collected).toBe(false);
    reader.push(frame.subarray(10));
    expect(reader.next()?.type).toBe(FrameType.NOTIFY);
  });

  it("decodeFrame keeps no reference to the bytes it decoded, nor to bytes it refused", async () => {
    expect(
      await collectedAfter(
        () => checkRate("192.0.2.1"),
        (bytes) => decodeFrame(bytes),
      ),
    ).toBe(true);
    const refused = await collectedAfter(
      () => Buffer.from("0000000203ff", "hex"),
      (bytes) => expect(() => decodeFrame(bytes)).toThrow(),
    );
    expect(refused).toBe(true);
  });
});
