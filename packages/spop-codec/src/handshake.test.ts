import { describe, expect, it } from "vitest";
import { expectSpopError } from "../test/expect-spop-error.ts";
import { captured } from "../test/fixtures.ts";
import { wireFrame, wireItem, wireString } from "../test/wire.ts";
import { DataType, DisconnectStatus, disconnectReason, disconnectReasons, FrameType } from "./constants.ts";
import { decodeFrame } from "./frame-decoder.ts";
import { encodeFrame } from "./frame-encoder.ts";
import {
  agentDisconnectFrame,
  agentHelloFrame,
  type HaproxyHello,
  haproxyDisconnectFrame,
  haproxyHelloFrame,
  negotiateHello,
  parseAgentHello,
  parseDisconnect,
  parseHaproxyHello,
  splitList,
} from "./handshake.ts";
import type { AgentHelloFrame, HaproxyDisconnectFrame, HaproxyHelloFrame } from "./types.ts";
import { encodeVarint } from "./varint.ts";

const str = (text: string) => `08${wireString(text)}`;

function haproxyHello(payload: string): HaproxyHelloFrame {
  return decodeFrame(wireFrame({ type: FrameType.HAPROXY_HELLO, payload })) as HaproxyHelloFrame;
}

const hello26 = haproxyHello(
  wireItem("supported-versions", str("2.0")) +
    wireItem("max-frame-size", "03fcf006") +
    wireItem("capabilities", str("")),
);

describe("HAPROXY-HELLO", () => {
  it("reads what HAProxy 2.6 sends on a traffic connection", () => {
    expect(
      parseHaproxyHello(
        decodeFrame(captured("2.6.12", "HAPROXY-HELLO", "traffic").bytes) as HaproxyHelloFrame,
      ),
    ).toEqual({
      supportedVersions: ["2.0"],
      maxFrameSize: 16380,
      capabilities: ["pipelining", "async"],
      healthcheck: false,
      engineId: "5408fba3-2958-4286-884a-39347c84d24a",
    });
  });

  it("reads a health-check HELLO from HAProxy 3.5", () => {
    const hello = parseHaproxyHello(
      decodeFrame(captured("3.5-dev5", "HAPROXY-HELLO", "health check").bytes) as HaproxyHelloFrame,
    );
    expect(hello).toEqual({
      supportedVersions: ["2.0"],
      maxFrameSize: 16380,
      capabilities: [],
      healthcheck: true,
      engineId: undefined,
    });
  });

  it("ignores unknown items and spaces in lists", () => {
    const hello = haproxyHello(
      wireItem("x-future", "0902abcd") +
        wireItem("supported-versions", str(" 2.0 , 1.5")) +
        wireItem("max-frame-size", "0464") +
        wireItem("capabilities", str("pipelining , async,")) +
        wireItem("healthcheck", "01"),
    );
    expect(parseHaproxyHello(hello)).toMatchObject({
      supportedVersions: ["2.0", "1.5"],
      maxFrameSize: 100,
      capabilities: ["pipelining", "async"],
      healthcheck: false,
    });
  });

  it.each([
    ["supported-versions", DisconnectStatus.VERSION_NOT_FOUND],
    ["max-frame-size", DisconnectStatus.MAX_FRAME_SIZE_NOT_FOUND],
    ["capabilities", DisconnectStatus.CAPABILITIES_NOT_FOUND],
  ])("refuses a HELLO without %s with status %i", (key, status) => {
    const items = hello26.items.filter((item) => item.name !== key);
    expectSpopError(() => parseHaproxyHello({ ...hello26, items }), {
      status,
      field: key,
      message: new RegExp(`no "${key}" item`),
    });
  });

  it("refuses items of the wrong type (status 4)", () => {
    expectSpopError(
      () =>
        parseHaproxyHello(
          haproxyHello(
            wireItem("supported-versions", "00") +
              wireItem("max-frame-size", "03fcf006") +
              wireItem("capabilities", str("")),
          ),
        ),
      { status: DisconnectStatus.INVALID_FRAME, field: "supported-versions", message: /not a STRING/ },
    );
    expectSpopError(
      () =>
        parseHaproxyHello(
          haproxyHello(
            wireItem("supported-versions", str("2.0")) +
              wireItem("max-frame-size", str("16380")) +
              wireItem("capabilities", str("")),
          ),
        ),
      { status: DisconnectStatus.INVALID_FRAME, field: "max-frame-size", message: /not an integer/ },
    );
  });

  it.each([
    ["UINT64 2^32", DataType.UINT64, 2 ** 32],
    ["INT64 2^40", DataType.INT64, 2 ** 40],
    ["UINT64 2^64-1", DataType.UINT64, (1n << 64n) - 1n],
  ])("refuses a max-frame-size above 2^32-1 (%s) with status 9", (_name, type, size) => {
    const value = type.toString(16).padStart(2, "0") + Buffer.from(encodeVarint(size)).toString("hex");
    const error = expectSpopError(
      () =>
        parseHaproxyHello(
          haproxyHello(
            wireItem("supported-versions", str("2.0")) +
              wireItem("max-frame-size", value) +
              wireItem("capabilities", str("")),
          ),
        ),
      { status: DisconnectStatus.BAD_FRAME_SIZE, field: "max-frame-size", message: /above 2\^32-1/ },
    );
    expect(error.code).toBe("SPOP_BAD_FRAME_SIZE");
  });

  it("builds the HELLO a client playing HAProxy sends, byte for byte as HAProxy 2.6 does", () => {
    const frame = haproxyHelloFrame({
      maxFrameSize: 16380,
      capabilities: ["pipelining", "async"],
      engineId: "5408fba3-2958-4286-884a-39347c84d24a",
    });
    expect(encodeFrame(frame).toString("hex")).toBe(captured("2.6.12", "HAPROXY-HELLO", "traffic").hex);
    const check = haproxyHelloFrame({ maxFrameSize: 16380, capabilities: [], healthcheck: true });
    expect(encodeFrame(check).toString("hex")).toBe(captured("2.6.12", "HAPROXY-HELLO", "health check").hex);
  });
});

describe("negotiateHello", () => {
  const offered: HaproxyHello = {
    supportedVersions: ["2.0"],
    maxFrameSize: 16380,
    capabilities: ["pipelining", "async"],
    healthcheck: false,
    engineId: undefined,
  };

  it("answers SPOP 2.0, the smaller frame size and the capabilities both sides have", () => {
    expect(negotiateHello(offered, { maxFrameSize: 65536, capabilities: ["pipelining"] })).toEqual({
      version: "2.0",
      maxFrameSize: 16380,
      capabilities: ["pipelining"],
    });
    expect(
      negotiateHello(offered, { maxFrameSize: 4096, capabilities: ["async", "pipelining", "x"] }),
    ).toEqual({
      version: "2.0",
      maxFrameSize: 4096,
      capabilities: ["async", "pipelining"],
    });
  });

  it("announces fragmentation when the agent accepts it, whatever HAProxy offers", () => {
    expect(
      negotiateHello(offered, { maxFrameSize: 16380, capabilities: ["fragmentation"] }).capabilities,
    ).toEqual(["fragmentation"]);
  });

  it("accepts HAProxy announcing a later 2.x minor version", () => {
    expect(
      negotiateHello(
        { ...offered, supportedVersions: ["2.3", "1.0"] },
        { maxFrameSize: 300, capabilities: [] },
      ).version,
    ).toBe("2.0");
  });

  it("refuses a HAProxy without a 2.x version (status 8)", () => {
    expectSpopError(
      () =>
        negotiateHello(
          { ...offered, supportedVersions: ["1.0", "3.0"] },
          { maxFrameSize: 16380, capabilities: [] },
        ),
      {
        status: DisconnectStatus.UNSUPPORTED_VERSION,
        message: /HAProxy supports 1.0, 3.0, the agent 2.0/,
      },
    );
  });

  it("refuses a frame size below 256 bytes (status 9)", () => {
    expectSpopError(
      () => negotiateHello({ ...offered, maxFrameSize: 255 }, { maxFrameSize: 16380, capabilities: [] }),
      {
        status: DisconnectStatus.BAD_FRAME_SIZE,
        message: /max-frame-size 255 is below the minimum of 256/,
      },
    );
  });
});

describe("AGENT-HELLO", () => {
  it("carries version, max-frame-size as UINT32 and capabilities, in that order", () => {
    const bytes = encodeFrame(
      agentHelloFrame({ maxFrameSize: 16380, capabilities: ["pipelining", "async"] }),
    );
    const wire = wireFrame({
      type: FrameType.AGENT_HELLO,
      payload:
        wireItem("version", str("2.0")) +
        wireItem("max-frame-size", "03fcf006") +
        wireItem("capabilities", str("pipelining,async")),
    });
    expect(bytes.toString("hex")).toBe(wire.toString("hex"));
  });

  it("carries capabilities also when there are none", () => {
    const frame = decodeFrame(
      encodeFrame(agentHelloFrame({ maxFrameSize: 256, capabilities: [] })),
    ) as AgentHelloFrame;
    expect(frame.items.find((item) => item.name === "capabilities")?.value).toEqual({
      type: DataType.STRING,
      value: "",
    });
    expect(parseAgentHello(frame)).toEqual({ version: "2.0", maxFrameSize: 256, capabilities: [] });
  });

  it.each([
    ["version", DisconnectStatus.VERSION_NOT_FOUND],
    ["max-frame-size", DisconnectStatus.MAX_FRAME_SIZE_NOT_FOUND],
    ["capabilities", DisconnectStatus.CAPABILITIES_NOT_FOUND],
  ])("is refused by a client playing HAProxy without %s (status %i)", (key, status) => {
    const frame = agentHelloFrame({ maxFrameSize: 1024, capabilities: ["pipelining"] });
    expectSpopError(
      () => parseAgentHello({ ...frame, items: frame.items.filter((item) => item.name !== key) }),
      {
        status,
        field: key,
      },
    );
  });
});

describe("DISCONNECT", () => {
  it("reads HAProxy 2.6's soft-stop DISCONNECT", () => {
    expect(
      parseDisconnect(decodeFrame(captured("2.6.12", "HAPROXY-DISCONNECT").bytes) as HaproxyDisconnectFrame),
    ).toEqual({
      status: 0,
      message: "normal",
    });
  });

  it("builds an AGENT-DISCONNECT with the protocol's reason for the status", () => {
    const wire = wireFrame({
      type: FrameType.AGENT_DISCONNECT,
      payload: wireItem("status-code", "030a") + wireItem("message", str("fragmentation not supported")),
    });
    expect(encodeFrame(agentDisconnectFrame(DisconnectStatus.FRAGMENTATION_NOT_SUPPORTED)).equals(wire)).toBe(
      true,
    );
  });

  it("builds a HAPROXY-DISCONNECT identical to what HAProxy 2.6 sends on soft-stop", () => {
    expect(encodeFrame(haproxyDisconnectFrame(DisconnectStatus.NORMAL)).toString("hex")).toBe(
      captured("2.6.12", "HAPROXY-DISCONNECT").hex,
    );
  });

  it("cuts a message to the 255 bytes HAProxy reads, on a character boundary", () => {
    const frame = agentDisconnectFrame(99, `${"a".repeat(254)}é and more`);
    expect(parseDisconnect(frame)).toEqual({ status: 99, message: "a".repeat(254) });
    expect(parseDisconnect(agentDisconnectFrame(4, "short")).message).toBe("short");
    expect(parseDisconnect(agentDisconnectFrame(4, "😀".repeat(64))).message).toBe("😀".repeat(63));
  });

  it("refuses a DISCONNECT without status-code and tolerates one without message", () => {
    const frame = agentDisconnectFrame(1);
    expectSpopError(() => parseDisconnect({ ...frame, items: frame.items.slice(1) }), {
      status: DisconnectStatus.INVALID_FRAME,
      field: "status-code",
    });
    expect(parseDisconnect({ ...frame, items: frame.items.slice(0, 1) })).toEqual({ status: 1, message: "" });
  });
});

describe("status codes", () => {
  it("name every code of the protocol with HAProxy's reason string", () => {
    expect(
      Object.entries(DisconnectStatus).map(([name, code]) => [name, code, disconnectReasons[code]]),
    ).toEqual([
      ["NORMAL", 0, "normal"],
      ["IO_ERROR", 1, "I/O error"],
      ["TIMEOUT", 2, "a timeout occurred"],
      ["FRAME_TOO_BIG", 3, "frame is too big"],
      ["INVALID_FRAME", 4, "invalid frame received"],
      ["VERSION_NOT_FOUND", 5, "version value not found"],
      ["MAX_FRAME_SIZE_NOT_FOUND", 6, "max-frame-size value not found"],
      ["CAPABILITIES_NOT_FOUND", 7, "capabilities value not found"],
      ["UNSUPPORTED_VERSION", 8, "unsupported version"],
      ["BAD_FRAME_SIZE", 9, "max-frame-size too big or too small"],
      ["FRAGMENTATION_NOT_SUPPORTED", 10, "fragmentation not supported"],
      ["INVALID_INTERLACED_FRAMES", 11, "invalid interlaced frames"],
      ["FRAME_ID_NOT_FOUND", 12, "frame-id not found"],
      ["RESOURCE_ALLOCATION_ERROR", 13, "resource allocation error"],
      ["UNKNOWN_ERROR", 99, "an unknown error occurred"],
    ]);
  });

  it("give codes an agent defines itself a generic reason", () => {
    expect(disconnectReason(250)).toBe("status 250");
  });
});

describe("splitList", () => {
  it("splits on commas and drops spaces and empty entries", () => {
    expect(splitList("pipelining,async")).toEqual(["pipelining", "async"]);
    expect(splitList(" a ,, b ,")).toEqual(["a", "b"]);
    expect(splitList("")).toEqual([]);
  });
});
