import { createAgent, DataType, formatIp, Scope, TypedValue } from "@spoekit/spoe-agent";

const denied = new Set(["203.0.113.7"]);
const agent = createAgent({ handlerTimeout: 50 });

agent.message("check-rate", (message) => {
  const { ip_xff: forwarded, ip_src: source } = message.args;
  const client = forwarded?.type === DataType.IPV4 || forwarded?.type === DataType.IPV6 ? forwarded : source;
  const ip = client?.type === DataType.IPV4 || client?.type === DataType.IPV6 ? formatIp(client.value) : "";
  message.setVar(Scope.SESS, "ip_score", TypedValue.int32(denied.has(ip) ? 100 : 0));
});

await agent.listen(process.env.SPOE_ADDR ?? "0.0.0.0:9000");
process.once("SIGTERM", () => agent.close());
