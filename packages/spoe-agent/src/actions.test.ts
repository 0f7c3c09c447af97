/**
 * The variables of an ACK are kept in its exchange's reused action list, and exchanges are
 * recycled into a pool every connection of the agent shares: NOTIFY after NOTIFY, on one
 * connection or several, each ACK must carry its own variables and nothing of an earlier one,
 * whether its handlers finish at once, after an await, or fail; a context kept past its NOTIFY
 * still shows its own connection and changes nothing.
 */
import { type Action, Scope, setVar, TypedValue, unsetVar } from "@spoekit/spop-codec";
import { afterEach, describe, expect, it } from "vitest";
import { cleanup, numberArg, startAgent } from "../test/helpers.ts";
import type { MessageContext } from "./index.ts";
import { spoeMessage } from "./testing/index.ts";

afterEach(cleanup);

/** NOTIFY `n` sets `n % 4` variables, all to `n`, and unsets one when `n` is odd. */
function expected(n: number): Action[] {
  const actions: Action[] = [];
  for (let k = 0; k < n % 4; k++) actions.push(setVar(Scope.TXN, `v${k}`, TypedValue.int32(n)));
  if (n % 2 === 1) actions.push(unsetVar(Scope.REQ, "gone"));
  return actions;
}

function answer(message: MessageContext): void {
  const n = numberArg(message, "n");
  for (let k = 0; k < n % 4; k++) message.setVar(Scope.TXN, `v${k}`, TypedValue.int32(n));
  if (n % 2 === 1) message.unsetVar(Scope.REQ, "gone");
}

const notifyN = (n: number) => [spoeMessage("m", { n: TypedValue.int32(n) })];

describe("the actions of an ACK", () => {
  it("are its own NOTIFY's only, on exchanges reused NOTIFY after NOTIFY", async () => {
    const { ready } = await startAgent({ maxInFlight: 3 }, (agent) => agent.catchAll(answer));
    const haproxy = await ready();
    // One at a time: every NOTIFY reuses the same exchange and action list.
    for (let n = 0; n < 12; n++) expect((await haproxy.notify(notifyN(n))).actions).toEqual(expected(n));
    // Pipelined beyond maxInFlight: exchanges are reused while others are in flight.
    const acks = await Promise.all(Array.from({ length: 40 }, (_, n) => haproxy.notify(notifyN(n))));
    expect(acks.map((ack) => ack.actions)).toEqual(Array.from({ length: 40 }, (_, n) => expected(n)));
  });

  it("are their own connection's only when the exchange that served one connection serves another", async () => {
    let kept: MessageContext | undefined;
    const connections: number[] = [];
    const { ready } = await startAgent({ maxInFlight: 1 }, (agent) =>
      agent.catchAll((message) => {
        connections.push(message.connection.id);
        if (kept === undefined) {
          kept = message;
          message.setVar(Scope.TXN, "first", TypedValue.int32(1));
          return;
        }
        kept.setVar(Scope.TXN, "stale", TypedValue.int32(1));
        kept.unsetVar(Scope.TXN, "stale");
        answer(message);
      }),
    );
    const first = await ready();
    expect((await first.notify(notifyN(0))).actions).toEqual([
      setVar(Scope.TXN, "first", TypedValue.int32(1)),
    ]);
    const second = await ready();
    for (let n = 1; n < 8; n++) {
      const client = n % 2 === 0 ? first : second;
      expect((await client.notify(notifyN(n))).actions).toEqual(expected(n));
    }
    const [firstId, secondId] = connections;
    expect(firstId).not.toBe(secondId);
    // The kept context still shows its own connection, not the one its exchange serves now.
    expect(kept?.connection.id).toBe(firstId);
    expect(kept?.connection.remotePort).toBe(first.socket.localPort);
    expect(kept?.actions).toEqual([]);
  });

  it("are set by async handlers after an await, NOTIFY after NOTIFY", async () => {
    const { ready } = await startAgent({ maxInFlight: 2 }, (agent) =>
      agent.catchAll(async (message) => {
        await null;
        answer(message);
      }),
    );
    const haproxy = await ready();
    for (let n = 0; n < 6; n++) expect((await haproxy.notify(notifyN(n))).actions).toEqual(expected(n));
    const acks = await Promise.all(Array.from({ length: 20 }, (_, n) => haproxy.notify(notifyN(n))));
    expect(acks.map((ack) => ack.actions)).toEqual(Array.from({ length: 20 }, (_, n) => expected(n)));
  });

  it("are read by handlers and the failure policy as action objects, a copy at each read", async () => {
    const seen: (readonly Action[])[] = [];
    const failures: (readonly Action[])[] = [];
    const { ready } = await startAgent(
      {
        maxInFlight: 1,
        failureAck: (failure) => {
          failures.push(failure.actions);
          return [...failure.actions, setVar(Scope.TXN, "failed", TypedValue.bool(true))];
        },
      },
      (agent) =>
        agent
          .message("first", (message) => {
            answer(message);
            seen.push(message.actions);
          })
          .message("second", (message) => {
            seen.push(message.actions);
            if (numberArg(message, "n") === 3) throw new Error("fails after the first set its variables");
          }),
    );
    const haproxy = await ready();
    const both = (n: number) => [
      spoeMessage("first", { n: TypedValue.int32(n) }),
      spoeMessage("second", { n: TypedValue.int32(n) }),
    ];
    expect((await haproxy.notify(both(3))).actions).toEqual([
      ...expected(3),
      setVar(Scope.TXN, "failed", TypedValue.bool(true)),
    ]);
    expect((await haproxy.notify(both(2))).actions).toEqual(expected(2));
    expect(failures).toEqual([expected(3)]);
    expect(seen).toEqual([expected(3), expected(3), expected(2), expected(2)]);
    // Each read is a snapshot of its own: the second NOTIFY did not change the first's.
    expect(seen[0]).not.toBe(seen[1]);
  });
});
