/**
 * Hostile SPOP clients, in a process of their own (so that their CPU is not the agent's):
 * `node bench/hostile.ts <port> <count>` keeps `count` connections to 127.0.0.1:`port`, in
 * three kinds dealt in turn:
 * - `idle`: connects and sends nothing (idle before HELLO);
 * - `slowloris`: a frame header promising a HAPROXY-HELLO of 16 KB, then one byte every second;
 * - `hello`: a whole HAPROXY-HELLO, then nothing (idle after the AGENT-HELLO).
 * Each connection is opened again as soon as it closes — refused by the agent's cap, timed out,
 * reset. Once a second it prints one JSON line of counters (see {@link Counters}); it runs until
 * SIGTERM. Run from `dist` like the echo agent (the codec's built output).
 */
import { connect, type Socket } from "node:net";
import {
  type AgentDisconnectFrame,
  DisconnectStatus,
  decodeFrame,
  encodeFrame,
  FrameType,
  haproxyHelloFrame,
  parseDisconnect,
} from "@spoekit/spop-codec";

const KINDS = ["idle", "slowloris", "hello"] as const;
type Kind = (typeof KINDS)[number];

/** What the process prints each second (totals since it started, `open*` now). */
interface Counters {
  /** Connections opened (connect succeeded), in total. */
  opened: number;
  /** Connections open now, and of them those the agent greeted with AGENT-HELLO. */
  open: number;
  openHello: number;
  /** Open now by kind. */
  openByKind: Record<Kind, number>;
  /** Closed after an AGENT-DISCONNECT: status 13 (refused by the cap), 2 (HELLO timeout), other. */
  refused: number;
  timedOut: number;
  otherDisconnect: number;
  /** Closed without an AGENT-DISCONNECT (reset, or closed at accept). */
  closedSilently: number;
  /** connect() failed (e.g. no ephemeral port left). */
  connectErrors: number;
}

const port = Number(process.argv[2]);
const count = Number(process.argv[3]);
if (!Number.isInteger(port) || !Number.isInteger(count) || count < 1) {
  console.error("usage: node bench/hostile.ts <port> <count>");
  process.exit(2);
}

const hello = encodeFrame(
  haproxyHelloFrame({ maxFrameSize: 16380, capabilities: ["pipelining"], engineId: "bench-hostile" }),
);
/** A frame header: LENGTH 16380 and the HAPROXY-HELLO type byte; the rest never comes. */
const slowHeader = Buffer.from([0, 0, 0x3f, 0xfc, FrameType.HAPROXY_HELLO]);

const counters: Counters = {
  opened: 0,
  open: 0,
  openHello: 0,
  openByKind: { idle: 0, slowloris: 0, hello: 0 },
  refused: 0,
  timedOut: 0,
  otherDisconnect: 0,
  closedSilently: 0,
  connectErrors: 0,
};
let stopping = false;
const drips = new Set<Socket>();

/** The first AGENT-* frame in `bytes` (enough of them arrived), or `undefined`. */
function firstFrame(bytes: Buffer): { type: number; status?: number } | undefined {
  if (bytes.length < 4 || bytes.length < 4 + bytes.readUInt32BE(0)) return undefined;
  try {
    const frame = decodeFrame(bytes.subarray(0, 4 + bytes.readUInt32BE(0)));
    return frame.type === FrameType.AGENT_DISCONNECT
      ? { type: frame.type, status: parseDisconnect(frame as AgentDisconnectFrame).status }
      : { type: frame.type };
  } catch {
    return { type: -1 };
  }
}

function open(kind: Kind): void {
  if (stopping) return;
  let connected = false;
  let greeted = false;
  let disconnect: number | undefined;
  let received = Buffer.alloc(0);
  const socket = connect({ port, host: "127.0.0.1" }, () => {
    connected = true;
    counters.opened++;
    counters.open++;
    counters.openByKind[kind]++;
    if (kind === "hello") socket.write(hello);
    if (kind === "slowloris") {
      socket.write(slowHeader);
      drips.add(socket);
    }
  });
  socket.on("data", (chunk: Buffer) => {
    received = Buffer.concat([received, chunk]).subarray(0, 64 * 1024);
    // A frame at a time: AGENT-HELLO first for `hello`, then maybe an AGENT-DISCONNECT.
    for (;;) {
      const frame = firstFrame(received);
      if (!frame) break;
      received = received.subarray(4 + received.readUInt32BE(0));
      if (frame.type === FrameType.AGENT_HELLO && !greeted) {
        greeted = true;
        counters.openHello++;
      } else if (frame.type === FrameType.AGENT_DISCONNECT) disconnect = frame.status;
      if (frame.type === -1) break;
    }
  });
  socket.on("error", () => undefined);
  socket.on("close", () => {
    drips.delete(socket);
    if (!connected) counters.connectErrors++;
    else {
      counters.open--;
      counters.openByKind[kind]--;
      if (greeted) counters.openHello--;
      if (disconnect === DisconnectStatus.RESOURCE_ALLOCATION_ERROR) counters.refused++;
      else if (disconnect === DisconnectStatus.TIMEOUT) counters.timedOut++;
      else if (disconnect !== undefined) counters.otherDisconnect++;
      else counters.closedSilently++;
    }
    // Again at once; after a failed connect, on the next turn of the loop (no busy spin).
    if (connected) setImmediate(open, kind);
    else setTimeout(open, 10, kind);
  });
}

// A few hundred at a time, so that the agent's accept queue is not what refuses them.
for (let i = 0; i < count; i++) {
  open(KINDS[i % KINDS.length] as Kind);
  if (i % 250 === 249) await new Promise((resolve) => setTimeout(resolve, 20));
}

const drip = Buffer.alloc(1);
setInterval(() => {
  for (const socket of drips) socket.write(drip);
  process.stdout.write(`${JSON.stringify(counters)}\n`);
}, 1000);

process.on("SIGTERM", () => {
  stopping = true;
  process.exit(0);
});
