import { describe, expect, it } from "vitest";
import {
  DataType,
  dataTypeNames,
  decodeFrame,
  encodeFrame,
  type Frame,
  FrameFlags,
  FrameReader,
  FrameType,
  formatIp,
  frameTypeNames,
  type KVList,
  type TypedValue,
} from "../src/index.ts";
import {
  type CapturedFrame,
  capturedFrames,
  type ExpectedFrame,
  type ExpectedValue,
  expectedFrames,
} from "./fixtures.ts";

function describeValue(value: TypedValue): ExpectedValue {
  const type = dataTypeNames[value.type];
  switch (value.type) {
    case DataType.NULL:
      return { type: "NULL" };
    case DataType.IPV4:
    case DataType.IPV6:
      return { type, value: formatIp(value.value) } as ExpectedValue;
    default:
      return { type, value: value.value } as ExpectedValue;
  }
}

function describeItems(items: KVList): [string, ExpectedValue][] {
  return items.map((item) => [item.name, describeValue(item.value)]);
}

/** The decoded frame in the shape of {@link ExpectedFrame}, checking what that shape leaves out. */
function describeFrame(frame: Frame): ExpectedFrame {
  expect(frame.flags).toBe(FrameFlags.FIN);
  const base = { type: frameTypeNames[frame.type], streamId: frame.streamId, frameId: frame.frameId };
  if (frame.type === FrameType.NOTIFY) {
    expect(frame.messages).toHaveLength(1);
    const [message] = frame.messages;
    expect(message?.name).toBe("check-rate");
    return { ...base, items: describeItems(message?.args ?? []) } as ExpectedFrame;
  }
  if (frame.type === FrameType.HAPROXY_HELLO || frame.type === FrameType.HAPROXY_DISCONNECT) {
    return { ...base, items: describeItems(frame.items) } as ExpectedFrame;
  }
  throw new Error(`unexpected ${frameTypeNames[frame.type]} frame`);
}

const cases = capturedFrames.map((frame, index) => [
  `${frame.haproxy} ${frame.kind}: ${frame.note}`,
  frame,
  expectedFrames[index] as ExpectedFrame,
]) as [string, CapturedFrame, ExpectedFrame][];

describe("frames captured from real HAProxy", () => {
  it("has an expectation for every captured frame", () => {
    expect(expectedFrames).toHaveLength(capturedFrames.length);
    expect(capturedFrames.map((f) => f.kind)).toEqual(expectedFrames.map((f) => f.type));
  });

  it.each(cases)("%s decodes to what HAProxy sent", (_name, captured, expected) => {
    expect(describeFrame(decodeFrame(captured.bytes))).toEqual(expected);
  });

  it.each(cases)("%s re-encodes to the captured bytes", (_name, captured) => {
    expect(encodeFrame(decodeFrame(captured.bytes)).toString("hex")).toBe(captured.hex);
  });

  it.each(cases)("%s streams as one chunk", (_name, captured, expected) => {
    const reader = new FrameReader();
    reader.push(captured.bytes);
    const frame = reader.next();
    expect(frame && describeFrame(frame)).toEqual(expected);
    expect(reader.next()).toBeUndefined();
    expect(() => reader.end()).not.toThrow();
  });

  it.each(cases)("%s streams byte by byte", (_name, captured, expected) => {
    const reader = new FrameReader();
    const last = captured.bytes.length - 1;
    for (let i = 0; i < last; i++) {
      reader.push(captured.bytes.subarray(i, i + 1));
      expect(reader.next()).toBeUndefined();
    }
    reader.push(captured.bytes.subarray(last));
    const frame = reader.next();
    expect(frame && describeFrame(frame)).toEqual(expected);
    expect(reader.bufferedBytes).toBe(0);
  });

  it("streams every captured frame from one chunk, in order", () => {
    const reader = new FrameReader();
    reader.push(Buffer.concat(capturedFrames.map((f) => f.bytes)));
    expect([...reader].map(describeFrame)).toEqual(expectedFrames);
    expect(reader.bufferedBytes).toBe(0);
  });

  it("streams every captured frame byte by byte, in order", () => {
    const reader = new FrameReader();
    const frames: Frame[] = [];
    for (const byte of Buffer.concat(capturedFrames.map((f) => f.bytes))) {
      reader.push(Uint8Array.of(byte));
      frames.push(...reader);
    }
    expect(frames.map(describeFrame)).toEqual(expectedFrames);
  });
});
