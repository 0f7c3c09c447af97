/**
 * The agent under benchmark: this package with a trivial handler that sets one variable, as a
 * rate limiter's verdict. Prints `listening <port>` once ready; exits on SIGTERM after close().
 */
import { createAgent, Scope, TypedValue } from "@spoekit/spoe-agent";

const verdict = TypedValue.int32(0);
const agent = createAgent({ logger: false }).message("check-rate", (message) => {
  message.setVar(Scope.SESS, "ip_score", verdict);
});
const { port } = await agent.listen({ host: "127.0.0.1", port: Number(process.argv[2] ?? 0) });
console.log(`listening ${port}`);
process.once("SIGTERM", () => void agent.close());
