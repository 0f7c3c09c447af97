import { isIPv6 } from "node:net";
import { invalidFrame } from "./errors.ts";

function parseIpv4(text: string, into: Uint8Array, at: number): boolean {
  const parts = text.split(".");
  if (parts.length !== 4) return false;
  for (let i = 0; i < 4; i++) {
    const part = parts[i] ?? "";
    if (!/^(0|[1-9][0-9]{0,2})$/.test(part)) return false;
    const octet = Number(part);
    if (octet > 255) return false;
    into[at + i] = octet;
  }
  return true;
}

function parseGroups(text: string, into: Uint8Array, at: number): number | undefined {
  if (text === "") return at;
  for (const group of text.split(":")) {
    if (group.includes(".")) {
      if (!parseIpv4(group, into, at)) return undefined;
      at += 4;
    } else {
      const word = Number.parseInt(group, 16);
      into[at] = word >> 8;
      into[at + 1] = word & 0xff;
      at += 2;
    }
  }
  return at;
}

function parseIpv6(text: string): Uint8Array | undefined {
  if (!isIPv6(text) || text.includes("%")) return undefined;
  const bytes = new Uint8Array(16);
  const gap = text.indexOf("::");
  if (gap === -1) return parseGroups(text, bytes, 0) === 16 ? bytes : undefined;
  const tail = new Uint8Array(16);
  const headEnd = parseGroups(text.slice(0, gap), bytes, 0);
  const tailEnd = parseGroups(text.slice(gap + 2), tail, 0);
  if (headEnd === undefined || tailEnd === undefined || headEnd + tailEnd > 14) return undefined;
  bytes.set(tail.subarray(0, tailEnd), 16 - tailEnd);
  return bytes;
}

/**
 * The bytes of an IP address in text form: dotted-quad for `version` 4, any RFC 4291 form
 * (including `::ffff:192.0.2.1`) for 6. Throws {@link SpopError} when `text` is not one.
 */
export function parseIp(text: string, version: 4 | 6): Uint8Array {
  let bytes: Uint8Array | undefined;
  if (version === 4) {
    bytes = new Uint8Array(4);
    if (!parseIpv4(text, bytes, 0)) bytes = undefined;
  } else {
    bytes = parseIpv6(text);
  }
  if (bytes === undefined)
    throw invalidFrame(
      `IPV${version} value`,
      undefined,
      `${JSON.stringify(text)} is no IPv${version} address`,
    );
  return bytes;
}

function formatIpv6(bytes: Uint8Array): string {
  const words: number[] = [];
  for (let i = 0; i < 16; i += 2) words.push(((bytes[i] ?? 0) << 8) | (bytes[i + 1] ?? 0));
  // IPv4-mapped addresses keep their dotted tail (RFC 5952 §5).
  if (words.slice(0, 5).every((w) => w === 0) && words[5] === 0xffff) {
    return `::ffff:${bytes[12]}.${bytes[13]}.${bytes[14]}.${bytes[15]}`;
  }
  // The longest run of two or more zero words becomes "::"; the first one wins a tie (§4.2).
  let bestStart = -1;
  let bestLength = 1;
  for (let i = 0; i < 8; ) {
    if (words[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && words[j] === 0) j++;
    if (j - i > bestLength) {
      bestStart = i;
      bestLength = j - i;
    }
    i = j;
  }
  const hex = (from: number, to: number) =>
    words
      .slice(from, to)
      .map((w) => w.toString(16))
      .join(":");
  if (bestStart === -1) return hex(0, 8);
  return `${hex(0, bestStart)}::${hex(bestStart + bestLength, 8)}`;
}

/**
 * The canonical text of an IPV4 (4 bytes) or IPV6 (16 bytes) value: dotted-quad, or RFC 5952
 * (lower-case, longest zero run as `::`, IPv4-mapped addresses as `::ffff:a.b.c.d`).
 */
export function formatIp(bytes: Uint8Array): string {
  if (bytes.length === 4) return `${bytes[0]}.${bytes[1]}.${bytes[2]}.${bytes[3]}`;
  if (bytes.length === 16) return formatIpv6(bytes);
  throw invalidFrame("IP value", undefined, `an address has 4 or 16 bytes, not ${bytes.length}`);
}
