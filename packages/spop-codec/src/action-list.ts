/**
 * The actions of an ACK kept flat, for an agent that answers NOTIFY after NOTIFY: one reusable
 * list instead of an action object per variable. {@link FrameWriter.writeAck} encodes it as it
 * encodes an array of actions.
 */
import { ActionType, type Scope } from "./constants.ts";
import type { Action, TypedValue } from "./types.ts";

/** The value slot of an UNSET-VAR (any value given to SET-VAR, even `null`, is kept as given). */
const UNSET: unique symbol = Symbol("UNSET-VAR");

/**
 * A reusable list of SET-VAR and UNSET-VAR actions, stored as three parallel arrays (scope,
 * name, value): adding an action allocates nothing once the arrays have grown to the list's
 * usual size, and {@link ActionList.clear} keeps them for the next ACK. Hand it to
 * {@link FrameWriter.writeAck} in place of an `Action[]` — the bytes are the same.
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
  readonly #scopes: Scope[] = [];
  readonly #names: string[] = [];
  /** {@link UNSET} for UNSET-VAR. */
  readonly #values: (TypedValue | typeof UNSET)[] = [];
  #length = 0;

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
    const at = this.#length++;
    this.#scopes[at] = scope;
    this.#names[at] = name;
    this.#values[at] = value;
  }

  /** The type of action `index` (0 ≤ index < length): `ActionType.SET_VAR` or `ActionType.UNSET_VAR`. */
  type(index: number): ActionType {
    return this.#values[index] === UNSET ? ActionType.UNSET_VAR : ActionType.SET_VAR;
  }

  /** The scope of action `index`. */
  scope(index: number): Scope {
    return this.#scopes[index] as Scope;
  }

  /** The variable name of action `index`. */
  name(index: number): string {
    return this.#names[index] as string;
  }

  /** The value of action `index` when it is a SET-VAR, `undefined` for an UNSET-VAR. */
  value(index: number): TypedValue | undefined {
    const value = this.#values[index];
    return value === UNSET ? undefined : value;
  }

  /**
   * Empties the list. The arrays keep their room; the names and values they held are let go
   * (a list reused for the life of a connection must not keep an old ACK's values alive).
   */
  clear(): void {
    const names = this.#names;
    const values = this.#values;
    for (let i = 0; i < this.#length; i++) {
      names[i] = "";
      values[i] = UNSET;
    }
    this.#length = 0;
  }

  /** The actions as objects, as {@link setVar} and {@link unsetVar} build them. */
  toArray(): Action[] {
    const actions: Action[] = [];
    for (let i = 0; i < this.#length; i++) {
      const scope = this.#scopes[i] as Scope;
      const name = this.#names[i] as string;
      const value = this.#values[i] as TypedValue | typeof UNSET;
      actions.push(
        value === UNSET
          ? { type: ActionType.UNSET_VAR, scope, name }
          : { type: ActionType.SET_VAR, scope, name, value },
      );
    }
    return actions;
  }
}
