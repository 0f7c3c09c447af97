/**
 * A server for `bench/idle.bench.ts`, which measures what a held connection costs: `net`, a bare
 * Node `net` server that reads each socket and answers each read with an AGENT-HELLO's bytes
 * (the floor: Node's own cost per socket), or `agent`, this package's agent as deployed (the
 * default pino logger) with timeouts long enough to outlast the measurement. Plain JavaScript
 * from `dist`, as `agent-server.mjs`. Prints `listening <port>` once ready; for each `report`
 * line on stdin, runs full GCs and prints `memory <json>`: the connections it holds, RssAnon from
 * /proc, `process.memoryUsage()`.
 */
import { readFileSync } from "node:fs";
import { createServer } from "node:net";
import { createInterface } from "node:readline";
import { getHeapSpaceStatistics } from "node:v8";
import { createAgent } from "@spoekit/spoe-agent";
import { agentHelloFrame, encodeFrame } from "@spoekit/spop-codec";

const kind = process.argv[2];
const LONG_MS = 10 * 60 * 1000;

/** @type {() => number} */
let held;
/** @type {number} */
let port;
if (kind === "net") {
  const reply = encodeFrame(
    agentHelloFrame({ version: "2.0", maxFrameSize: 16380, capabilities: ["pipelining"] }),
  );
  let count = 0;
  // Listeners shared by every socket (`this` is the socket): nothing per connection but Node's.
  function onData() {
    this.write(reply);
  }
  function onClose() {
    count--;
  }
  function ignore() {}
  const server = createServer({ noDelay: true }, (socket) => {
    count++;
    socket.on("data", onData);
    socket.on("error", ignore);
    socket.on("close", onClose);
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", () => resolve(undefined)));
  port = /** @type {import("node:net").AddressInfo} */ (server.address()).port;
  held = () => count;
} else if (kind === "agent") {
  const agent = createAgent({ maxConnections: 100_000, helloTimeout: LONG_MS, idleTimeout: LONG_MS });
  ({ port } = await agent.listen({ host: "127.0.0.1", port: 0 }));
  held = () => agent.connections.size;
} else {
  throw new Error(`usage: idle-server.mjs net|agent (got ${kind})`);
}

/** A field of /proc/self/status in bytes. */
function status(field) {
  const match = new RegExp(`${field}:\\s+(\\d+) kB`).exec(readFileSync("/proc/self/status", "utf8"));
  return Number(match?.[1] ?? 0) * 1024;
}

createInterface({ input: process.stdin }).on("line", (line) => {
  if (line !== "report") return;
  // Started with --expose-gc: what is live, not what awaits the GC (a few rounds, so that
  // objects freed by finalizers of the first are gone too).
  for (let i = 0; i < 4; i++) globalThis.gc?.();
  const usage = process.memoryUsage();
  const report = {
    connections: held(),
    rssAnon: status("RssAnon"),
    heapUsed: usage.heapUsed,
    external: usage.external,
    arrayBuffers: usage.arrayBuffers,
    spaces: Object.fromEntries(
      getHeapSpaceStatistics().map((space) => [space.space_name, space.physical_space_size]),
    ),
  };
  console.log(`memory ${JSON.stringify(report)}`);
});
console.log(`listening ${port}`);
