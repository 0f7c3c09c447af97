/**
 * What decoding keeps and shares: a reader lets go of each chunk once its frames are taken, and
 * arguments whose value is NULL or BOOL are shared items. These keep a long-running agent's
 * young generation small; the benchmarks measure the effect, these tests pin the behaviour.
 */
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { describe, expect, it } from "vitest";
import { wireFrame, wireItem, wireMessage } from "../test/wire.ts";
import { DataType, FrameType } from "./constants.ts";
import { decodeFrame } from "./frame-decoder.ts";
import { FrameReader } from "./stream-reader.ts";
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

describe("what decoded frames share", () => {
  it("arguments and KV items with a NULL or BOOL value are shared frozen items", () => {
    const bytes = notify(1, [
      wireMessage("m", [
        wireItem("a", "00"),
        wireItem("b", "11"),
        wireItem("c", "01"),
        wireItem("d", "0201"),
      ]),
    ]);
    const first = argsOf(decodeFrame(bytes));
    const second = argsOf(decodeFrame(bytes));
    expect(first).toEqual([
      { name: "a", value: TypedValue.null },
      { name: "b", value: TypedValue.bool(true) },
      { name: "c", value: TypedValue.bool(false) },
      { name: "d", value: TypedValue.int32(1) },
    ]);
    for (let i = 0; i < 3; i++) {
      expect(second[i]).toBe(first[i]);
      expect(Object.isFrozen(first[i])).toBe(true);
    }
    expect(second[3]).not.toBe(first[3]);
    const hello = wireFrame({ type: FrameType.HAPROXY_HELLO, payload: wireItem("healthcheck", "11") });
    const items = (frame: unknown) => (frame as { items: readonly KVItem[] }).items;
    expect(items(decodeFrame(hello))[0]).toBe(items(decodeFrame(hello))[0]);
  });

  it("gives every shared item its own name, with many more names than the cache holds", () => {
    // 1 000 names, among them runs of the same length and the same first and last byte.
    const names = Array.from({ length: 1000 }, (_, i) => (i % 2 === 0 ? `a${i}z` : `arg_${i.toString(36)}`));
    const reader = new FrameReader();
    for (let round = 0; round < 3; round++) {
      for (let i = 0; i < names.length; i += 10) {
        const batch = names.slice(i, i + 10);
        reader.push(
          notify(i, [
            wireMessage(
              `msg${i}`,
              batch.map((name, j) => wireItem(name, j % 3 === 0 ? "00" : j % 3 === 1 ? "11" : "01")),
            ),
          ]),
        );
        const frame = reader.next() as NotifyFrame;
        expect(frame.messages[0]?.name).toBe(`msg${i}`);
        expect(argsOf(frame)).toEqual(
          batch.map((name, j) => ({
            name,
            value: j % 3 === 0 ? TypedValue.null : TypedValue.bool(j % 3 === 1),
          })),
        );
      }
    }
  });

  it("copies IP addresses: each decoded address owns its bytes", () => {
    const reader = new FrameReader();
    const hex = (i: number) => [
      `c0a8${i.toString(16).padStart(4, "0")}`,
      `20010db8${"00".repeat(10)}${i.toString(16).padStart(4, "0")}`,
    ];
    const chunk = Buffer.concat(
      Array.from({ length: 300 }, (_, i) =>
        notify(i, [wireMessage("m", [wireItem("v4", `06${hex(i)[0]}`), wireItem("v6", `07${hex(i)[1]}`)])]),
      ),
    );
    reader.push(chunk);
    const addresses = [...reader].map((frame) => argsOf(frame).map((arg) => arg.value));
    chunk.fill(0);
    expect(addresses.map((values) => values.map(addressHex))).toEqual(
      Array.from({ length: 300 }, (_, i) => hex(i)),
    );
    const [first, second] = addresses;
    if (first?.[0]?.type !== DataType.IPV4) throw new Error("not an address");
    first[0].value.fill(0xff); // writing to one changes no other
    expect(addressHex(second?.[0])).toBe(hex(1)[0]);
  });
});
