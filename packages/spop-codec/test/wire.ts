/**
 * Frames built by hand from the protocol text, independently of the encoder, so that tests
 * compare the codec with the specification rather than with itself.
 */

/** HAProxy's varint, straight from the protocol notes, on bigints. */
export function referenceVarint(value: bigint): string {
  let x = BigInt.asUintN(64, value);
  const bytes: bigint[] = [];
  if (x < 240n) return x.toString(16).padStart(2, "0");
  bytes.push((x & 0xffn) | 0xf0n);
  x = (x - 240n) >> 4n;
  while (x >= 128n) {
    bytes.push((x & 0xffn) | 0x80n);
    x = (x - 128n) >> 7n;
  }
  bytes.push(x);
  return bytes.map((b) => b.toString(16).padStart(2, "0")).join("");
}

/** A length-prefixed string: varint length, then the UTF-8 bytes. */
export function wireString(text: string): string {
  const bytes = Buffer.from(text, "utf8");
  return referenceVarint(BigInt(bytes.length)) + bytes.toString("hex");
}

export interface WireFrame {
  type: number;
  flags?: number;
  streamId?: number;
  frameId?: number;
  /** Payload as hex. */
  payload?: string;
}

/** The frame's bytes with its 4-byte big-endian length prefix. */
export function wireFrame({ type, flags = 1, streamId = 0, frameId = 0, payload = "" }: WireFrame): Buffer {
  const body = Buffer.from(
    type.toString(16).padStart(2, "0") +
      flags.toString(16).padStart(8, "0") +
      referenceVarint(BigInt(streamId)) +
      referenceVarint(BigInt(frameId)) +
      payload,
    "hex",
  );
  const prefix = Buffer.alloc(4);
  prefix.writeUInt32BE(body.length);
  return Buffer.concat([prefix, body]);
}

/** A KV item: name, then typed data given as hex. */
export function wireItem(name: string, typedHex: string): string {
  return wireString(name) + typedHex;
}

/** A message of a NOTIFY: name, NB-ARGS, then the items. */
export function wireMessage(name: string, items: string[], nbArgs = items.length): string {
  return wireString(name) + nbArgs.toString(16).padStart(2, "0") + items.join("");
}

/** A SET-VAR action. */
export function wireSetVar(scope: number, name: string, typedHex: string): string {
  return `0103${scope.toString(16).padStart(2, "0")}${wireString(name)}${typedHex}`;
}

/** An UNSET-VAR action. */
export function wireUnsetVar(scope: number, name: string): string {
  return `0202${scope.toString(16).padStart(2, "0")}${wireString(name)}`;
}
