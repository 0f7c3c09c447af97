/**
 * The baseline: a bare-bones SPOA on the same codec — no handlers, deadlines, backpressure or
 * diagnostics; every NOTIFY of a socket read is answered with the same one-variable ACK in one
 * write. What it costs is the codec and the sockets; what the agent costs beyond it is the
 * library. Plain JavaScript, as `agent-server.mjs`. Prints `listening <port>` once ready.
 */
import { createServer } from "node:net";
import { getHeapSpaceStatistics } from "node:v8";
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

/** NOTIFYs answered, reported at each mark. */
let notifies = 0;
// The benchmark marks the start and the end of a measured run in this process's output: each
// mark reports first the NOTIFYs answered so far and the process's CPU time (user and system,
// µs, every thread), then its memory: process.memoryUsage() and V8's heap spaces.
process.on("SIGUSR2", () => {
  const { user, system } = process.cpuUsage();
  console.log(`mark ${notifies} ${user} ${system}`);
  const spaces = Object.fromEntries(
    getHeapSpaceStatistics().map((space) => [space.space_name, space.physical_space_size]),
  );
  console.log(`memory ${JSON.stringify({ usage: process.memoryUsage(), spaces })}`);
});

const actions = [setVar(Scope.SESS, "ip_score", TypedValue.int32(0))];
const writer = new FrameWriter();

const server = createServer({ noDelay: true }, (socket) => {
  const reader = new FrameReader();
  socket.on("error", () => socket.destroy());
  socket.on("data", (chunk) => {
    reader.push(chunk);
    for (let frame = reader.next(); frame !== undefined; frame = reader.next()) {
      if (frame.type === FrameType.NOTIFY) {
        notifies++;
        writer.writeAck(frame.streamId, frame.frameId, actions);
      } else if (frame.type === FrameType.HAPROXY_HELLO) {
        writer.write(
          agentHelloFrame(
            negotiateHello(parseHaproxyHello(frame), { maxFrameSize: 16380, capabilities: ["pipelining"] }),
          ),
        );
      }
    }
    if (writer.pendingBytes > 0) {
      socket.write(writer.flush());
      if (socket.writableLength === 0) writer.release(); // written at once: reuse the bytes
    }
  });
});
server.listen({ host: "127.0.0.1", port: Number(process.argv[2] ?? 0) }, () => {
  const address = server.address();
  console.log(`listening ${typeof address === "object" && address !== null ? address.port : 0}`);
});
process.once("SIGTERM", () => {
  server.close();
  process.exit(0);
});
