/**
 * The actions of an ACK kept flat, for an agent that answers NOTIFY after NOTIFY: one reusable
 * list instead of an action object per variable. {@link FrameWriter.writeAck} encodes it as it
 * encodes an array of actions.
 */
import { ActionType, type Scope } from "./constants.ts";
import { setVar, unsetVar } from "./frames.ts";
import type { Action, TypedValue } from "./types.ts";

/** The value slot of an UNSET-VAR (any value given to SET-VAR, even `null`, is kept as given). */
export const UNSET: unique symbol = Symbol("UNSET-VAR");

/** A slot of {@link ActionList}'s array: a scope, a name, a value or {@link UNSET}. */
export type ActionSlot = Scope | string | TypedValue | typeof UNSET;

/**
 * Internal to the codec: the slots of `list` (scope, name, value of each action, back to back;
 * `3 * list.length` of them are in use), for the writer to encode them without a call per field.
 */
export let actionSlots: (list: ActionList) => readonly ActionSlot[];

/**
 * A reusable list of SET-VAR and UNSET-VAR actions, stored flat (scope, name and value of each
 * action side by side in one array): adding an action allocates nothing once the array has
 * grown to the list's usual size, and {@link ActionList.clear} keeps it for the next ACK. Hand
 * it to {@link FrameWriter.writeAck} in place of an `Action[]` — the bytes are the same.
 *
 * Like the builders {@link setVar} and {@link unsetVar}, adding checks nothing; the writer checks
 * scopes, names and values when it encodes the ACK.
 *
 * @example
 * ```ts
 * const actions = new ActionList(); // one per in-flight NOTIFY, reused
 * actions.setVar(Scope.SESS, "ip_score", TypedValue.int32(0));
 * writer.writeAck(notify.streamId, notify.frameId, actions);
 * actions.clear();
 * ```
 */
export class ActionList {
  /**
   * Scope, name and value of each action, back to back in one array (three slots per action):
   * one store to touch per ACK, not three. The value is {@link UNSET} for UNSET-VAR.
   */
  readonly #slots: ActionSlot[] = [];
  #length = 0;

  static {
    actionSlots = (list) => list.#slots;
  }

  /** How many actions the list holds. */
  get length(): number {
    return this.#length;
  }

  /** Adds SET-VAR: HAProxy sets `<scope>.<var-prefix>.<name>` to `value`. */
  setVar(scope: Scope, name: string, value: TypedValue): this {
    this.#add(scope, name, value);
    return this;
  }

  /** Adds UNSET-VAR: HAProxy unsets `<scope>.<var-prefix>.<name>`. */
  unsetVar(scope: Scope, name: string): this {
    this.#add(scope, name, UNSET);
    return this;
  }

  #add(scope: Scope, name: string, value: TypedValue | typeof UNSET): void {
    const at = 3 * this.#length++;
    const slots = this.#slots;
    slots[at] = scope;
    slots[at + 1] = name;
    slots[at + 2] = value;
  }

  /** The type of action `index` (0 ≤ index < length): `ActionType.SET_VAR` or `ActionType.UNSET_VAR`. */
  type(index: number): ActionType {
    return this.#slots[3 * index + 2] === UNSET ? ActionType.UNSET_VAR : ActionType.SET_VAR;
  }

  /** The scope of action `index`. */
  scope(index: number): Scope {
    return this.#slots[3 * index] as Scope;
  }

  /** The variable name of action `index`. */
  name(index: number): string {
    return this.#slots[3 * index + 1] as string;
  }

  /** The value of action `index` when it is a SET-VAR, `undefined` for an UNSET-VAR. */
  value(index: number): TypedValue | undefined {
    const value = this.#slots[3 * index + 2] as TypedValue | typeof UNSET;
    return value === UNSET ? undefined : value;
  }

  /**
   * Empties the list. The array keeps its room; the names and values it held are let go (a list
   * reused for the life of a connection must not keep an old ACK's values alive).
   */
  clear(): void {
    const slots = this.#slots;
    const end = 3 * this.#length;
    for (let at = 0; at < end; at += 3) {
      slots[at + 1] = "";
      slots[at + 2] = UNSET;
    }
    this.#length = 0;
  }

  /** The actions as objects, as {@link setVar} and {@link unsetVar} build them. */
  toArray(): Action[] {
    const actions: Action[] = [];
    for (let i = 0; i < this.#length; i++) {
      const scope = this.scope(i);
      const name = this.name(i);
      actions.push(
        this.type(i) === ActionType.UNSET_VAR
          ? unsetVar(scope, name)
          : setVar(scope, name, this.value(i) as TypedValue),
      );
    }
    return actions;
  }
}
