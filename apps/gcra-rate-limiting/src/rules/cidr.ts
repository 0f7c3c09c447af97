import { parseAddress } from "../client-ip.ts";

/** An address block: the network's bytes (4 or 16) and its prefix length. */
export interface Cidr {
  readonly bytes: Uint8Array;
  readonly prefix: number;
}

/**
 * `192.0.2.0/24`, `2001:db8::/32`, or a single address (a /32 or /128). Undefined when the text
 * is neither; host bits set under the mask are ignored.
 */
export function parseCidr(text: string): Cidr | undefined {
  const [address = "", length, extra] = text.trim().split("/");
  if (extra !== undefined) return undefined;
  const bytes = parseAddress(address);
  if (bytes === undefined) return undefined;
  const bits = bytes.length * 8;
  if (length === undefined) return { bytes, prefix: bits };
  if (!/^\d{1,3}$/.test(length) || Number(length) > bits) return undefined;
  return { bytes, prefix: Number(length) };
}

/** The address itself, or for an IPv4-mapped IPv6 address (`::ffff:a.b.c.d`) its IPv4 bytes. */
export function unmapped(bytes: Uint8Array): Uint8Array {
  if (bytes.length !== 16 || bytes[10] !== 0xff || bytes[11] !== 0xff) return bytes;
  for (let i = 0; i < 10; i++) if (bytes[i] !== 0) return bytes;
  return bytes.subarray(12);
}

/** Whether `address` (already {@link unmapped}) lies in `cidr`. */
export function contains(cidr: Cidr, address: Uint8Array): boolean {
  if (cidr.bytes.length !== address.length) return false;
  const whole = cidr.prefix >> 3;
  for (let i = 0; i < whole; i++) if (cidr.bytes[i] !== address[i]) return false;
  const rest = cidr.prefix & 7;
  if (rest === 0) return true;
  const mask = (0xff << (8 - rest)) & 0xff;
  return ((cidr.bytes[whole] as number) & mask) === ((address[whole] as number) & mask);
}

/** Whether `address` lies in any of `cidrs`. */
export function inAny(cidrs: readonly Cidr[], address: Uint8Array): boolean {
  for (const cidr of cidrs) if (contains(cidr, address)) return true;
  return false;
}
