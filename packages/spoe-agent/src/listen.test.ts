import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it, vi } from "vitest";
import { cleanup, clientTo, onCleanup } from "../test/helpers.ts";
import {
  type AgentOptions,
  createAgent,
  InvalidOptionError,
  parseListenAddress,
  Scope,
  type SpoeAgent,
  TypedValue,
} from "./index.ts";
import { checkRateMessage, connectClient, type SpopClientOptions } from "./testing/index.ts";

afterEach(cleanup);

const tlsDir = join(import.meta.dirname, "..", "test", "tls");
const tls = { cert: readFileSync(join(tlsDir, "cert.pem")), key: readFileSync(join(tlsDir, "key.pem")) };

function scoringAgent(options: AgentOptions = {}): SpoeAgent {
  const agent = createAgent({ logger: false, ...options }).catchAll((message) => {
    message.setVar(Scope.SESS, "ip_score", TypedValue.int32(7));
  });
  onCleanup(() => agent.close());
  return agent;
}

function temporaryDir(): string {
  const dir = mkdtempSync(join(tmpdir(), "spoe-agent-"));
  onCleanup(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

async function roundTrip(options: SpopClientOptions): Promise<number> {
  const client = await connectClient({ timeoutMs: 3000, ...options });
  onCleanup(() => client.socket.destroy());
  await client.hello();
  const ack = await client.notify([checkRateMessage()]);
  const action = ack.actions[0];
  return action?.type === 1 && action.value.type === 2 ? action.value.value : -1;
}

describe("listen()", () => {
  it("serves TCP and reports the bound address", async () => {
    const agent = scoringAgent();
    const address = await agent.listen({ host: "127.0.0.1", port: 0 });
    expect(address).toMatchObject({ host: "127.0.0.1", tls: false });
    expect(address.url).toBe(`tcp://127.0.0.1:${address.port}`);
    expect(await roundTrip({ port: address.port as number })).toBe(7);
    expect(agent.addresses).toEqual([address]);
  });

  it("serves a unix socket, given as options or as unix:/path", async () => {
    const dir = temporaryDir();
    const agent = scoringAgent();
    const first = await agent.listen({ path: join(dir, "a.sock") });
    const second = await agent.listen(`unix:${join(dir, "b.sock")}`);
    expect(first.url).toBe(`unix:${join(dir, "a.sock")}`);
    expect(await roundTrip({ path: join(dir, "a.sock") })).toBe(7);
    expect(await roundTrip({ path: second.path as string })).toBe(7);
  });

  it("serves TLS over TCP and over a unix socket", async () => {
    const agent = scoringAgent();
    const tcp = await agent.listen({ host: "127.0.0.1", port: 0, tls });
    const unix = await agent.listen({ path: join(temporaryDir(), "tls.sock"), tls });
    expect(tcp.url).toMatch(/^tls:\/\/127\.0\.0\.1:\d+$/);
    expect(await roundTrip({ port: tcp.port as number, tls: { ca: tls.cert } })).toBe(7);
    expect(
      await roundTrip({ path: unix.path as string, tls: { ca: tls.cert, servername: "localhost" } }),
    ).toBe(7);
    const [connection] = agent.connections;
    expect(connection?.tls).toBe(true);
  });

  it("drops a client that fails the TLS handshake or never starts it, and keeps serving", async () => {
    const agent = scoringAgent({ helloTimeout: 100 });
    const { port } = await agent.listen({ host: "127.0.0.1", port: 0, tls });
    await expect(connectClient({ port: port as number, tls: true })).rejects.toThrow(
      /self-signed|certificate/,
    );
    const plain = await clientTo(port as number);
    await plain.closed;
    expect(await roundTrip({ port: port as number, tls: { ca: tls.cert } })).toBe(7);
  });

  it("lets several agents share a port with reusePort", async () => {
    const [one, two] = [scoringAgent(), scoringAgent()];
    const { port } = await one.listen({ host: "127.0.0.1", port: 0, reusePort: true });
    await two.listen({ host: "127.0.0.1", port: port as number, reusePort: true });
    const clients = await Promise.all(Array.from({ length: 24 }, () => clientTo(port as number)));
    await Promise.all(clients.map((client) => client.hello()));
    expect(one.connections.size + two.connections.size).toBe(24);
    expect(one.connections.size).toBeGreaterThan(0);
    expect(two.connections.size).toBeGreaterThan(0);
    const third = scoringAgent();
    await expect(third.listen({ host: "127.0.0.1", port: port as number })).rejects.toMatchObject({
      code: "EADDRINUSE",
    });
  });

  it("sets TCP_NODELAY on every accepted socket", async () => {
    const setNoDelay = vi.spyOn(Socket.prototype, "setNoDelay");
    onCleanup(() => setNoDelay.mockRestore());
    const agent = scoringAgent();
    const { port } = await agent.listen({ host: "127.0.0.1", port: 0 });
    await clientTo(port as number);
    await clientTo(port as number);
    const accepted = [...agent.connections].map((connection) => connection.socket);
    for (const socket of accepted) {
      expect(setNoDelay.mock.contexts.filter((context) => context === socket).length).toBeGreaterThan(0);
      expect(setNoDelay.mock.calls[setNoDelay.mock.contexts.indexOf(socket)]).toEqual([true]);
    }
    expect(accepted).toHaveLength(2);
  });
});

describe("listen addresses as text", () => {
  it.each([
    ["127.0.0.1:9000", { host: "127.0.0.1", port: 9000 }],
    ["0.0.0.0:9000", { host: "0.0.0.0", port: 9000 }],
    ["[::1]:9000", { host: "::1", port: 9000 }],
    [":9000", { port: 9000 }],
    ["9000", { port: 9000 }],
    ["unix:/run/spoa.sock", { path: "/run/spoa.sock" }],
  ])("%s", (text, expected) => {
    expect(parseListenAddress(text)).toEqual(expected);
  });

  it.each(["", "unix:", "host", "host:port", "1.2.3.4:70000", "::1:9000"])("refuses %j", (text) => {
    expect(() => parseListenAddress(text)).toThrow(InvalidOptionError);
  });
});

describe("options", () => {
  it.each([
    [{ maxFrameSize: 255 }, /maxFrameSize/],
    [{ maxInFlight: 0 }, /maxInFlight/],
    [{ handlerTimeout: -1 }, /handlerTimeout/],
    [{ helloTimeout: 1.5 }, /helloTimeout/],
    [{ idleTimeout: 2 ** 31 }, /idleTimeout/],
    [{ closeTimeout: Number.NaN }, /closeTimeout/],
    [{ capabilities: ["pipelining", "multiplexing"] }, /unknown capability "multiplexing"/],
    [{ failureAck: "drop" as never }, /failureAck/],
    [{ noEmptyAck: { scope: 9 as never, name: "x" } }, /noEmptyAck.scope/],
    [{ noEmptyAck: { scope: Scope.TXN, name: "" } }, /noEmptyAck.name/],
  ])("refuses %j", (options, message) => {
    expect(() => createAgent({ logger: false, ...options })).toThrow(message);
  });

  it("refuses a port out of range when listening", async () => {
    await expect(scoringAgent().listen({ port: 70_000 })).rejects.toBeInstanceOf(InvalidOptionError);
  });
});
