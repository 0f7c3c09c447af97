/**
 * Frames captured byte for byte from HAProxy 2.6.12 and 3.5-dev5 (see `src/testing/captured-frames.ts`),
 * and what each one says according to the capture notes — written out by hand, so that tests
 * compare the decoder against the capture, not against itself.
 */
import { type CapturedFrame as Capture, capturedFrames as captures } from "../src/testing/index.ts";

export interface CapturedFrame extends Capture {
  bytes: Buffer;
}

/** Every captured frame, in capture order. */
export const capturedFrames: CapturedFrame[] = captures.map((frame) => ({
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
const text = (value: string): ExpectedValue => ({ type: "STRING", value });
const loopback: ExpectedValue = { type: "IPV4", value: "127.0.0.1" };
const ipv6Loopback: ExpectedValue = { type: "IPV6", value: "::1" };
const xff: ExpectedValue = { type: "IPV4", value: "203.0.113.7" };
const none: ExpectedValue = { type: "NULL" };

function hello(capabilities: string, last: [string, ExpectedValue]): ExpectedFrame {
  return {
    type: "HAPROXY-HELLO",
    streamId: 0,
    frameId: 0,
    items: [
      ["supported-versions", text("2.0")],
      ["max-frame-size", { type: "UINT32", value: 16380 }],
      ["capabilities", text(capabilities)],
      last,
    ],
  };
}

/** The NOTIFY of the `check-rate` message: `args ip_fwd=… ip_xff=… ip_src=src`, frame-id 1. */
function checkRate(
  streamId: number,
  ipFwd: ExpectedValue,
  ipXff: ExpectedValue,
  ipSrc: ExpectedValue,
): ExpectedFrame {
  return {
    type: "NOTIFY",
    streamId,
    frameId: 1,
    items: [
      ["ip_fwd", ipFwd],
      ["ip_xff", ipXff],
      ["ip_src", ipSrc],
    ],
  };
}

const healthcheck = hello("", ["healthcheck", { type: "BOOL", value: true }]);

/** What each captured frame says, in capture order (parallel to {@link capturedFrames}). */
export const expectedFrames: ExpectedFrame[] = [
  // HAProxy 2.6.12: ip_fwd is the raw Forwarded header (no rfc7239 converters before 2.8).
  hello("pipelining,async", ["engine-id", text(hello26)]),
  healthcheck,
  checkRate(0, none, none, loopback),
  checkRate(2, none, xff, loopback),
  checkRate(4, text('for="[2001:db8::1]:4711";proto=https'), none, loopback),
  checkRate(5, text("for=198.51.100.17"), xff, loopback),
  checkRate(6, none, none, ipv6Loopback),
  {
    type: "HAPROXY-DISCONNECT",
    streamId: 0,
    frameId: 0,
    items: [
      ["status-code", { type: "UINT32", value: 0 }],
      ["message", text("normal")],
    ],
  },
  // HAProxy 3.5-dev5: ip_fwd is the address the rfc7239 converters extract.
  hello("pipelining", ["engine-id", text(hello35)]),
  healthcheck,
  checkRate(1, none, none, loopback),
  checkRate(3, none, xff, loopback),
  checkRate(5, { type: "IPV6", value: "2001:db8::1" }, none, loopback),
  checkRate(7, { type: "IPV4", value: "198.51.100.17" }, xff, loopback),
  checkRate(9, none, none, ipv6Loopback),
];
