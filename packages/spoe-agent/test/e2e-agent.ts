/**
 * The agent the HAProxy end-to-end test runs in a process of its own (so that it can be killed
 * and restarted): it scores `check-rate` requests by client address — the first of
 * X-Forwarded-For and the TCP source — and holds the answer for one address until the process
 * gets SIGUSR2, to outlast HAProxy's `timeout processing` however fast the machine is.
 * Usage: `node e2e-agent.ts <port>`; logs at debug level on stdout.
 */
import { createAgent, DataType, formatIp, type MessageContext, Scope, TypedValue } from "../src/index.ts";

const BLOCKED = "203.0.113.7";
const SLOW = "198.51.100.99";

function client(message: MessageContext): string {
  for (const name of ["ip_xff", "ip_src"]) {
    const value = message.arg(name);
    if (value?.type === DataType.IPV4 || value?.type === DataType.IPV6) return formatIp(value.value);
  }
  return "unknown";
}

const agent = createAgent({ logger: { level: "debug" }, handlerTimeout: 60_000 });
agent.message("check-rate", async (message) => {
  const address = client(message);
  if (address === SLOW) {
    console.log("holding the answer for", SLOW);
    await new Promise((resolve) => process.once("SIGUSR2", resolve));
  }
  message.setVar(Scope.SESS, "ip_score", TypedValue.int32(address === BLOCKED ? 100 : 0));
  message.setVar(Scope.TXN, "client", TypedValue.string(address));
});
await agent.listen({ host: "127.0.0.1", port: Number(process.argv[2]) });
process.once("SIGTERM", () => void agent.close());
