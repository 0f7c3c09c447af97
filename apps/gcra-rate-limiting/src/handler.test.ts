import { TypedValue } from "@spoekit/spop-codec";
import { describe, expect, it } from "vitest";
import { clientKey } from "./client-ip.ts";
import { clientAddress } from "./handler.ts";

/** A message as the handler sees it, from its arguments by name (absent ones are NULL, as HAProxy sends them). */
function message(args: { ip_fwd?: TypedValue; ip_xff?: TypedValue; ip_src?: TypedValue }) {
  return { arg: (name: string) => args[name as keyof typeof args] ?? TypedValue.null };
}

const keyOf = (args: Parameters<typeof message>[0], prefix = 64) => {
  const address = clientAddress(message(args));
  return address === undefined ? undefined : clientKey(address, prefix);
};

describe("clientAddress: the first of ip_fwd, ip_xff, ip_src that yields an address", () => {
  const src = TypedValue.ipv4("10.1.1.1");

  it("takes typed addresses as HAProxy ≥ 2.8 sends them (rfc7239_n2nn, req.hdr_ip, src)", () => {
    expect(
      keyOf({ ip_fwd: TypedValue.ipv4("192.0.2.1"), ip_xff: TypedValue.ipv4("192.0.2.2"), ip_src: src }),
    ).toBe("192.0.2.1");
    expect(keyOf({ ip_xff: TypedValue.ipv4("192.0.2.2"), ip_src: src })).toBe("192.0.2.2");
    expect(keyOf({ ip_src: src })).toBe("10.1.1.1");
    expect(keyOf({ ip_fwd: TypedValue.ipv6("2001:db8:a:b:1:2:3:4"), ip_src: src })).toBe("2001:db8:a:b::/64");
  });

  it("parses the raw Forwarded header HAProxy 2.6 sends: the first for=, quoted IPv6 with a port", () => {
    const fwd = (text: string) => keyOf({ ip_fwd: TypedValue.string(text), ip_src: src });
    expect(fwd("for=192.0.2.43, for=198.51.100.17")).toBe("192.0.2.43");
    expect(fwd('proto=https;For="[2001:db8:cafe::17]:4711";by=203.0.113.60')).toBe("2001:db8:cafe::/64");
    expect(fwd("for=192.0.2.43:8080;host=example.com")).toBe("192.0.2.43");
  });

  it("skips what is no address to the next source: unknown, obfuscated, empty, garbage, NULL", () => {
    const xff = TypedValue.ipv4("192.0.2.2");
    for (const text of ["for=unknown", "for=_hidden", 'for="_gazonk"', "", "proto=https", "for=300.1.1.1"]) {
      expect(keyOf({ ip_fwd: TypedValue.string(text), ip_xff: xff, ip_src: src }), text).toBe("192.0.2.2");
    }
    expect(keyOf({ ip_fwd: TypedValue.int64(5), ip_xff: TypedValue.string("junk"), ip_src: src })).toBe(
      "10.1.1.1",
    );
  });

  it("reads X-Forwarded-For and the source from strings too", () => {
    expect(keyOf({ ip_xff: TypedValue.string(" 192.0.2.9 , 10.0.0.1"), ip_src: src })).toBe("192.0.2.9");
    expect(keyOf({ ip_src: TypedValue.string("2001:db8::5") }, 48)).toBe("2001:db8::/48");
  });

  it("keys IPv4-mapped IPv6 sources as their IPv4 address", () => {
    expect(keyOf({ ip_src: TypedValue.ipv6("::ffff:192.0.2.77") })).toBe("192.0.2.77");
  });

  it("yields nothing without any usable source", () => {
    expect(keyOf({})).toBeUndefined();
    expect(
      keyOf({ ip_fwd: TypedValue.string("for=unknown"), ip_src: TypedValue.string("") }),
    ).toBeUndefined();
  });
});
