import { describe, expect, it } from "vitest";
import { acceptedValues, selectors } from "./promql.ts";

describe("selectors", () => {
  it("finds every selector of an expression with aggregations, functions and vector matching", () => {
    const expr = `histogram_quantile(0.99, sum by (namespace, le) (rate(spoa_notify_duration_seconds_bucket{job="a", outcome=~"ok|error"}[5m])))
      > 0.005 and on (namespace) max without (pod) (up) unless bare_metric offset 5m`;
    expect(selectors(expr)).toEqual([
      {
        metric: "spoa_notify_duration_seconds_bucket",
        matchers: [
          { label: "job", op: "=", value: "a" },
          { label: "outcome", op: "=~", value: "ok|error" },
        ],
      },
      { metric: "up", matchers: [] },
      { metric: "bare_metric", matchers: [] },
    ]);
  });

  it("refuses an expression Prometheus would not parse", () => {
    expect(() => selectors(`sum(rate(x[5m])`)).toThrow(/does not parse/);
    expect(() => selectors(`x{a="b"} >`)).toThrow(/does not parse/);
  });

  it("reads a selector by __name__ and refuses one without a name", () => {
    expect(selectors(`{__name__="x", a!="b"}`)).toEqual([
      {
        metric: "x",
        matchers: [
          { label: "__name__", op: "=", value: "x" },
          { label: "a", op: "!=", value: "b" },
        ],
      },
    ]);
    expect(() => selectors(`sum({a="b"})`)).toThrow(/without a metric name|does not parse/);
  });
});

describe("acceptedValues", () => {
  it("lists the values of equality and of plain alternatives, nothing for other regexes", () => {
    expect(acceptedValues({ label: "a", op: "=", value: "x" })).toEqual(["x"]);
    expect(acceptedValues({ label: "a", op: "=~", value: "open|closed" })).toEqual(["open", "closed"]);
    expect(acceptedValues({ label: "a", op: "=~", value: "gcra-.*" })).toBeUndefined();
    expect(acceptedValues({ label: "a", op: "!=", value: "x" })).toBeUndefined();
  });
});
