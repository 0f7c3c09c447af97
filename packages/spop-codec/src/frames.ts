/** Builders of the frames and actions an agent or a HAProxy-playing client sends most. */
import { ActionType, FrameFlags, FrameType, type Scope } from "./constants.ts";
import type {
  AckFrame,
  Action,
  Message,
  NotifyFrame,
  SetVarAction,
  TypedValue,
  UnsetVarAction,
} from "./types.ts";

/** A SET-VAR action: HAProxy sets `<scope>.<var-prefix>.<name>` to `value`. */
export function setVar(scope: Scope, name: string, value: TypedValue): SetVarAction {
  return { type: ActionType.SET_VAR, scope, name, value };
}

/** An UNSET-VAR action. */
export function unsetVar(scope: Scope, name: string): UnsetVarAction {
  return { type: ActionType.UNSET_VAR, scope, name };
}

/** An ACK (FIN set) answering the NOTIFY with these ids. */
export function ackFrame(streamId: number, frameId: number, actions: readonly Action[]): AckFrame {
  return { type: FrameType.ACK, flags: FrameFlags.FIN, streamId, frameId, actions };
}

/** A NOTIFY (FIN set), as HAProxy sends it. */
export function notifyFrame(streamId: number, frameId: number, messages: readonly Message[]): NotifyFrame {
  return { type: FrameType.NOTIFY, flags: FrameFlags.FIN, streamId, frameId, messages };
}
