/**
 * The benchmark's baseline agent: a bare SPOA on the same codec as the app, and the ceiling of
 * an agent written in Node. It decodes each NOTIFY and answers with the four variables the app
 * sets for an allowed request (`ip_score` 0, `retry_after` 0, `remaining` 19, `limit` 20), so
 * that HAProxy does the same work with its answer — no handler, deadline, backpressure, metric
 * or log. Run from `dist` like the app: `node bench/echo-agent.ts <port>`; prints
 * `listening <port>` once ready, and on SIGUSR2 one JSON line with its counters (connections,
 * socket reads, NOTIFYs, socket writes).
 *
 * Knobs (environment), for the HAProxy analysis of BENCHMARKS.md:
 * - ECHO_WRITE: `read` (default) one write per socket read, with every ACK of the read;
 *   `frame` one write per ACK; `turn` the writes of one event-loop turn held until its end
 *   (`setImmediate`), so the reads of one poll phase share one write per connection.
 * - ECHO_MAX_FRAME: the max-frame-size it announces (default 16380, HAProxy's).
 * - ECHO_PIPELINING: `0` announces no capability (default: `pipelining`).
 */
import { createServer, type Socket } from "node:net";
import {
  agentHelloFrame,
  FrameReader,
  FrameType,
  FrameWriter,
  negotiateHello,
  parseHaproxyHello,
  Scope,
  setVar,
  TypedValue,
} from "@spoekit/spop-codec";

const mode = process.env.ECHO_WRITE ?? "read";
if (mode !== "read" && mode !== "frame" && mode !== "turn") {
  console.error(`ECHO_WRITE must be read, frame or turn, got ${mode}`);
  process.exit(2);
}
const maxFrameSize = Number(process.env.ECHO_MAX_FRAME ?? 16380);
const capabilities = process.env.ECHO_PIPELINING === "0" ? [] : ["pipelining"];

const actions = [
  setVar(Scope.SESS, "ip_score", TypedValue.int32(0)),
  setVar(Scope.SESS, "retry_after", TypedValue.int64(0)),
  setVar(Scope.SESS, "remaining", TypedValue.int64(19)),
  setVar(Scope.SESS, "limit", TypedValue.int64(20)),
];

const counters = { connections: 0, reads: 0, notifies: 0, writes: 0 };
process.on("SIGUSR2", () => console.log(JSON.stringify(counters)));

/** Connections with ACKs waiting for the end of the loop turn (ECHO_WRITE=turn). */
const waiting = new Map<Socket, FrameWriter>();
let flushScheduled = false;
const flushAll = () => {
  flushScheduled = false;
  for (const [socket, writer] of waiting) {
    counters.writes++;
    socket.write(writer.flush());
  }
  waiting.clear();
};

const server = createServer({ noDelay: true }, (socket) => {
  counters.connections++;
  const reader = new FrameReader();
  const writer = new FrameWriter();
  socket.on("error", () => socket.destroy());
  socket.on("close", () => waiting.delete(socket));
  socket.on("data", (chunk: Buffer) => {
    counters.reads++;
    reader.push(chunk);
    for (let frame = reader.next(); frame !== undefined; frame = reader.next()) {
      if (frame.type === FrameType.NOTIFY) {
        counters.notifies++;
        writer.writeAck(frame.streamId, frame.frameId, actions);
        if (mode === "frame") {
          counters.writes++;
          socket.write(writer.flush());
        }
      } else if (frame.type === FrameType.HAPROXY_HELLO) {
        const hello = negotiateHello(parseHaproxyHello(frame), { maxFrameSize, capabilities });
        writer.write(agentHelloFrame(hello));
        reader.maxFrameSize = hello.maxFrameSize;
      } else if (frame.type === FrameType.HAPROXY_DISCONNECT) {
        socket.end();
        return;
      }
    }
    if (writer.pendingBytes === 0) return;
    if (mode === "turn") {
      waiting.set(socket, writer);
      if (!flushScheduled) {
        flushScheduled = true;
        setImmediate(flushAll);
      }
      return;
    }
    counters.writes++;
    socket.write(writer.flush());
  });
});
server.listen({ host: "127.0.0.1", port: Number(process.argv[2] ?? 0) }, () => {
  const address = server.address();
  console.log(`listening ${typeof address === "object" && address !== null ? address.port : 0}`);
});
process.once("SIGTERM", () => process.exit(0));
