import type { Metric, MetricObjectWithValues, MetricValue, Registry } from "prom-client";

/**
 * Counters and histograms for the per-request path, where prom-client's own `inc()` and
 * `observe()` allocate (a closure, a label object, a hashed label string) on every call: here a
 * series is resolved once to a slot of plain numbers, updated without allocating, and turned
 * into prom-client's exposition (the same JSON its metrics produce, so the cluster aggregation
 * sums them alike) only when scraped.
 */

type Labels = Readonly<Record<string, string>>;
type Value = MetricValue<string> & { metricName?: string };

/** A metric registered in a prom-client registry by its `get()`, as prom-client's own are. */
abstract class HotMetric {
  readonly name: string;
  readonly help: string;
  readonly aggregator = "sum" as const;
  abstract readonly type: "counter" | "histogram";

  constructor(registry: Registry, name: string, help: string) {
    this.name = name;
    this.help = help;
    registry.registerMetric(this as unknown as Metric<string>);
  }

  protected abstract values(): Value[];

  async get(): Promise<MetricObjectWithValues<MetricValue<string>>> {
    return {
      name: this.name,
      help: this.help,
      type: this.type as never,
      aggregator: this.aggregator,
      collect: () => undefined,
      values: this.values(),
    };
  }
}

/** A counter whose series are created up front or on first use, then incremented in place. */
export class HotCounter extends HotMetric {
  readonly type = "counter" as const;
  readonly #series: { labels: Labels; value: number }[] = [];

  /** The increment function of the series with `labels` (shown at 0 from now on). */
  series(labels: Labels = {}): (by?: number) => void {
    const series = { labels, value: 0 };
    this.#series.push(series);
    return (by = 1) => {
      series.value += by;
    };
  }

  protected values(): Value[] {
    return this.#series.map(({ labels, value }) => ({ labels: { ...labels }, value }));
  }
}

/** A histogram with fixed buckets (seconds), one series per label set. */
export class HotHistogram extends HotMetric {
  readonly type = "histogram" as const;
  readonly #bounds: readonly number[];
  readonly #series: { labels: Labels; counts: Float64Array; sum: number; count: number }[] = [];

  constructor(registry: Registry, name: string, help: string, bounds: readonly number[]) {
    super(registry, name, help);
    this.#bounds = bounds;
  }

  /** The observe function of the series with `labels`. */
  series(labels: Labels = {}): (value: number) => void {
    const bounds = this.#bounds;
    const series = { labels, counts: new Float64Array(bounds.length + 1), sum: 0, count: 0 };
    this.#series.push(series);
    return (value) => {
      let i = 0;
      while (i < bounds.length && value > (bounds[i] as number)) i++;
      series.counts[i] = (series.counts[i] as number) + 1;
      series.sum += value;
      series.count++;
    };
  }

  protected values(): Value[] {
    const values: Value[] = [];
    for (const { labels, counts, sum, count } of this.#series) {
      let cumulative = 0;
      this.#bounds.forEach((bound, i) => {
        cumulative += counts[i] as number;
        values.push({
          labels: { le: bound, ...labels },
          value: cumulative,
          metricName: `${this.name}_bucket`,
        });
      });
      values.push({ labels: { le: "+Inf", ...labels }, value: count, metricName: `${this.name}_bucket` });
      values.push({ labels: { ...labels }, value: sum, metricName: `${this.name}_sum` });
      values.push({ labels: { ...labels }, value: count, metricName: `${this.name}_count` });
    }
    return values;
  }
}
