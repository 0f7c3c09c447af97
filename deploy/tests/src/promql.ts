/**
 * PromQL read with Prometheus's own grammar (@prometheus-io/lezer-promql, the parser of
 * Prometheus's web UI): whether an expression parses, and the metric names and label matchers
 * of its vector selectors, to check queries against the series a process exports.
 */
import type { SyntaxNode } from "@lezer/common";
import { parser } from "@prometheus-io/lezer-promql";

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

/** Thrown for an expression Prometheus would not parse, naming where. */
export class PromqlSyntaxError extends Error {
  readonly code = "PROMQL_SYNTAX";
  override readonly name = "PromqlSyntaxError";
}

function matcherOf(node: SyntaxNode, text: (n: SyntaxNode | null) => string): Matcher {
  const op = text(node.getChild("MatchOp"));
  const literal = text(node.getChild("StringLiteral"));
  return {
    label: text(node.getChild("LabelName")),
    op: op as Matcher["op"],
    value: JSON.parse(literal.startsWith("'") ? `"${literal.slice(1, -1)}"` : literal) as string,
  };
}

/** The vector selectors of `expr`, in order; throws {@link PromqlSyntaxError} when it does not parse. */
export function selectors(expr: string): Selector[] {
  const tree = parser.parse(expr);
  const text = (n: SyntaxNode | null) => (n ? expr.slice(n.from, n.to) : "");
  const found: Selector[] = [];
  let error: number | undefined;
  tree.iterate({
    enter(ref) {
      if (ref.type.isError) error ??= ref.from;
      if (ref.name !== "VectorSelector") return;
      const node = ref.node;
      const matchers = (node.getChild("LabelMatchers")?.getChildren("UnquotedLabelMatcher") ?? []).map((m) =>
        matcherOf(m, text),
      );
      const metric = text(node.getChild("Identifier")) || matchers.find((m) => m.label === "__name__")?.value;
      if (!metric) throw new PromqlSyntaxError(`a selector without a metric name in: ${expr}`);
      found.push({ metric, matchers });
    },
  });
  if (error !== undefined) {
    throw new PromqlSyntaxError(
      `PromQL does not parse at offset ${error}: ${expr.slice(error, error + 40)}…`,
    );
  }
  return found;
}

/** The values a matcher accepts, when it is `=` or a regular expression of plain alternatives. */
export function acceptedValues(matcher: Matcher): string[] | undefined {
  if (matcher.op === "=") return [matcher.value];
  if (matcher.op === "=~" && /^[\w|-]+$/.test(matcher.value)) return matcher.value.split("|");
  return undefined;
}
