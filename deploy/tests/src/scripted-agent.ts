import { createServer, type Socket } from "node:net";

/**
 * A scripted SPOE agent for testing HAProxy's side of the rate limiter: it speaks just enough
 * SPOP 2.0 (HELLO, NOTIFY → ACK with SET-VAR in the session scope, DISCONNECT, health checks)
 * and answers each check-rate message with the variables `decide` returns. The real agent
 * lives in apps/gcra-rate-limiting; this one exists so that haproxy.cfg's rules can be tested
 * on their own.
 */
export interface ScriptedAgent {
  readonly port: number;
  /** The arguments of every check-rate message received, in order. */
  readonly received: Record<string, unknown>[];
  close(): Promise<void>;
}

const frameType = {
  haproxyHello: 1,
  haproxyDisconnect: 2,
  notify: 3,
  agentHello: 101,
  agentDisconnect: 102,
  ack: 103,
};
const dataType = {
  null: 0,
  bool: 1,
  int32: 2,
  uint32: 3,
  int64: 4,
  uint64: 5,
  ipv4: 6,
  ipv6: 7,
  string: 8,
  binary: 9,
};
const finFlag = 1;
const sessionScope = 1;
const setVarAction = 1;

function encodeVarint(value: number): number[] {
  if (value < 240) return [value];
  const bytes = [(value & 0xff) | 0xf0];
  let rest = (value - 240) >> 4;
  while (rest >= 128) {
    bytes.push((rest & 0xff) | 0x80);
    rest = (rest - 128) >> 7;
  }
  bytes.push(rest);
  return bytes;
}

class Reader {
  offset = 0;
  readonly bytes: Buffer;
  constructor(bytes: Buffer) {
    this.bytes = bytes;
  }
  get done(): boolean {
    return this.offset >= this.bytes.length;
  }
  byte(): number {
    const value = this.bytes[this.offset++];
    if (value === undefined) throw new Error("frame ends early");
    return value;
  }
  varint(): number {
    let value = this.byte();
    if (value < 240) return value;
    let shift = 4;
    let next: number;
    do {
      next = this.byte();
      value += next * 2 ** shift;
      shift += 7;
    } while (next >= 128);
    return value;
  }
  slice(length: number): Buffer {
    const part = this.bytes.subarray(this.offset, this.offset + length);
    this.offset += length;
    return part;
  }
  string(): string {
    return this.slice(this.varint()).toString("utf8");
  }
  typed(): unknown {
    const header = this.byte();
    switch (header & 0x0f) {
      case dataType.null:
        return null;
      case dataType.bool:
        return (header & 0x10) !== 0;
      case dataType.ipv4:
        return [...this.slice(4)].join(".");
      case dataType.ipv6:
        return this.slice(16).toString("hex");
      case dataType.string:
        return this.string();
      case dataType.binary:
        return this.slice(this.varint());
      default:
        return this.varint();
    }
  }
  keyValues(count = Number.POSITIVE_INFINITY): Record<string, unknown> {
    const entries: Record<string, unknown> = {};
    for (let i = 0; i < count && !this.done; i++) entries[this.string()] = this.typed();
    return entries;
  }
}

const stringData = (text: string) => [
  dataType.string,
  ...encodeVarint(Buffer.byteLength(text)),
  ...Buffer.from(text),
];
const keyValue = (key: string, typed: number[]) => [
  ...encodeVarint(Buffer.byteLength(key)),
  ...Buffer.from(key),
  ...typed,
];

function frame(type: number, streamId: number, frameId: number, payload: number[]): Buffer {
  const body = [type, 0, 0, 0, finFlag, ...encodeVarint(streamId), ...encodeVarint(frameId), ...payload];
  const length = Buffer.alloc(4);
  length.writeUInt32BE(body.length);
  return Buffer.concat([length, Buffer.from(body)]);
}

export async function startScriptedAgent(
  decide: (args: Record<string, unknown>) => Record<string, number>,
): Promise<ScriptedAgent> {
  const received: Record<string, unknown>[] = [];
  const sockets = new Set<Socket>();

  const answer = (socket: Socket, type: number, reader: Reader, streamId: number, frameId: number) => {
    if (type === frameType.haproxyHello) {
      const hello = reader.keyValues();
      const maxFrameSize = Number(hello["max-frame-size"] ?? 16380);
      socket.write(
        frame(frameType.agentHello, 0, 0, [
          ...keyValue("version", stringData("2.0")),
          ...keyValue("max-frame-size", [dataType.uint32, ...encodeVarint(maxFrameSize)]),
          ...keyValue("capabilities", stringData("pipelining")),
        ]),
      );
      if (hello.healthcheck === true) socket.end();
    } else if (type === frameType.notify) {
      const actions: number[] = [];
      while (!reader.done) {
        const message = reader.string();
        const args = reader.keyValues(reader.byte());
        if (message !== "check-rate") continue;
        received.push(args);
        for (const [name, value] of Object.entries(decide(args))) {
          actions.push(setVarAction, 3, sessionScope, ...encodeVarint(name.length), ...Buffer.from(name));
          actions.push(dataType.int32, ...encodeVarint(value));
        }
      }
      socket.write(frame(frameType.ack, streamId, frameId, actions));
    } else if (type === frameType.haproxyDisconnect) {
      socket.end(
        frame(frameType.agentDisconnect, 0, 0, [
          ...keyValue("status-code", [dataType.uint32, 0]),
          ...keyValue("message", stringData("")),
        ]),
      );
    }
  };

  const server = createServer((socket) => {
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
    socket.on("error", () => socket.destroy());
    let pending = Buffer.alloc(0);
    socket.on("data", (chunk) => {
      pending = Buffer.concat([pending, chunk]);
      while (pending.length >= 4 && pending.length >= 4 + pending.readUInt32BE(0)) {
        const reader = new Reader(pending.subarray(4, 4 + pending.readUInt32BE(0)));
        pending = pending.subarray(4 + pending.readUInt32BE(0));
        const type = reader.byte();
        reader.slice(4); // flags: HAProxy 2.6 does not fragment towards an agent that did not ask for it
        const streamId = reader.varint();
        const frameId = reader.varint();
        answer(socket, type, reader, streamId, frameId);
      }
    });
  });
  await new Promise<void>((resolve) => server.listen({ host: "127.0.0.1", port: 0 }, resolve));
  const address = server.address();
  return {
    port: typeof address === "object" && address ? address.port : 0,
    received,
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}
