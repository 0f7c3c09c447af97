import { connect } from "node:net";
import { DisconnectStatus, FrameType, Scope, setVar, TypedValue } from "@spoekit/spop-codec";
import { pino } from "pino";
import { afterEach, describe, expect, it } from "vitest";
import { captured } from "../test/captured-frames.ts";
import {
  allClosed,
  Counter,
  cleanup,
  logSink,
  nextMessage,
  numberArg,
  recordChannel,
  startAgent,
} from "../test/helpers.ts";
import {
  AgentClosedError,
  type ConnectionCloseMessage,
  channels,
  createAgent,
  type ErrorMessage,
  type MessageContext,
} from "./index.ts";
import { ManualClock, spoeMessage } from "./testing/index.ts";

afterEach(cleanup);

/**
 * Handlers that wait `ms` (an argument) on a manual clock and then set `done`, watching their
 * signal; `running` counts the handlers started.
 */
function slowAgent(options: Parameters<typeof startAgent>[0] = {}) {
  const signals: AbortSignal[] = [];
  const running = new Counter();
  const clock = new ManualClock();
  const started = startAgent({ clock, ...options }, (agent) =>
    agent.catchAll(async (message: MessageContext) => {
      signals.push(message.signal);
      message.setVar(Scope.TXN, "started", TypedValue.bool(true));
      running.hit();
      await clock.sleep(numberArg(message, "ms"));
      message.setVar(Scope.TXN, "done", TypedValue.bool(true));
    }),
  );
  return { signals, started, running, clock };
}
const slow = (ms: number) => spoeMessage("slow", { ms: TypedValue.int32(ms) });
const both = [
  setVar(Scope.TXN, "started", TypedValue.bool(true)),
  setVar(Scope.TXN, "done", TypedValue.bool(true)),
];

describe("HAPROXY-DISCONNECT", () => {
  it("is answered after the in-flight ACKs: AGENT-DISCONNECT status 0, then the agent closes", async () => {
    const { started, running, clock } = slowAgent();
    const { ready } = await started;
    const haproxy = await ready();
    const events: string[] = [];
    const acks = [40, 10].map((ms) =>
      haproxy.notify([slow(ms)]).then((ack) => events.push(`ack ${ack.streamId}`)),
    );
    haproxy.send(captured.disconnect26);
    await running.reached(2);
    await clock.advanceAsync(40);
    const closed = await haproxy.closed;
    events.push(`disconnect ${closed.disconnect?.status}`);
    await Promise.all(acks);
    expect(events).toEqual(["ack 3", "ack 1", "disconnect 0"]);
    expect(closed.error).toBeUndefined();
  });

  it("with nothing in flight, is answered at once", async () => {
    const { ready, agent } = await startAgent();
    const haproxy = await ready();
    expect(await haproxy.disconnect(0, "normal")).toEqual({ status: 0, message: "normal" });
    await allClosed(agent);
  });
});

describe("HAProxy closing the connection", () => {
  it.each([
    ["with a TCP RST (as 3.x does)", "reset"],
    ["with a FIN (EOF)", "end"],
  ] as const)(
    "%s is a normal close: handlers in flight are aborted, nothing is thrown",
    async (_how, method) => {
      const sink = logSink();
      const errors = recordChannel<ErrorMessage>(channels.error);
      const closes = recordChannel<ConnectionCloseMessage>(channels.connectionClose);
      const { signals, started, running, clock } = slowAgent({ logger: pino({ level: "debug" }, sink) });
      const { ready } = await started;
      const haproxy = await ready();
      haproxy.notify([slow(300)]).catch(() => {});
      await running.reached(1);
      const closing = nextMessage(channels.connectionClose);
      await haproxy[method]();
      await closing;
      expect(signals[0]?.aborted).toBe(true);
      expect(signals[0]?.reason).toMatchObject({ code: "SPOE_AGENT_CONNECTION_CLOSED" });
      expect(closes[0]?.cause).toBe(method === "reset" ? "reset" : "peer-closed");
      expect(errors).toEqual([]);
      expect(sink.lines.filter((line) => (line.level as number) >= 40)).toEqual([]);
      await clock.advanceAsync(300); // the aborted handler finishes: its late ACK goes nowhere, quietly
      expect(errors).toEqual([]);
      expect(sink.lines.filter((line) => (line.level as number) >= 40)).toEqual([]);
    },
  );
});

describe("timeouts", () => {
  it("closes a connection that says no HELLO within helloTimeout, with status 2", async () => {
    const clock = new ManualClock();
    const { client } = await startAgent({ helloTimeout: 80, clock });
    const accepted = nextMessage(channels.connectionOpen);
    const haproxy = await client();
    await accepted;
    clock.advance(79);
    expect(clock.pending).toBe(1);
    clock.advance(1);
    const closed = await haproxy.closed;
    expect(closed.disconnect?.status).toBe(DisconnectStatus.TIMEOUT);
  });

  it("closes a connection idle for idleTimeout, but not while a NOTIFY is in flight", async () => {
    const { started, running, clock } = slowAgent({ idleTimeout: 80 });
    const { ready } = await started;
    const haproxy = await ready();
    const ack = haproxy.notify([slow(250)]);
    await running.reached(1);
    await clock.advanceAsync(250);
    expect((await ack).actions).toEqual(both);
    let closedYet = false;
    void haproxy.closed.then(() => {
      closedYet = true;
    });
    await clock.advanceAsync(79); // 79 ms after the ACK: not idle yet
    expect(closedYet).toBe(false);
    await clock.advanceAsync(1);
    const closed = await haproxy.closed;
    expect(closed.disconnect).toEqual({ status: 0, message: "idle for 80 ms" });
  });

  it("counts a NOTIFY answered at once as activity, closing idleTimeout after it at most an eighth late", async () => {
    const clock = new ManualClock();
    const { ready } = await startAgent({ clock, idleTimeout: 80 }, (agent) =>
      agent.catchAll((message) => {
        message.setVar(Scope.TXN, "seen", TypedValue.bool(true));
      }),
    );
    const haproxy = await ready();
    let closedYet = false;
    void haproxy.closed.then(() => {
      closedYet = true;
    });
    await clock.advanceAsync(50);
    expect((await haproxy.notify([slow(0)])).actions).toEqual([
      setVar(Scope.TXN, "seen", TypedValue.bool(true)),
    ]);
    await clock.advanceAsync(79); // 79 ms after the NOTIFY: not idle yet
    expect(closedYet).toBe(false);
    await clock.advanceAsync(11); // 90 ms after: idle (within 80 + 80 / 8)
    const closed = await haproxy.closed;
    expect(closed.disconnect).toEqual({ status: 0, message: "idle for 80 ms" });
  });
});

describe("close()", () => {
  it("stops accepting, lets in-flight NOTIFYs finish, sends AGENT-DISCONNECT 0, then resolves", async () => {
    const { started, running, clock } = slowAgent();
    const { ready, agent, port } = await started;
    const haproxy = await ready();
    const idle = await ready();
    const ack = haproxy.notify([slow(80)]);
    await running.reached(1);
    const closing = agent.close();
    await clock.advanceAsync(80);
    expect((await ack).actions).toEqual(both);
    expect((await haproxy.closed).disconnect).toEqual({ status: 0, message: "normal" });
    expect((await idle.closed).disconnect?.status).toBe(0);
    await closing;
    expect(agent.connections.size).toBe(0);
    const refused = await new Promise<string>((resolve) => {
      const socket = connect({ host: "127.0.0.1", port });
      socket.on("connect", () => resolve("connected"));
      socket.on("error", (error: NodeJS.ErrnoException) => resolve(error.code ?? "error"));
    });
    expect(refused).toBe("ECONNREFUSED");
  });

  it("answers the NOTIFYs already received but not yet taken (maxInFlight) before disconnecting", async () => {
    const { started, running, clock } = slowAgent({ maxInFlight: 2 });
    const { ready, agent } = await started;
    const haproxy = await ready();
    haproxy.socket.cork();
    const acks = [30, 30, 30, 30, 30].map((ms) => haproxy.notify([slow(ms)]));
    haproxy.socket.uncork();
    await running.reached(2);
    const closing = agent.close();
    for (let round = 1; round <= 3; round++) {
      await running.reached(Math.min(5, 2 * round));
      await clock.advanceAsync(30);
    }
    await closing;
    expect((await Promise.all(acks)).map((ack) => ack.actions)).toEqual(Array(5).fill(both));
  });

  it("at closeTimeout answers what still runs with the actions so far, disconnects and resolves", async () => {
    const { signals, started, running, clock } = slowAgent({ closeTimeout: 60, handlerTimeout: 0 });
    const { ready, agent } = await started;
    const haproxy = await ready();
    const ack = haproxy.notify([slow(10_000)]);
    await running.reached(1);
    let closed = false;
    const closing = agent.close().then(() => {
      closed = true;
    });
    await clock.advanceAsync(59);
    expect(closed).toBe(false);
    await clock.advanceAsync(1);
    await closing;
    expect((await ack).actions).toEqual([setVar(Scope.TXN, "started", TypedValue.bool(true))]);
    expect((await haproxy.closed).disconnect?.status).toBe(0);
    expect(signals[0]?.reason).toBeInstanceOf(AgentClosedError);
  });

  it("returns the same promise when called twice, and listen() then refuses", async () => {
    const { agent } = await startAgent();
    const first = agent.close();
    expect(agent.close()).toBe(first);
    await first;
    expect(agent.closing).toBe(true);
    await expect(agent.listen({ port: 0, host: "127.0.0.1" })).rejects.toMatchObject({
      code: "SPOE_AGENT_CLOSED",
    });
  });

  it("is started by the signal option", async () => {
    const controller = new AbortController();
    const { agent, ready } = await startAgent({ signal: controller.signal });
    const haproxy = await ready();
    controller.abort();
    expect((await haproxy.closed).disconnect?.status).toBe(0);
    expect(agent.closing).toBe(true);
    const aborted = createAgent({ logger: false, signal: AbortSignal.abort() });
    await expect(aborted.listen({ port: 0 })).rejects.toMatchObject({ code: "SPOE_AGENT_CLOSED" });
  });

  it("runs the lifecycle hooks in order, a failing hook only reported", async () => {
    const events: string[] = [];
    const errors = recordChannel<ErrorMessage>(channels.error);
    const { agent, ready } = await startAgent({}, (a) =>
      a
        .addHook("onListen", (address) => {
          events.push(`listen ${address.url.startsWith("tcp://127.0.0.1:")}`);
        })
        .addHook("onConnection", (connection) => {
          events.push(`connection ${connection.id}`);
        })
        .addHook("onConnection", () => {
          throw new Error("hook failed");
        })
        .addHook("onConnectionClose", (connection, cause) => {
          events.push(`close ${connection.id} ${cause}`);
        })
        .addHook("preClose", async () => {
          await null;
          events.push(`preClose ${agent.connections.size}`);
        })
        .addHook("onClose", () => {
          events.push("onClose");
        }),
    );
    await ready();
    await agent.close();
    expect(events).toEqual([
      "listen true",
      "connection 1",
      "preClose 1",
      "close 1 agent-disconnect",
      "onClose",
    ]);
    expect(errors.map((e) => [e.kind, e.error.message])).toEqual([["hook", "hook failed"]]);
    expect(() => agent.addHook("nope" as never, (() => {}) as never)).toThrow(/unknown hook/);
  });
});

describe("health checks and the close of the agent", () => {
  it("a health check during close() is answered or refused, never left hanging", async () => {
    const { client, agent } = await startAgent();
    const haproxy = await client();
    void agent.close();
    haproxy.send(captured.healthcheck35);
    const closed = await haproxy.closed;
    expect(
      closed.unclaimed
        .map((frame) => frame.type)
        .every((type) => type === FrameType.AGENT_HELLO || type === FrameType.AGENT_DISCONNECT),
    ).toBe(true);
  });

  it("a connection that said HELLO while the agent was closing is drained at once", async () => {
    const { client, agent } = await startAgent();
    const haproxy = await client();
    const closing = agent.close();
    await haproxy.hello().catch(() => undefined);
    await closing;
    expect((await haproxy.closed).disconnect?.status).toBe(0);
  });
});

describe("a hook that throws something that is not an Error", () => {
  it("is reported as a HookFailedError with the value as its cause", async () => {
    const errors = recordChannel<ErrorMessage>(channels.error);
    const { ready } = await startAgent({}, (agent) =>
      agent.addHook("onConnection", () => {
        throw "plain string";
      }),
    );
    await ready();
    expect(errors.map((e) => [e.kind, e.error])).toEqual([
      ["hook", expect.objectContaining({ code: "SPOE_AGENT_HOOK_FAILED", cause: "plain string" })],
    ]);
  });
});
