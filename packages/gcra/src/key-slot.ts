/** CRC16/XMODEM (polynomial 0x1021), the hash of Valkey's cluster slots, by byte. */
const CRC16 = new Uint16Array(256);
for (let byte = 0; byte < 256; byte++) {
  let crc = byte << 8;
  for (let bit = 0; bit < 8; bit++) crc = crc & 0x8000 ? (crc << 1) ^ 0x1021 : crc << 1;
  CRC16[byte] = crc & 0xffff;
}

/** The key's UTF-8 bytes, written here instead of into a new array per key. */
let scratch = Buffer.allocUnsafeSlow(256);

/** CRC16 of `bytes[from, to)`. */
function crc16(bytes: Uint8Array, from: number, to: number): number {
  let crc = 0;
  for (let i = from; i < to; i++)
    crc = ((crc << 8) & 0xffff) ^ (CRC16[((crc >> 8) ^ (bytes[i] as number)) & 0xff] as number);
  return crc;
}

/**
 * The cluster hash slot of `key` (0–16383), as Valkey computes it: CRC16 of the key's UTF-8
 * bytes, or of its hash tag — what lies between the first `{` and the next `}`, when that is not
 * empty — modulo 16384. Allocates nothing.
 */
export function keySlot(key: string): number {
  const most = key.length * 3;
  if (most > scratch.length) scratch = Buffer.allocUnsafeSlow(Math.max(most, scratch.length * 2));
  const bytes = scratch;
  const length = bytes.write(key, 0, "utf8");
  let open = -1;
  for (let i = 0; i < length; i++) {
    if (bytes[i] === 0x7b) {
      open = i;
      break;
    }
  }
  if (open >= 0) {
    for (let close = open + 1; close < length; close++) {
      if (bytes[close] !== 0x7d) continue;
      if (close > open + 1) return crc16(bytes, open + 1, close) & 0x3fff;
      break;
    }
  }
  return crc16(bytes, 0, length) & 0x3fff;
}
