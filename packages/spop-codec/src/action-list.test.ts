import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { actionArb } from "../test/arbitraries.ts";
import { expectSpopError } from "../test/expect-spop-error.ts";
import { ActionList } from "./action-list.ts";
import { ActionType, DisconnectStatus, Scope } from "./constants.ts";
import { decodeFrame } from "./frame-decoder.ts";
import { FrameWriter } from "./frame-encoder.ts";
import { setVar, unsetVar } from "./frames.ts";
import { type Action, TypedValue } from "./types.ts";

function fill(list: ActionList, actions: readonly Action[]): ActionList {
  for (const action of actions) {
    if (action.type === ActionType.SET_VAR) list.setVar(action.scope, action.name, action.value);
    else list.unsetVar(action.scope, action.name);
  }
  return list;
}

describe("ActionList", () => {
  it("is written as the same bytes as the array of its actions, reused from ACK to ACK", () => {
    const writer = new FrameWriter({ maxFrameSize: 1 << 20 });
    const list = new ActionList(); // one list for every case, cleared in between
    fc.assert(
      fc.property(fc.array(actionArb, { maxLength: 8 }), fc.nat(1000), (actions, streamId) => {
        writer.writeAck(streamId, 1, actions);
        const fromArray = Buffer.from(writer.flush());
        fill(list, actions);
        expect(list).toHaveLength(actions.length);
        expect(list.toArray()).toEqual(actions);
        writer.writeAck(streamId, 1, list);
        expect(writer.flush().toString("hex")).toBe(fromArray.toString("hex"));
        list.clear();
        expect(list).toHaveLength(0);
      }),
      { numRuns: 500 },
    );
  });

  it("reads back each action: type, scope, name and value", () => {
    const value = TypedValue.string("x");
    const list = new ActionList().setVar(Scope.SESS, "a", value).unsetVar(Scope.TXN, "b");
    expect([list.type(0), list.scope(0), list.name(0), list.value(0)]).toEqual([
      ActionType.SET_VAR,
      Scope.SESS,
      "a",
      value,
    ]);
    expect([list.type(1), list.scope(1), list.name(1), list.value(1)]).toEqual([
      ActionType.UNSET_VAR,
      Scope.TXN,
      "b",
      undefined,
    ]);
    expect(list.toArray()).toEqual([setVar(Scope.SESS, "a", value), unsetVar(Scope.TXN, "b")]);
  });

  it("keeps nothing of an ACK once cleared: the next ACK has only its own actions", () => {
    const list = new ActionList().setVar(Scope.SESS, "old", TypedValue.string("secret"));
    list.clear();
    // The slot the old action used holds neither its name nor its value any more.
    expect([list.name(0), list.value(0)]).toEqual(["", undefined]);
    list.unsetVar(Scope.REQ, "new");
    expect(list.toArray()).toEqual([unsetVar(Scope.REQ, "new")]);
    const writer = new FrameWriter();
    writer.writeAck(1, 1, list);
    expect(decodeFrame(writer.flush())).toMatchObject({ actions: [unsetVar(Scope.REQ, "new")] });
  });

  it("is refused whole by the writer, as an array is, and left as it was", () => {
    const writer = new FrameWriter();
    writer.writeAck(1, 1, new ActionList().setVar(Scope.TXN, "ok", TypedValue.int32(1)));
    const badScope = new ActionList().setVar(7 as Scope, "v", TypedValue.int32(1));
    expectSpopError(() => writer.writeAck(2, 1, badScope), {
      status: DisconnectStatus.INVALID_FRAME,
      field: "variable scope",
    });
    const outOfRange = new ActionList()
      .setVar(Scope.TXN, "a", TypedValue.int32(1))
      .setVar(Scope.TXN, "b", TypedValue.int32(2 ** 40));
    expectSpopError(() => writer.writeAck(3, 1, outOfRange), {
      status: DisconnectStatus.INVALID_FRAME,
      field: "variable value",
    });
    expect(outOfRange).toHaveLength(2);
    const frames = writer.flush();
    expect(decodeFrame(frames)).toMatchObject({
      streamId: 1,
      actions: [setVar(Scope.TXN, "ok", TypedValue.int32(1))],
    });
  });

  it("keeps a SET-VAR without a value as a SET-VAR, which the writer refuses (not an UNSET-VAR)", () => {
    const list = new ActionList().setVar(Scope.TXN, "v", null as unknown as TypedValue);
    expect(list.type(0)).toBe(ActionType.SET_VAR);
    expect(() => new FrameWriter().writeAck(1, 1, list)).toThrow(TypeError);
  });
});
