import { isIPv4, isIPv6 } from "node:net";
import { formatIp, parseIp } from "@spoekit/spop-codec";

/**
 * Client address resolution for the `check-rate` message: the SPOE args `ip_fwd` (RFC 7239
 * `Forwarded`), `ip_xff` (X-Forwarded-For) and `ip_src` (TCP source), in that order of priority.
 */

/** An IP address as 4 (IPv4) or 16 (IPv6) bytes in network order. */
export type AddressBytes = Uint8Array;

/**
 * Reads a quoted-string (RFC 7230 §3.2.6) starting at the opening quote; returns its unescaped
 * content and the index after the closing quote, or undefined when it is not terminated.
 */
function readQuoted(text: string, start: number): { value: string; end: number } | undefined {
  let value = "";
  for (let i = start + 1; i < text.length; i++) {
    const char = text[i];
    if (char === "\\") {
      i++;
      value += text[i] ?? "";
    } else if (char === '"') {
      return { value, end: i + 1 };
    } else {
      value += char;
    }
  }
  return undefined;
}

/**
 * The value of the first `for=` parameter of a `Forwarded` header (RFC 7239 §4), unquoted;
 * undefined when there is none or the header is malformed before it. Elements are separated by
 * `,` and pairs by `;`; parameter names are case-insensitive; quoted values may contain both.
 */
export function firstForwardedFor(header: string): string | undefined {
  let i = 0;
  const length = header.length;
  while (i < length) {
    while (i < length && (header[i] === " " || header[i] === "\t" || header[i] === ";" || header[i] === ","))
      i++;
    const equals = header.indexOf("=", i);
    if (equals < 0) return undefined;
    const name = header.slice(i, equals).trim().toLowerCase();
    let value: string;
    let next: number;
    if (header[equals + 1] === '"') {
      const quoted = readQuoted(header, equals + 1);
      if (!quoted) return undefined;
      value = quoted.value;
      next = quoted.end;
    } else {
      let end = equals + 1;
      while (end < length && header[end] !== ";" && header[end] !== ",") end++;
      value = header.slice(equals + 1, end).trim();
      next = end;
    }
    if (name === "for") return value;
    i = next;
  }
  return undefined;
}

/**
 * The IP address in an RFC 7239 node identifier (`192.0.2.43`, `192.0.2.43:4711`,
 * `[2001:db8::1]`, `[2001:db8::1]:4711`), or undefined for `unknown`, obfuscated identifiers
 * (`_hidden`) and anything else that is not an address.
 */
export function addressFromNode(node: string): string | undefined {
  const text = node.trim();
  if (text.startsWith("[")) {
    const close = text.indexOf("]");
    if (close < 0) return undefined;
    const rest = text.slice(close + 1);
    if (rest !== "" && !/^:(\d{1,5}|_[A-Za-z0-9._-]+)$/.test(rest)) return undefined;
    const inner = text.slice(1, close);
    return isIPv6(inner) ? inner : undefined;
  }
  const [host, port, ...extra] = text.split(":");
  if (extra.length > 0 || host === undefined) return undefined;
  if (port !== undefined && !/^(\d{1,5}|_[A-Za-z0-9._-]+)$/.test(port)) return undefined;
  return isIPv4(host) ? host : undefined;
}

/** The client address from a raw `Forwarded` header: its first `for=`, when that is an address. */
export function addressFromForwarded(header: string): string | undefined {
  const node = firstForwardedFor(header);
  return node === undefined ? undefined : addressFromNode(node);
}

/** The first element of an X-Forwarded-For list, when it is an address. */
export function addressFromXForwardedFor(header: string): string | undefined {
  const first = header.split(",")[0]?.trim() ?? "";
  if (isIPv4(first) || isIPv6(first)) return first;
  return addressFromNode(first);
}

/** Parses a textual IPv4 or IPv6 address into bytes (an IPv6 zone is dropped); undefined when it is neither. */
export function parseAddress(text: string): AddressBytes | undefined {
  if (isIPv4(text)) return parseIp(text, 4);
  if (!isIPv6(text)) return undefined;
  return parseIp(text.split("%")[0] ?? "", 6);
}

function isV4Mapped(bytes: AddressBytes): boolean {
  for (let i = 0; i < 10; i++) if (bytes[i] !== 0) return false;
  return bytes[10] === 0xff && bytes[11] === 0xff;
}

/**
 * The rate-limit key for an address: IPv4 as dotted quad; IPv4-mapped IPv6 as its IPv4 address;
 * other IPv6 addresses masked to `ipv6Prefix` bits and written as `<network>/<prefix>` in
 * canonical compressed form (RFC 5952), so every address of one /64 shares one key.
 */
export function clientKey(bytes: AddressBytes, ipv6Prefix: number): string {
  // Once per request: a template is several times faster than a typed array's join().
  if (bytes.length === 4) return `${bytes[0]}.${bytes[1]}.${bytes[2]}.${bytes[3]}`;
  if (bytes.length !== 16) throw new RangeError(`an IP address has 4 or 16 bytes, got ${bytes.length}`);
  if (isV4Mapped(bytes)) return `${bytes[12]}.${bytes[13]}.${bytes[14]}.${bytes[15]}`;
  const masked = new Uint8Array(16);
  for (let i = 0; i < 16; i++) {
    const bits = Math.max(0, Math.min(8, ipv6Prefix - i * 8));
    masked[i] = (bytes[i] ?? 0) & ((0xff << (8 - bits)) & 0xff);
  }
  return `${formatIp(masked)}/${ipv6Prefix}`;
}
