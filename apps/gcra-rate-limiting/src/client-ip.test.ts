import { isIPv6 } from "node:net";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  addressFromForwarded,
  addressFromNode,
  addressFromXForwardedFor,
  clientKey,
  firstForwardedFor,
  parseAddress,
} from "./client-ip.ts";

describe("Forwarded (RFC 7239)", () => {
  it.each([
    ["for=192.0.2.60;proto=http;by=203.0.113.43", "192.0.2.60"],
    ['for="[2001:db8::1]:4711";proto=https', "2001:db8::1"],
    ['For="[2001:db8:cafe::17]"', "2001:db8:cafe::17"],
    ['for="192.0.2.43:47011"', "192.0.2.43"],
    ["for=192.0.2.43, for=198.51.100.17", "192.0.2.43"],
    ["proto=https;for=198.51.100.17;by=_proxy", "198.51.100.17"],
    ['by="[::1]";for=203.0.113.9', "203.0.113.9"],
    ['host="a;b,c";for=203.0.113.9', "203.0.113.9"],
    ["  for = 192.0.2.1 ", "192.0.2.1"],
  ])("%j → %s", (header, expected) => {
    expect(addressFromForwarded(header)).toBe(expected);
  });

  it.each([
    ["for=unknown", "the unknown identifier"],
    ["for=_gazonk", "an obfuscated identifier"],
    ['for="_gazonk", for=198.51.100.17', "an obfuscated first hop (the next hop is a proxy, not the client)"],
    ["proto=https", "no for= at all"],
    ['for="[2001:db8::1', "an unterminated quoted string"],
    ["for=2001:db8::1", "an unquoted IPv6 address (invalid per RFC 7239)"],
    ["for=300.1.2.3", "an invalid IPv4 address"],
    ["", "an empty header"],
  ])("%j yields no address: %s", (header) => {
    expect(addressFromForwarded(header)).toBeUndefined();
  });

  it("returns the first for= value unquoted, with escapes resolved", () => {
    expect(firstForwardedFor('for="\\"x\\""')).toBe('"x"');
    expect(firstForwardedFor("by=a;for=b")).toBe("b");
  });

  it("never throws on arbitrary header text", () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 200 }), (header) => {
        const address = addressFromForwarded(header);
        expect(address === undefined || parseAddress(address) !== undefined).toBe(true);
      }),
      { numRuns: 5000 },
    );
  });
});

describe("addressFromNode and X-Forwarded-For", () => {
  it("accepts ports and obfuscated ports but not junk after the address", () => {
    expect(addressFromNode("[::1]:_port")).toBe("::1");
    expect(addressFromNode("[::1]x")).toBeUndefined();
    expect(addressFromNode("192.0.2.1:99999999")).toBeUndefined();
  });

  it("takes the first X-Forwarded-For element", () => {
    expect(addressFromXForwardedFor("203.0.113.7, 10.0.0.1")).toBe("203.0.113.7");
    expect(addressFromXForwardedFor("2001:db8::5, 10.0.0.1")).toBe("2001:db8::5");
    expect(addressFromXForwardedFor("garbage, 10.0.0.1")).toBeUndefined();
  });
});

describe("clientKey", () => {
  const key = (text: string, prefix = 64) => clientKey(parseAddress(text) ?? new Uint8Array(0), prefix);

  it("keys IPv4 by the address and IPv4-mapped IPv6 as IPv4", () => {
    expect(key("203.0.113.7")).toBe("203.0.113.7");
    expect(key("::ffff:203.0.113.7")).toBe("203.0.113.7");
  });

  it("puts every address of one /64 under one key, and other /64s under others", () => {
    expect(key("2001:db8:1:2:aaaa::1")).toBe("2001:db8:1:2::/64");
    expect(key("2001:db8:1:2:ffff:ffff:ffff:ffff")).toBe("2001:db8:1:2::/64");
    expect(key("2001:db8:1:3::1")).toBe("2001:db8:1:3::/64");
    expect(key("::1")).toBe("::/64");
  });

  it("honours other prefix lengths, including ones that cut a byte", () => {
    expect(key("2001:db8:abcd:ef01::1", 48)).toBe("2001:db8:abcd::/48");
    expect(key("2001:db8:abcd:ef01::1", 52)).toBe("2001:db8:abcd:e000::/52");
    expect(key("2001:db8::1", 128)).toBe("2001:db8::1/128");
  });

  it("writes the canonical form: masking then formatting agrees with node's own parser for any address", () => {
    fc.assert(
      fc.property(fc.ipV6(), fc.integer({ min: 1, max: 128 }), (address, prefix) => {
        const bytes = parseAddress(address);
        expect(bytes).toBeDefined();
        const result = clientKey(bytes ?? new Uint8Array(16), prefix);
        const [network = ""] = result.split("/");
        if (result.includes("/")) {
          expect(isIPv6(network)).toBe(true);
          // Re-keying the network address is a fixed point.
          expect(clientKey(parseAddress(network) ?? new Uint8Array(16), prefix)).toBe(result);
        }
      }),
      { numRuns: 5000 },
    );
  });

  it("formats full-length keys exactly as the WHATWG URL serializer canonicalises IPv6 hosts", () => {
    fc.assert(
      fc.property(fc.ipV6(), (address) => {
        const result = clientKey(parseAddress(address) ?? new Uint8Array(16), 128);
        if (!result.endsWith("/128")) return; // IPv4-mapped: keyed as IPv4
        expect(result).toBe(`${new URL(`http://[${address}]/`).hostname.slice(1, -1)}/128`);
      }),
      { numRuns: 5000 },
    );
  });

  it("rejects byte arrays that are not addresses", () => {
    expect(() => clientKey(new Uint8Array(5), 64)).toThrow(RangeError);
  });
});
