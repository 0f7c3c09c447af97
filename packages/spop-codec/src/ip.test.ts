import { describe, expect, it } from "vitest";
import { expectSpopError } from "../test/expect-spop-error.ts";
import { DisconnectStatus } from "./constants.ts";
import { formatIp, parseIp } from "./ip.ts";

const hex = (text: string) => Uint8Array.from(Buffer.from(text, "hex"));

describe("formatIp", () => {
  it.each([
    ["7f000001", "127.0.0.1"],
    ["00000000", "0.0.0.0"],
    ["ffffffff", "255.255.255.255"],
  ])("writes IPv4 %s as %s", (bytes, text) => {
    expect(formatIp(hex(bytes))).toBe(text);
  });

  it.each([
    ["00000000000000000000000000000001", "::1"],
    ["00000000000000000000000000000000", "::"],
    ["20010db8000000000000000000000001", "2001:db8::1"],
    ["20010db8000000010000000000000001", "2001:db8:0:1::1"],
    ["20010db8000000000001000000000001", "2001:db8::1:0:0:1"],
    ["20010db8000100000001000100010001", "2001:db8:1:0:1:1:1:1"],
    ["20010db80000000000000000000a0000", "2001:db8::a:0"],
    ["fe800000000000000000000000000000", "fe80::"],
    ["00010002000300040005000600070008", "1:2:3:4:5:6:7:8"],
    ["00000000000000000000ffffc0000201", "::ffff:192.0.2.1"],
    ["20010DB8ABCD00000000000000000000", "2001:db8:abcd::"],
  ])("writes IPv6 %s as %s (RFC 5952)", (bytes, text) => {
    expect(formatIp(hex(bytes))).toBe(text);
    expect(Buffer.from(parseIp(text, 6)).toString("hex")).toBe(bytes.toLowerCase());
  });

  it("refuses byte counts that are no address", () => {
    expectSpopError(() => formatIp(new Uint8Array(5)), {
      status: DisconnectStatus.INVALID_FRAME,
      message: /4 or 16 bytes, not 5/,
    });
  });
});

describe("parseIp", () => {
  it("reads dotted quads and refuses leading zeros and out-of-range octets", () => {
    expect(Array.from(parseIp("192.0.2.255", 4))).toEqual([192, 0, 2, 255]);
    for (const text of ["01.2.3.4", "1.2.3.256", "1.2.3", "1.2.3.4.5", "a.b.c.d", ""]) {
      expectSpopError(() => parseIp(text, 4), {
        status: DisconnectStatus.INVALID_FRAME,
        field: "IPV4 value",
      });
    }
  });

  it("reads the long, compressed and dotted IPv6 forms", () => {
    expect(formatIp(parseIp("2001:0db8:0000:0000:0000:0000:0000:0001", 6))).toBe("2001:db8::1");
    expect(formatIp(parseIp("::ffff:10.0.0.1", 6))).toBe("::ffff:10.0.0.1");
    expect(formatIp(parseIp("1::", 6))).toBe("1::");
    expect(formatIp(parseIp("::2:3:4:5:6:7:8", 6))).toBe("0:2:3:4:5:6:7:8");
    for (const text of ["1:2:3:4:5:6:7:8:9", "1::2::3", "12345::", "::g", "192.0.2.1"]) {
      expectSpopError(() => parseIp(text, 6), {
        status: DisconnectStatus.INVALID_FRAME,
        field: "IPV6 value",
      });
    }
  });
});
