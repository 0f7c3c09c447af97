/**
 * Frames captured byte for byte from real HAProxy processes, for the tests of anything that
 * speaks SPOP (hex, including the 4-byte length prefix).
 *
 * Frames sent by real HAProxy processes to an SPOA on loopback, captured byte for byte (hex,
 * including the 4-byte length prefix). The SPOE config is the rate limiter's rate-limit.conf:
 * message check-rate with args ip_fwd, ip_xff, ip_src; option pipelining; var-prefix rl. HAProxy
 * 2.6 has no rfc7239_field converter (added in 2.8), so on 2.6 ip_fwd is the raw Forwarded header
 * string (req.hdr(Forwarded)); on 3.x it is the converted address. Soft-stop (SIGUSR1) on 2.6
 * sends HAPROXY-DISCONNECT; 3.x just closes.
 */

/** One captured frame. */
export interface CapturedFrame {
  /** The HAProxy version that sent it. */
  readonly haproxy: string;
  /** The frame type, as the protocol names it (`HAPROXY-HELLO`, `NOTIFY`, …). */
  readonly kind: string;
  /** What was going on when it was sent. */
  readonly note: string;
  /** The frame, length prefix included, as hex. */
  readonly hex: string;
}

/** Every captured frame, in capture order. */
export const capturedFrames: readonly CapturedFrame[] = [
  {
    haproxy: "2.6.12",
    kind: "HAPROXY-HELLO",
    note: "connection opened for traffic",
    hex: "000000810100000001000012737570706f727465642d76657273696f6e730803322e300e6d61782d6672616d652d73697a6503fcf0060c6361706162696c69746965730810706970656c696e696e672c6173796e6309656e67696e652d6964082435343038666261332d323935382d343238362d383834612d333933343763383464323461",
  },
  {
    haproxy: "2.6.12",
    kind: "HAPROXY-HELLO",
    note: "option spop-check health check (agent answers AGENT-HELLO then closes)",
    hex: "0000004e0100000001000012737570706f727465642d76657273696f6e730803322e300e6d61782d6672616d652d73697a6503fcf0060c6361706162696c697469657308000b6865616c7468636865636b11",
  },
  {
    haproxy: "2.6.12",
    kind: "NOTIFY",
    note: "no forwarding headers, IPv4 client 127.0.0.1",
    hex: "0000002f030000000100010a636865636b2d72617465030669705f667764000669705f786666000669705f737263067f000001",
  },
  {
    haproxy: "2.6.12",
    kind: "NOTIFY",
    note: "X-Forwarded-For: 203.0.113.7, 10.0.0.1",
    hex: "00000033030000000102010a636865636b2d72617465030669705f667764000669705f78666606cb0071070669705f737263067f000001",
  },
  {
    haproxy: "2.6.12",
    kind: "NOTIFY",
    note: 'Forwarded: for="[2001:db8::1]:4711";proto=https',
    hex: "00000054030000000104010a636865636b2d72617465030669705f6677640824666f723d225b323030313a6462383a3a315d3a34373131223b70726f746f3d68747470730669705f786666000669705f737263067f000001",
  },
  {
    haproxy: "2.6.12",
    kind: "NOTIFY",
    note: "Forwarded: for=198.51.100.17 and X-Forwarded-For: 203.0.113.7",
    hex: "00000045030000000105010a636865636b2d72617465030669705f6677640811666f723d3139382e35312e3130302e31370669705f78666606cb0071070669705f737263067f000001",
  },
  {
    haproxy: "2.6.12",
    kind: "NOTIFY",
    note: "no forwarding headers, IPv6 client ::1",
    hex: "0000003b030000000106010a636865636b2d72617465030669705f667764000669705f786666000669705f7372630700000000000000000000000000000001",
  },
  {
    haproxy: "2.6.12",
    kind: "HAPROXY-DISCONNECT",
    note: "HAProxy soft-stop (SIGUSR1)",
    hex: "00000025020000000100000b7374617475732d636f64650300076d65737361676508066e6f726d616c",
  },
  {
    haproxy: "3.5-dev5",
    kind: "HAPROXY-HELLO",
    note: "connection opened for traffic",
    hex: "0000007b0100000001000012737570706f727465642d76657273696f6e730803322e300e6d61782d6672616d652d73697a6503fcf0060c6361706162696c6974696573080a706970656c696e696e6709656e67696e652d6964082462303835623338612d306261322d346330332d616165652d633163316637383363663362",
  },
  {
    haproxy: "3.5-dev5",
    kind: "HAPROXY-HELLO",
    note: "option spop-check health check (agent answers AGENT-HELLO then closes)",
    hex: "0000004e0100000001000012737570706f727465642d76657273696f6e730803322e300e6d61782d6672616d652d73697a6503fcf0060c6361706162696c697469657308000b6865616c7468636865636b11",
  },
  {
    haproxy: "3.5-dev5",
    kind: "NOTIFY",
    note: "no forwarding headers, IPv4 client 127.0.0.1",
    hex: "0000002f030000000101010a636865636b2d72617465030669705f667764000669705f786666000669705f737263067f000001",
  },
  {
    haproxy: "3.5-dev5",
    kind: "NOTIFY",
    note: "X-Forwarded-For: 203.0.113.7, 10.0.0.1",
    hex: "00000033030000000103010a636865636b2d72617465030669705f667764000669705f78666606cb0071070669705f737263067f000001",
  },
  {
    haproxy: "3.5-dev5",
    kind: "NOTIFY",
    note: 'Forwarded: for="[2001:db8::1]:4711";proto=https',
    hex: "0000003f030000000105010a636865636b2d72617465030669705f6677640720010db80000000000000000000000010669705f786666000669705f737263067f000001",
  },
  {
    haproxy: "3.5-dev5",
    kind: "NOTIFY",
    note: "Forwarded: for=198.51.100.17 and X-Forwarded-For: 203.0.113.7",
    hex: "00000037030000000107010a636865636b2d72617465030669705f66776406c63364110669705f78666606cb0071070669705f737263067f000001",
  },
  {
    haproxy: "3.5-dev5",
    kind: "NOTIFY",
    note: "no forwarding headers, IPv6 client ::1",
    hex: "0000003b030000000109010a636865636b2d72617465030669705f667764000669705f786666000669705f7372630700000000000000000000000000000001",
  },
];

/**
 * The bytes of the first captured frame from HAProxy `haproxy` of `kind` whose note contains
 * `note`; throws when there is none.
 */
export function capturedFrame(haproxy: string, kind: string, note = ""): Buffer {
  const frame = capturedFrames.find((f) => f.haproxy === haproxy && f.kind === kind && f.note.includes(note));
  if (frame === undefined) throw new Error(`no captured ${kind} from HAProxy ${haproxy} about "${note}"`);
  return Buffer.from(frame.hex, "hex");
}
