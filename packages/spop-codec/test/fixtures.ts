/**
 * Frames captured byte for byte from HAProxy 2.6.12 and 3.5-dev5 (see haproxy-frames.json),
 * and what each one says according to the capture notes — written out by hand, so that tests
 * compare the decoder against the capture, not against itself.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";

export interface CapturedFrame {
  haproxy: string;
  kind: string;
  note: string;
  hex: string;
  bytes: Buffer;
}

interface FixtureFile {
  frames: { haproxy: string; kind: string; note: string; hex: string }[];
}

const file = JSON.parse(
  readFileSync(join(import.meta.dirname, "fixtures", "haproxy-frames.json"), "utf8"),
) as FixtureFile;

/** Every captured frame, in capture order. */
export const capturedFrames: CapturedFrame[] = file.frames.map((frame) => ({
  ...frame,
  bytes: Buffer.from(frame.hex, "hex"),
}));

/** The first captured frame of `haproxy` version and `kind` whose note contains `note`. */
export function captured(haproxy: string, kind: string, note = ""): CapturedFrame {
  const frame = capturedFrames.find((f) => f.haproxy === haproxy && f.kind === kind && f.note.includes(note));
  if (frame === undefined) throw new Error(`no captured ${kind} from HAProxy ${haproxy} about "${note}"`);
  return frame;
}

/** A typed value as the tests expect it: data type name and value (IPs as text). */
export type ExpectedValue =
  | { type: "NULL" }
  | { type: "BOOL"; value: boolean }
  | { type: "UINT32" | "INT64"; value: number }
  | { type: "IPV4" | "IPV6"; value: string }
  | { type: "STRING"; value: string };

export interface ExpectedFrame {
  type: "HAPROXY-HELLO" | "HAPROXY-DISCONNECT" | "NOTIFY";
  streamId: number;
  frameId: number;
  /** KV items (HELLO, DISCONNECT) or the arguments of the single `check-rate` message (NOTIFY). */
  items: [string, ExpectedValue][];
}

const hello26 = "5408fba3-2958-4286-884a-39347c84d24a";
const hello35 = "b085b38a-0ba2-4c03-aaee-c1c1f783cf3b";
const loopback: ExpectedValue = { type: "IPV4", value: "127.0.0.1" };
const ipv6Loopback: ExpectedValue = { type: "IPV6", value: "::1" };
const xff: ExpectedValue = { type: "IPV4", value: "203.0.113.7" };
const none: ExpectedValue = { type: "NULL" };

function helloItems(capabilities: string, last: [string, ExpectedValue]): [string, ExpectedValue][] {
  return [
    ["supported-versions", { type: "STRING", value: "2.0" }],
    ["max-frame-size", { type: "UINT32", value: 16380 }],
    ["capabilities", { type: "STRING", value: capabilities }],
    last,
  ];
}

/** What each captured frame says, in capture order (parallel to {@link capturedFrames}). */
export const expectedFrames: ExpectedFrame[] = [
  {
    type: "HAPROXY-HELLO",
    streamId: 0,
    frameId: 0,
    items: helloItems("pipelining,async", ["engine-id", { type: "STRING", value: hello26 }]),
  },
  {
    type: "HAPROXY-HELLO",
    streamId: 0,
    frameId: 0,
    items: helloItems("", ["healthcheck", { type: "BOOL", value: true }]),
  },
  {
    type: "NOTIFY",
    streamId: 0,
    frameId: 1,
    items: [
      ["ip_fwd", none],
      ["ip_xff", none],
      ["ip_src", loopback],
    ],
  },
  {
    type: "NOTIFY",
    streamId: 2,
    frameId: 1,
    items: [
      ["ip_fwd", none],
      ["ip_xff", xff],
      ["ip_src", loopback],
    ],
  },
  {
    type: "NOTIFY",
    streamId: 4,
    frameId: 1,
    items: [
      ["ip_fwd", { type: "STRING", value: 'for="[2001:db8::1]:4711";proto=https' }],
      ["ip_xff", none],
      ["ip_src", loopback],
    ],
  },
  {
    type: "NOTIFY",
    streamId: 5,
    frameId: 1,
    items: [
      ["ip_fwd", { type: "STRING", value: "for=198.51.100.17" }],
      ["ip_xff", xff],
      ["ip_src", loopback],
    ],
  },
  {
    type: "NOTIFY",
    streamId: 6,
    frameId: 1,
    items: [
      ["ip_fwd", none],
      ["ip_xff", none],
      ["ip_src", ipv6Loopback],
    ],
  },
  {
    type: "HAPROXY-DISCONNECT",
    streamId: 0,
    frameId: 0,
    items: [
      ["status-code", { type: "UINT32", value: 0 }],
      ["message", { type: "STRING", value: "normal" }],
    ],
  },
  {
    type: "HAPROXY-HELLO",
    streamId: 0,
    frameId: 0,
    items: helloItems("pipelining", ["engine-id", { type: "STRING", value: hello35 }]),
  },
  {
    type: "HAPROXY-HELLO",
    streamId: 0,
    frameId: 0,
    items: helloItems("", ["healthcheck", { type: "BOOL", value: true }]),
  },
  {
    type: "NOTIFY",
    streamId: 1,
    frameId: 1,
    items: [
      ["ip_fwd", none],
      ["ip_xff", none],
      ["ip_src", loopback],
    ],
  },
  {
    type: "NOTIFY",
    streamId: 3,
    frameId: 1,
    items: [
      ["ip_fwd", none],
      ["ip_xff", xff],
      ["ip_src", loopback],
    ],
  },
  {
    type: "NOTIFY",
    streamId: 5,
    frameId: 1,
    items: [
      ["ip_fwd", { type: "IPV6", value: "2001:db8::1" }],
      ["ip_xff", none],
      ["ip_src", loopback],
    ],
  },
  {
    type: "NOTIFY",
    streamId: 7,
    frameId: 1,
    items: [
      ["ip_fwd", { type: "IPV4", value: "198.51.100.17" }],
      ["ip_xff", xff],
      ["ip_src", loopback],
    ],
  },
  {
    type: "NOTIFY",
    streamId: 9,
    frameId: 1,
    items: [
      ["ip_fwd", none],
      ["ip_xff", none],
      ["ip_src", ipv6Loopback],
    ],
  },
];
