/** Encode an unsigned integer. */
export function encodeVarint(value: number): Uint8Array {
  return new Uint8Array([value]);
}
