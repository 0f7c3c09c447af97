/**
 * Just enough PromQL reading to check queries against the series a process exports: the
 * metric names an expression selects and the label matchers it puts on each. Not a parser:
 * it knows the shapes the alerts and the dashboard use (selectors, range selectors, function
 * calls, aggregations with by/without, vector matching with on/ignoring/group_*).
 */

/** One label matcher of a selector, e.g. `outcome="denied"` or `source=~"open|closed"`. */
export interface Matcher {
  readonly label: string;
  readonly op: "=" | "!=" | "=~" | "!~";
  readonly value: string;
}

/** One vector selector: a metric name and its matchers. */
export interface Selector {
  readonly metric: string;
  readonly matchers: readonly Matcher[];
}

const keywords = new Set([
  "by",
  "without",
  "on",
  "ignoring",
  "group_left",
  "group_right",
  "and",
  "or",
  "unless",
]);
const keywordsAlone = new Set([...keywords, "bool", "offset", "inf", "nan"]);

/** The selectors of `expr`, in order of appearance. */
export function selectors(expr: string): Selector[] {
  const found: Selector[] = [];
  // Label lists of aggregations and vector matching are label names, not metrics.
  let rest = expr.replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, " ");
  // Range and subquery durations.
  rest = rest.replace(/\[[^\]]*\]/g, " ");
  rest = rest.replace(
    /([a-zA-Z_:][\w:]*)?\s*\{([^}]*)\}/g,
    (_all, metric: string | undefined, body: string) => {
      const matchers = [...body.matchAll(/(\w+)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"/g)].map((m) => ({
        label: m[1] ?? "",
        op: m[2] as Matcher["op"],
        value: m[3] ?? "",
      }));
      const named = metric ?? matchers.find((m) => m.label === "__name__" && m.op === "=")?.value;
      if (!named || keywords.has(named)) throw new Error(`a selector without a metric name in: ${expr}`);
      found.push({ metric: named, matchers });
      return " ";
    },
  );
  for (const match of rest.matchAll(/(?<![\w:.])([a-zA-Z_:][\w:]*)(\s*\()?/g)) {
    const [, name = "", call] = match;
    if (call || keywordsAlone.has(name.toLowerCase())) continue;
    found.push({ metric: name, matchers: [] });
  }
  return found;
}

/** The values a matcher accepts, when it is `=` or a regular expression of plain alternatives. */
export function acceptedValues(matcher: Matcher): string[] | undefined {
  if (matcher.op === "=") return [matcher.value];
  if (matcher.op === "=~" && /^[\w|-]+$/.test(matcher.value)) return matcher.value.split("|");
  return undefined;
}
