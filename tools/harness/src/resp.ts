import { connect } from "node:net";
import { type ConnectionOptions, connect as connectTls } from "node:tls";

/** A parsed RESP2 reply: simple/bulk strings, integers, errors (as `Error`), null, arrays. */
export type RespReply = string | number | null | Error | RespReply[];

function encodeCommand(args: readonly string[]): string {
  return `*${args.length}\r\n${args.map((a) => `$${Buffer.byteLength(a)}\r\n${a}\r\n`).join("")}`;
}

/** Parses one reply at `offset`; returns undefined when `buffer` does not hold all of it yet. */
function parseReply(buffer: Buffer, offset: number): { reply: RespReply; next: number } | undefined {
  const end = buffer.indexOf("\r\n", offset);
  if (end < 0) return undefined;
  const kind = String.fromCharCode(buffer[offset] ?? 0);
  const header = buffer.toString("utf8", offset + 1, end);
  const next = end + 2;
  switch (kind) {
    case "+":
      return { reply: header, next };
    case "-":
      return { reply: new Error(header), next };
    case ":":
      return { reply: Number(header), next };
    case "$": {
      const length = Number(header);
      if (length < 0) return { reply: null, next };
      if (buffer.length < next + length + 2) return undefined;
      return { reply: buffer.toString("utf8", next, next + length), next: next + length + 2 };
    }
    case "*": {
      const count = Number(header);
      if (count < 0) return { reply: null, next };
      const items: RespReply[] = [];
      let cursor = next;
      for (let i = 0; i < count; i++) {
        const item = parseReply(buffer, cursor);
        if (!item) return undefined;
        items.push(item.reply);
        cursor = item.next;
      }
      return { reply: items, next: cursor };
    }
    default:
      return { reply: new Error(`unexpected RESP type ${kind}`), next: buffer.length };
  }
}

/** Where and how {@link rawCommands} connects. */
export interface RawCommandOptions {
  /** Default `127.0.0.1`. */
  host?: string;
  /** Time for every reply to arrive. Default 2000 ms. */
  timeoutMs?: number;
  /** Speak TLS with these options (the CA to trust, a client certificate). Default: plain TCP. */
  tls?: ConnectionOptions;
}

/**
 * Sends commands over one fresh connection (pipelined, in order) and returns their replies.
 * For readiness probes and administration in tests; the product itself uses iovalkey.
 */
export function rawCommands(
  port: number,
  commands: readonly (readonly string[])[],
  { host = "127.0.0.1", timeoutMs = 2000, tls }: RawCommandOptions = {},
): Promise<RespReply[]> {
  return new Promise((resolve, reject) => {
    const socket = tls ? connectTls({ ...tls, port, host }) : connect({ port, host });
    let buffer = Buffer.alloc(0);
    const replies: RespReply[] = [];
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`no complete reply from ${host}:${port} within ${timeoutMs} ms`));
    }, timeoutMs);
    socket.on(tls ? "secureConnect" : "connect", () => socket.write(commands.map(encodeCommand).join("")));
    socket.on("data", (chunk) => {
      buffer = Buffer.concat([buffer, chunk]);
      for (;;) {
        const parsed = parseReply(buffer, 0);
        if (!parsed) break;
        replies.push(parsed.reply);
        buffer = buffer.subarray(parsed.next);
      }
      if (replies.length >= commands.length) {
        clearTimeout(timer);
        socket.end();
        resolve(replies);
      }
    });
    socket.on("error", (error) => {
      clearTimeout(timer);
      reject(error);
    });
  });
}

/** One command; a RESP error reply is returned as an `Error` value, not thrown. */
export async function rawCommand(
  port: number,
  args: readonly string[],
  options?: RawCommandOptions,
): Promise<RespReply> {
  const [reply] = await rawCommands(port, [args], options);
  return reply ?? null;
}
