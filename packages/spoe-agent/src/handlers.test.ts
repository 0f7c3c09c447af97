import { ActionType, type Message, Scope, setVar, TypedValue, unsetVar } from "@spoekit/spop-codec";
import { pino } from "pino";
import { afterEach, describe, expect, it } from "vitest";
import {
  Counter,
  cleanup,
  deferred,
  logSink,
  numberArg,
  recordChannel,
  startAgent,
} from "../test/helpers.ts";
import {
  channels,
  DataType,
  type ErrorMessage,
  formatIp,
  InvalidOptionError,
  type MessageContext,
  type NotifyMessage,
} from "./index.ts";
import { checkRateMessage, ManualClock, spoeMessage } from "./testing/index.ts";

afterEach(cleanup);

const score = (n: number) => setVar(Scope.SESS, "ip_score", TypedValue.int32(n));

describe("handlers", () => {
  it("get the message's arguments by name and in wire order, and set and unset variables", async () => {
    let seen: unknown[] = [];
    const { ready } = await startAgent({}, (agent) =>
      agent.message("check-rate", (message) => {
        seen = [
          message.name,
          message.arg("ip_xff"),
          message.args.ip_fwd,
          message.message.args.map((arg) => arg.name),
          [message.streamId, message.frameId, message.notify.messages.length],
          message.engineId,
          message.connection.remoteAddress,
        ];
        const source = message.args.ip_src;
        message.setVar(
          Scope.TXN,
          "client",
          TypedValue.string(source?.type === DataType.IPV4 ? formatIp(source.value) : "?"),
        );
        message.unsetVar(Scope.SESS, "gone");
      }),
    );
    const haproxy = await ready();
    const xff = TypedValue.ipv4("203.0.113.7");
    const ack = await haproxy.notify([checkRateMessage("192.0.2.1", { ipXff: xff })], {
      streamId: 9,
      frameId: 3,
    });
    expect(ack.actions).toEqual([
      setVar(Scope.TXN, "client", TypedValue.string("192.0.2.1")),
      unsetVar(Scope.SESS, "gone"),
    ]);
    expect(seen).toEqual([
      "check-rate",
      xff,
      TypedValue.null,
      ["ip_fwd", "ip_xff", "ip_src"],
      [9, 3, 1],
      "spoekit-test-client",
      "127.0.0.1",
    ]);
  });

  it("cannot touch another NOTIFY through a context kept after its own was answered", async () => {
    let kept: MessageContext | undefined;
    const { ready } = await startAgent({}, (agent) =>
      agent.catchAll((message) => {
        if (kept === undefined) {
          kept = message;
          return;
        }
        kept.setVar(Scope.TXN, "stale", TypedValue.int32(1));
        message.setVar(Scope.TXN, "fresh", TypedValue.int32(2));
      }),
    );
    const haproxy = await ready();
    await haproxy.notify([checkRateMessage()]);
    const second = await haproxy.notify([checkRateMessage()]);
    expect(second.actions.map((action) => action.name)).toEqual(["fresh"]);
    expect(kept?.actions).toEqual([]);
  });

  it("still show their own NOTIFY through a context kept after it was answered", async () => {
    const kept: MessageContext[] = [];
    const { ready } = await startAgent({}, (agent) =>
      agent.catchAll((message) => {
        kept.push(message);
      }),
    );
    const haproxy = await ready();
    await haproxy.notify([checkRateMessage("192.0.2.1")], { streamId: 11, frameId: 1 });
    await haproxy.notify([spoeMessage("other", { n: TypedValue.int32(7) })], { streamId: 13, frameId: 2 });
    expect(
      kept.map((message) => [
        message.streamId,
        message.frameId,
        message.notify.streamId,
        message.notify.messages.map((m) => m.name),
        message.message.args.map((arg) => arg.name),
      ]),
    ).toEqual([
      [11, 1, 11, ["check-rate"], ["ip_fwd", "ip_xff", "ip_src"]],
      [13, 2, 13, ["other"], ["n"]],
    ]);
    expect(kept[0]?.arg("ip_src")).toEqual(TypedValue.ipv4("192.0.2.1"));
  });

  it("run per message name, the catch-all for the others, and answer a NOTIFY once for all its messages", async () => {
    const calls: string[] = [];
    const { ready } = await startAgent({}, (agent) =>
      agent
        .message("first", async (message) => {
          await null; // finishes after the synchronous handlers
          calls.push(message.name);
          message.setVar(Scope.TXN, "a", TypedValue.int32(1));
        })
        .message("second", (message) => {
          calls.push(message.name);
          message.setVar(Scope.TXN, "b", TypedValue.int32(2));
        })
        .catchAll((message) => {
          calls.push(`*${message.name}`);
          expect(message.actions.map((action) => action.name)).toEqual(["b"]);
        }),
    );
    const haproxy = await ready();
    const ack = await haproxy.notify([
      spoeMessage("first", {}),
      spoeMessage("second", {}),
      spoeMessage("other", {}),
    ]);
    expect(calls).toEqual(["second", "*other", "first"]);
    expect(ack.actions.map((action) => action.name)).toEqual(["b", "a"]);
  });

  it("answer messages nobody handles with an empty ACK", async () => {
    const { ready } = await startAgent({}, (agent) => agent.message("known", () => {}));
    const haproxy = await ready();
    expect((await haproxy.notify([spoeMessage("unknown", { x: TypedValue.null })])).actions).toEqual([]);
  });

  it("registered while NOTIFYs flow take the messages they name from the next NOTIFY on", async () => {
    const { agent, ready } = await startAgent({}, (a) =>
      a.message("x", (m) => void m.setVar(Scope.TXN, "by", TypedValue.string("x"))),
    );
    const haproxy = await ready();
    const by = async (name: string) => (await haproxy.notify([spoeMessage(name, {})])).actions;
    expect(await by("y")).toEqual([]); // nobody handles "y" yet
    agent.catchAll((m) => void m.setVar(Scope.TXN, "by", TypedValue.string("*")));
    expect(await by("y")).toEqual([setVar(Scope.TXN, "by", TypedValue.string("*"))]);
    expect(await by("x")).toEqual([setVar(Scope.TXN, "by", TypedValue.string("x"))]);
    agent.message("y", (m) => void m.setVar(Scope.TXN, "by", TypedValue.string("y")));
    expect(await by("y")).toEqual([setVar(Scope.TXN, "by", TypedValue.string("y"))]);
  });

  it("are registered once per name", async () => {
    const { agent } = await startAgent({}, (a) => a.message("m", () => {}).catchAll(() => {}));
    expect(() => agent.message("m", () => {})).toThrow(InvalidOptionError);
    expect(() => agent.catchAll(() => {})).toThrow(InvalidOptionError);
    expect(() => agent.message("n", "nope" as never)).toThrow(
      expect.objectContaining({ code: "SPOE_AGENT_INVALID_OPTION" }),
    );
  });
});

describe("a handler that fails", () => {
  async function failing(options: Parameters<typeof startAgent>[0], handler: (m: MessageContext) => unknown) {
    const sink = logSink();
    const errors = recordChannel<ErrorMessage>(channels.error);
    const notifies = recordChannel<NotifyMessage>(channels.notify);
    const started = await startAgent({ logger: pino({ level: "info" }, sink), ...options }, (agent) =>
      agent.catchAll(handler as (m: MessageContext) => void),
    );
    return { ...started, sink, errors, notifies };
  }

  it.each([
    [
      "throws",
      (m: MessageContext) => {
        m.setVar(Scope.SESS, "ip_score", TypedValue.int32(100));
        throw new Error("store down");
      },
    ],
    [
      "rejects",
      async (m: MessageContext) => {
        m.setVar(Scope.SESS, "ip_score", TypedValue.int32(100));
        await null;
        throw new Error("store down");
      },
    ],
  ])("%s: its NOTIFY is answered with the actions set so far, logged and counted", async (_how, handler) => {
    const { ready, sink, errors, notifies } = await failing({}, handler);
    const haproxy = await ready();
    expect((await haproxy.notify([checkRateMessage()], { streamId: 5, frameId: 1 })).actions).toEqual([
      score(100),
    ]);
    expect(errors.map((e) => [e.kind, (e.error as Error).message])).toEqual([["handler", "store down"]]);
    expect(notifies.map((n) => n.outcome)).toEqual(["error"]);
    const logged = sink.lines.find((line) => line.level === 50);
    expect(logged).toMatchObject({
      msg: "handler failed; NOTIFY answered",
      streamId: 5,
      messages: ["check-rate"],
    });
    expect(logged?.err).toMatchObject({ message: "store down" });
  });

  it("throws something that is not an Error: it is wrapped", async () => {
    const { ready, errors } = await failing({}, () => {
      throw "plain string";
    });
    await (await ready()).notify([checkRateMessage()]);
    expect(errors[0]?.error).toMatchObject({ code: "SPOE_AGENT_HANDLER_FAILED", cause: "plain string" });
  });

  it("misses its deadline: answered at the deadline, the late result discarded, its signal aborted", async () => {
    let signal: AbortSignal | undefined;
    const clock = new ManualClock();
    const started = deferred();
    const late = deferred();
    const finished = deferred();
    const { ready, errors, notifies } = await failing({ handlerTimeout: 60, clock }, async (m) => {
      signal = m.signal;
      m.setVar(Scope.SESS, "ip_score", TypedValue.int32(0));
      started.resolve();
      await late.promise;
      m.setVar(Scope.SESS, "late", TypedValue.int32(1));
      finished.resolve();
    });
    const haproxy = await ready();
    let answered = false;
    const ack = haproxy.notify([checkRateMessage()]).then((frame) => {
      answered = true;
      return frame;
    });
    await started.promise;
    clock.advance(59);
    expect(signal?.aborted).toBe(false);
    clock.advance(1);
    expect((await ack).actions).toEqual([score(0)]);
    expect(answered).toBe(true);
    expect(signal?.aborted).toBe(true);
    expect(signal?.reason).toMatchObject({ code: "SPOE_AGENT_HANDLER_TIMEOUT" });
    expect(errors.map((e) => e.kind)).toEqual(["timeout"]);
    expect(notifies.map((n) => n.outcome)).toEqual(["timeout"]);
    late.resolve();
    await finished.promise;
    expect(haproxy.disconnectReceived).toBeUndefined();
    expect((await haproxy.notify([spoeMessage("quick", {})])).type).toBe(103); // no stray ACK before it
  });

  it("misses its deadline among others: only it is answered at the deadline", async () => {
    const clock = new ManualClock();
    const running = new Counter();
    const { ready } = await failing({ handlerTimeout: 50, clock }, async (m) => {
      const ms = numberArg(m, "ms");
      running.hit();
      await clock.sleep(ms);
      m.setVar(Scope.TXN, "ms", TypedValue.int32(ms));
    });
    const haproxy = await ready();
    const acks = Promise.all(
      [10, 500, 20, 30].map((ms) => haproxy.notify([spoeMessage("m", { ms: TypedValue.int32(ms) })])),
    );
    await running.reached(4);
    await clock.advanceAsync(50);
    expect((await acks).map((ack) => ack.actions.length)).toEqual([1, 0, 1, 1]);
  });

  it('is answered with no action under failureAck "empty"', async () => {
    const { ready } = await failing({ failureAck: "empty" }, (m) => {
      m.setVar(Scope.SESS, "ip_score", TypedValue.int32(100));
      throw new Error("x");
    });
    expect((await (await ready()).notify([checkRateMessage()])).actions).toEqual([]);
  });

  it("is answered with what a failureAck function decides", async () => {
    const clock = new ManualClock();
    const running = new Counter();
    const { ready } = await failing(
      {
        handlerTimeout: 30,
        clock,
        failureAck: (failure) => [setVar(Scope.TXN, "failed", TypedValue.string(failure.kind))],
      },
      async (m) => {
        running.hit();
        if (m.args.fail !== undefined) throw new Error("x");
        await clock.sleep(100);
      },
    );
    const haproxy = await ready();
    const both = Promise.all([
      haproxy.notify([spoeMessage("m", { fail: TypedValue.bool(true) })]),
      haproxy.notify([spoeMessage("m", {})]),
    ]);
    await running.reached(2);
    clock.advance(30);
    const [thrown, late] = await both;
    expect(thrown.actions).toEqual([setVar(Scope.TXN, "failed", TypedValue.string("error"))]);
    expect(late.actions).toEqual([setVar(Scope.TXN, "failed", TypedValue.string("timeout"))]);
  });

  it("aborts the other handlers of its NOTIFY", async () => {
    let sibling: AbortSignal | undefined;
    const { ready } = await startAgent({ logger: false }, (agent) =>
      agent
        .message("slow", async (m) => {
          sibling = m.signal;
          await new Promise((resolve) => m.signal.addEventListener("abort", resolve));
        })
        .message("fails", async () => {
          await null;
          throw new Error("boom");
        }),
    );
    await (await ready()).notify([spoeMessage("slow", {}), spoeMessage("fails", {})]);
    expect(sibling?.aborted).toBe(true);
    expect(sibling?.reason).toMatchObject({ message: "boom" });
  });

  it("sets a variable with a bad scope or name: that is a handler error", async () => {
    const { ready, errors } = await failing({}, (m) => {
      m.setVar(7 as Scope, "x", TypedValue.null);
    });
    await (await ready()).notify([checkRateMessage()]);
    expect(errors[0]?.error).toBeInstanceOf(InvalidOptionError);
  });
});

describe("an ACK that cannot be encoded", () => {
  it.each([
    ["an INT32 out of range", (m: MessageContext) => m.setVar(Scope.TXN, "n", TypedValue.int32(2 ** 40))],
    ["no typed value", (m: MessageContext) => m.setVar(Scope.TXN, "n", { type: 99 } as never)],
    [
      "more than the negotiated frame size",
      (m: MessageContext) => {
        for (let i = 0; i < 20; i++) m.setVar(Scope.TXN, `v${i}`, TypedValue.string("x".repeat(40)));
      },
    ],
  ])("(%s) is sent without the handlers' actions, and reported", async (_what, handler) => {
    const errors = recordChannel<ErrorMessage>(channels.error);
    const { client } = await startAgent({}, (agent) =>
      agent.catchAll(handler as (m: MessageContext) => void),
    );
    const haproxy = await client();
    await haproxy.hello({ maxFrameSize: 256 });
    const ack = await haproxy.notify([checkRateMessage()]);
    expect(ack.actions).toEqual([]);
    expect(errors.map((e) => [e.kind, e.error.name])).toEqual([["encoding", "AckEncodingError"]]);
  });
});

describe("noEmptyAck (for HAProxy 3.1.0 – 3.2-dev6)", () => {
  const empty: Message = spoeMessage("nothing", {});

  it("adds UNSET-VAR txn.noop to an ACK that would be empty, and only then", async () => {
    const { ready } = await startAgent({ noEmptyAck: true }, (agent) =>
      agent.message("score", (m) => {
        m.setVar(Scope.SESS, "ip_score", TypedValue.int32(0));
      }),
    );
    const haproxy = await ready();
    expect((await haproxy.notify([empty])).actions).toEqual([
      { type: ActionType.UNSET_VAR, scope: Scope.TXN, name: "noop" },
    ]);
    expect((await haproxy.notify([spoeMessage("score", {})])).actions).toEqual([score(0)]);
  });

  it("unsets the variable it is given, also when a failure empties the ACK", async () => {
    const { ready } = await startAgent(
      { noEmptyAck: { scope: Scope.REQ, name: "spoe_ok" }, failureAck: "empty" },
      (a) =>
        a.catchAll(() => {
          throw new Error("x");
        }),
    );
    expect((await (await ready()).notify([empty])).actions).toEqual([unsetVar(Scope.REQ, "spoe_ok")]);
  });

  it("is off by default: HAProxy gets an empty ACK", async () => {
    const { ready } = await startAgent();
    expect((await (await ready()).notify([empty])).actions).toEqual([]);
  });
});
