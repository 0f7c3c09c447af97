/**
 * The agent under benchmark: this package with a trivial handler that sets one variable, as a
 * rate limiter's verdict. Plain JavaScript, so that the process runs as a deployed agent does
 * (from `dist`, without type stripping, which alone adds tens of MiB of RSS). Prints
 * `listening <port>` once ready; closes on SIGTERM.
 */
import { getHeapSpaceStatistics } from "node:v8";
import { createAgent, Scope, TypedValue } from "@spoekit/spoe-agent";

/** NOTIFYs handled (one message each), reported at each mark. */
let notifies = 0;
// The benchmark marks the start and the end of a measured run in this process's output: each
// mark reports first the NOTIFYs handled so far and the process's CPU time (user and system,
// µs, every thread), then its memory: process.memoryUsage() and V8's heap spaces.
process.on("SIGUSR2", () => {
  const { user, system } = process.cpuUsage();
  console.log(`mark ${notifies} ${user} ${system}`);
  globalThis.gc?.(); // started with --expose-gc (`--idle`): what is live, not what awaits the GC
  const spaces = Object.fromEntries(
    getHeapSpaceStatistics().map((space) => [space.space_name, space.physical_space_size]),
  );
  console.log(`memory ${JSON.stringify({ usage: process.memoryUsage(), spaces })}`);
});

const verdict = TypedValue.int32(0);
// As deployed: the default logger (pino, level info, JSON on stdout; nothing per NOTIFY).
const agent = createAgent().message("check-rate", (message) => {
  notifies++;
  message.setVar(Scope.SESS, "ip_score", verdict);
});
const { port } = await agent.listen({ host: "127.0.0.1", port: Number(process.argv[2] ?? 0) });
console.log(`listening ${port}`);
process.once("SIGTERM", () => void agent.close());
