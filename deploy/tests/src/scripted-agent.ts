import { createAgent, DataType, formatIp, Scope, TypedValue } from "@spoekit/spoe-agent";

/**
 * A scripted SPOE agent for testing HAProxy's side of the rate limiter, on @spoekit/spoe-agent:
 * it answers each check-rate message with the variables `decide` returns, set in the session
 * scope as INT32. The real agent lives in apps/gcra-rate-limiting; this one exists so that
 * haproxy.cfg's rules can be tested on their own.
 */
export interface ScriptedAgent {
  readonly port: number;
  /**
   * The arguments of every check-rate message received, in order, as plain values: addresses
   * as text, NULL as `null`, strings and numbers as they are.
   */
  readonly received: Record<string, unknown>[];
  close(): Promise<void>;
}

function plain(value: TypedValue): unknown {
  switch (value.type) {
    case DataType.NULL:
      return null;
    case DataType.IPV4:
    case DataType.IPV6:
      return formatIp(value.value);
    default:
      return value.value;
  }
}

export async function startScriptedAgent(
  decide: (args: Record<string, unknown>) => Record<string, number>,
): Promise<ScriptedAgent> {
  const received: Record<string, unknown>[] = [];
  const agent = createAgent({ logger: false }).message("check-rate", (message) => {
    const args = Object.fromEntries(message.message.args.map((arg) => [arg.name, plain(arg.value)]));
    received.push(args);
    for (const [name, value] of Object.entries(decide(args))) {
      message.setVar(Scope.SESS, name, TypedValue.int32(value));
    }
  });
  const { port } = await agent.listen({ host: "127.0.0.1", port: 0 });
  return { port: port ?? 0, received, close: () => agent.close() };
}
