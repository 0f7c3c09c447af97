import { type SentinelTopology, startSentinel } from "@spoekit/harness";
import { afterAll, beforeAll, describe, it } from "vitest";
import {
  decideThroughFailover,
  describeValkeyBehaviour,
  expectFailoverBridged,
  freshKey,
} from "./behaviour.ts";

let topology: SentinelTopology;
beforeAll(async () => {
  topology = await startSentinel({ replicas: 1, sentinels: 3, downAfterMs: 1000, failoverTimeoutMs: 5000 });
}, 60_000);
afterAll(async () => {
  await topology?.stop();
});

const connection = () => ({
  nodes: topology.sentinelAddresses.map(({ host, port }) => `redis://${host}:${port}`),
  mode: "sentinel" as const,
  sentinelName: topology.name,
});

describeValkeyBehaviour("valkey", () => ({
  mode: "sentinel",
  connection: () => ({ ...connection(), sentinelName: topology.name }),
  command: async (_key, ...args) => (await topology.primary()).command(...args),
  onPrimaries: async (...args) => {
    await (await topology.primary()).command(...args);
  },
}));

describe("sentinel only", () => {
  it("keeps deciding while the sentinels promote the replica", async () => {
    const result = await decideThroughFailover(connection(), freshKey("failover"), async () => {
      const killed = await topology.killPrimary();
      await topology.waitForPrimary(killed, 30_000);
    });
    expectFailoverBridged(result);
  }, 60_000);
});
