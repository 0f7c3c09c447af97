import { createSocket, type RemoteInfo } from "node:dgram";
import { isIPv4 } from "node:net";

/** A DNS server on loopback for tests: answers A queries from a fixed table, nothing else. */
export interface DnsServer {
  /** `127.0.0.1:<port>`, e.g. for HAProxy's `nameserver`. */
  readonly address: string;
  readonly port: number;
  /** Every name asked about (lower case, without the final dot), in order. */
  readonly asked: readonly string[];
  close(): Promise<void>;
}

const TYPE_A = 1;
const CLASS_IN = 1;
const NXDOMAIN = 3;
const FORMERR = 1;

/** The question's name, type and the offset just past it, or undefined when it is malformed. */
function question(query: Buffer): { name: string; type: number; end: number } | undefined {
  const labels: string[] = [];
  let offset = 12;
  for (;;) {
    const length = query[offset];
    if (length === undefined || length > 63) return undefined;
    offset += 1;
    if (length === 0) break;
    if (offset + length > query.length) return undefined;
    labels.push(query.toString("latin1", offset, offset + length));
    offset += length;
  }
  if (offset + 4 > query.length) return undefined;
  return { name: labels.join(".").toLowerCase(), type: query.readUInt16BE(offset), end: offset + 4 };
}

/** The reply to `query`: the question echoed, and one A record per address of `records`. */
function reply(query: Buffer, records: ReadonlyMap<string, readonly string[]>, ttl: number): Buffer {
  const header = Buffer.alloc(12);
  header.writeUInt16BE(query.length >= 2 ? query.readUInt16BE(0) : 0, 0);
  const asked = query.length >= 12 && query.readUInt16BE(4) === 1 ? question(query) : undefined;
  // QR, the client's RD, RA; the response code in the low bits.
  const flags = 0x8080 | ((query.length >= 3 ? (query[2] ?? 0) & 0x01 : 0) << 8);
  if (!asked) {
    header.writeUInt16BE(flags | FORMERR, 2);
    return header;
  }
  const addresses = records.get(asked.name);
  const answers = asked.type === TYPE_A ? (addresses ?? []) : [];
  header.writeUInt16BE(flags | (addresses ? 0 : NXDOMAIN), 2);
  header.writeUInt16BE(1, 4);
  header.writeUInt16BE(answers.length, 6);
  const parts = [header, query.subarray(12, asked.end)];
  for (const address of answers) {
    const record = Buffer.alloc(16);
    record.writeUInt16BE(0xc00c, 0); // the name: a pointer to the question's
    record.writeUInt16BE(TYPE_A, 2);
    record.writeUInt16BE(CLASS_IN, 4);
    record.writeUInt32BE(ttl, 6);
    record.writeUInt16BE(4, 10);
    address.split(".").forEach((octet, i) => {
      record[12 + i] = Number(octet);
    });
    parts.push(record);
  }
  return Buffer.concat(parts);
}

/**
 * Starts a DNS server on 127.0.0.1 (UDP, a free port) that answers A queries for the names of
 * `records` (fully qualified, without the final dot) with their IPv4 addresses, other types of
 * those names with no record, and every other name with NXDOMAIN. For tests that run HAProxy's
 * resolvers without a route to the machine's resolver.
 */
export async function startDnsServer(
  records: Record<string, readonly string[]>,
  options: { ttl?: number } = {},
): Promise<DnsServer> {
  const table = new Map(Object.entries(records).map(([name, addresses]) => [name.toLowerCase(), addresses]));
  for (const [name, addresses] of table) {
    for (const address of addresses) {
      if (!isIPv4(address)) throw new RangeError(`startDnsServer: ${name} → ${address} is no IPv4 address`);
    }
  }
  const asked: string[] = [];
  const socket = createSocket("udp4");
  socket.on("message", (query: Buffer, from: RemoteInfo) => {
    const name = query.length >= 12 ? question(query)?.name : undefined;
    if (name !== undefined) asked.push(name);
    socket.send(reply(query, table, options.ttl ?? 1), from.port, from.address);
  });
  await new Promise<void>((resolve, reject) => {
    socket.once("error", reject);
    socket.bind({ address: "127.0.0.1", port: 0 }, () => {
      socket.off("error", reject);
      resolve();
    });
  });
  const { port } = socket.address();
  return {
    address: `127.0.0.1:${port}`,
    port,
    asked,
    close: () => new Promise<void>((resolve) => socket.close(() => resolve())),
  };
}
