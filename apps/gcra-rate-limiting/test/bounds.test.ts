/**
 * The SPOP bounds set from the environment reach the agent: SPOA_MAX_CONNECTIONS refuses the
 * connection beyond it with AGENT-DISCONNECT status 13 and keeps serving the others;
 * SPOA_HELLO_TIMEOUT closes a connection that never says HELLO (status 2). Each step waits for
 * the agent's frame or close, never for a time.
 */
import { waitFor } from "@spoekit/harness";
import { checkRateMessage, connectClient, type SpopClient } from "@spoekit/spoe-agent/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type AppProcess, startApp, total } from "./stack.ts";

describe("SPOP bounds from the environment", () => {
  let app: AppProcess;
  const clients: SpopClient[] = [];

  beforeAll(async () => {
    app = await startApp({ SPOA_MAX_CONNECTIONS: "2", SPOA_HELLO_TIMEOUT: "300ms" });
  });

  afterAll(async () => {
    for (const client of clients) await client.reset().catch(() => undefined);
    await app?.stop("SIGKILL");
  });

  const connect = async () => {
    const client = await connectClient({ port: app.spopPort });
    clients.push(client);
    return client;
  };

  it("refuses the connection beyond SPOA_MAX_CONNECTIONS with status 13 and serves the others", async () => {
    const first = await connect();
    const second = await connect();
    await first.hello();
    await second.hello();
    const third = await connect();
    const refused = await third.closed;
    expect(refused.disconnect?.status).toBe(13);
    expect(refused.disconnect?.message).toBe("the agent holds its maximum of 2 connections");
    await first.notify([checkRateMessage("192.0.2.70")]);
    await second.notify([checkRateMessage("192.0.2.71")]);
    expect(total(await app.metrics(), "spoa_connections")).toBe(2);
    expect(app.output()).toMatch(/"maxConnections":2,"msg":"connection refused"/);
    await first.reset();
    await second.reset();
  });

  it("closes a connection that sends no HAPROXY-HELLO within SPOA_HELLO_TIMEOUT (status 2)", async () => {
    // The first test's connections are gone (else this one could be refused for the cap).
    await waitFor(async () => total(await app.metrics(), "spoa_connections") === 0, {
      what: "no connection left",
    });
    const silent = await connect();
    const closed = await silent.closed;
    expect(closed.disconnect?.status).toBe(2);
  });
});
