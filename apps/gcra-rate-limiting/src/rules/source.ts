import { EventEmitter } from "node:events";
import { type FSWatcher, readFileSync, watch } from "node:fs";
import { dirname } from "node:path";
import type { GcraLimit } from "@spoekit/gcra";
import { parseRules, type Rule, type RuleSet, RulesError } from "./parse.ts";

/** Reads a rules file and parses it; an unreadable file is a {@link RulesError} too. */
export function loadRules(file: string, readFile: (path: string) => string = readText): RuleSet {
  return parseRules(read(file, readFile), file);
}

function readText(path: string): string {
  return readFileSync(path, "utf8");
}

function read(file: string, readFile: (path: string) => string): string {
  try {
    return readFile(file);
  } catch (error) {
    throw new RulesError(file, 0, `cannot read the file: ${(error as Error).message}`, { cause: error });
  }
}

/** Events of {@link RulesFile}. */
export interface RulesFileEvents {
  /** A changed file was applied. */
  applied: [rules: RuleSet];
  /** A changed file was refused; the rules in force stay. */
  refused: [error: RulesError];
}

/** How long file events are gathered before the file is read (a ConfigMap swap is several events). */
const SETTLE_MS = 100;
/** The file is also read this often, in case the file system reports no event. */
const POLL_MS = 1000;

/**
 * The rules in force and their live reload. {@link RulesFile.reload} reads the file and, when
 * its text changed, applies the new rules at once (one reference swap: a message is decided
 * wholly under the old or wholly under the new rules) or, when invalid, refuses it and keeps the
 * old ones. A rule whose name, rate and burst are unchanged keeps its `GcraLimit` (so its keys
 * keep their state, and the deny cache its entries). {@link RulesFile.watch} reloads on changes
 * in the file's directory — where a Kubernetes ConfigMap volume swaps its `..data` symlink — and
 * every second.
 */
export class RulesFile extends EventEmitter<RulesFileEvents> {
  readonly path: string;
  readonly #readFile: (path: string) => string;
  #current: RuleSet;
  #text: string;
  #watcher: FSWatcher | undefined;
  #poll: NodeJS.Timeout | undefined;
  #settle: NodeJS.Timeout | undefined;
  /** The last refusal reported, so that polling an unreadable file reports it once. */
  #refused: string | undefined;

  /** Loads the file. @throws RulesError when it cannot be read or is invalid. */
  constructor(path: string, readFile: (path: string) => string = readText) {
    super();
    this.path = path;
    this.#readFile = readFile;
    this.#text = read(path, readFile);
    this.#current = parseRules(this.#text, path);
  }

  /** The rules in force. */
  get current(): RuleSet {
    return this.#current;
  }

  /**
   * Reads the file again. Unchanged text: nothing happens (`"unchanged"`). Valid: applied
   * (`"applied"`, event `applied`). Invalid or unreadable: refused (`"refused"`, event
   * `refused`), the rules in force stay — and the same text is not reported again.
   */
  reload(): "unchanged" | "applied" | "refused" {
    let text: string;
    let next: RuleSet;
    try {
      text = read(this.path, this.#readFile);
      if (text === this.#text) {
        this.#refused = undefined;
        return "unchanged";
      }
      this.#text = text;
      next = parseRules(text, this.path);
    } catch (error) {
      if (!(error instanceof RulesError)) throw error;
      // An unreadable file is read again at the next event or poll; each problem is reported once.
      if (error.message !== this.#refused) this.emit("refused", error);
      this.#refused = error.message;
      return "refused";
    }
    this.#refused = undefined;
    this.#current = keepLimits(this.#current, next);
    this.emit("applied", this.#current);
    return "applied";
  }

  /** Starts watching the file's directory (and polling). Idempotent. */
  watch(): void {
    if (this.#watcher !== undefined) return;
    const schedule = () => {
      if (this.#settle !== undefined) return;
      this.#settle = setTimeout(() => {
        this.#settle = undefined;
        this.reload();
      }, SETTLE_MS);
      this.#settle.unref();
    };
    this.#watcher = watch(dirname(this.path), { persistent: false }, schedule);
    this.#watcher.on("error", () => undefined);
    this.#poll = setInterval(() => this.reload(), POLL_MS);
    this.#poll.unref();
  }

  /** Stops watching. */
  close(): void {
    this.#watcher?.close();
    this.#watcher = undefined;
    clearInterval(this.#poll);
    clearTimeout(this.#settle);
    this.#settle = undefined;
  }
}

/** `next` with the `GcraLimit` of each rule of `previous` of the same name, rate and burst. */
function keepLimits(previous: RuleSet, next: RuleSet): RuleSet {
  const limits = new Map<string, GcraLimit>(previous.rules.map((rule) => [rule.name, rule.limit]));
  const rules = next.rules.map((rule): Rule => {
    const old = limits.get(rule.name);
    const same =
      old !== undefined &&
      old.emissionIntervalUs === rule.limit.emissionIntervalUs &&
      old.burstToleranceUs === rule.limit.burstToleranceUs;
    return same ? { ...rule, limit: old } : rule;
  });
  return { ...next, rules };
}
