/**
 * JS heap bytes allocated per operation, for benchmarks: in a process started with `--expose-gc`
 * and a young generation no sample fills (e.g. `--max-semi-space-size=256
 * --min-semi-space-size=256`), the growth of `heapUsed` over a sample is every byte allocated,
 * provided no GC ran during it — a `PerformanceObserver` sees each GC, and a sample with one is
 * taken again.
 */
import { PerformanceObserver } from "node:perf_hooks";

/** Samples heap growth per operation; {@link HeapSampler.stop} once done. */
export interface HeapSampler {
  /** Bytes allocated per operation by `run`, which performs `count` operations. */
  perOperation(run: () => Promise<unknown> | unknown, count: number): Promise<number>;
  stop(): void;
}

/** Starts watching GCs; throws unless the process runs with `--expose-gc`. */
export function heapSampler(): HeapSampler {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (!gc) throw new Error("run with --expose-gc");
  const gcs: number[] = [];
  const observer = new PerformanceObserver((list) => {
    for (const entry of list.getEntries()) gcs.push(entry.startTime, entry.startTime + entry.duration);
  });
  observer.observe({ entryTypes: ["gc"] });
  return {
    async perOperation(run, count) {
      for (let attempt = 0; attempt < 20; attempt++) {
        gc();
        await new Promise((resolve) => setImmediate(resolve));
        const t0 = performance.now();
        const before = process.memoryUsage().heapUsed;
        await run();
        const after = process.memoryUsage().heapUsed;
        const t1 = performance.now();
        // GC entries are delivered asynchronously: let them arrive before looking.
        await new Promise((resolve) => setTimeout(resolve, 10));
        const collected = gcs.some((t) => t >= t0 && t <= t1);
        gcs.length = 0;
        if (!collected) return (after - before) / count;
      }
      throw new Error("a GC ran during every sample: raise --max-semi-space-size");
    },
    stop: () => observer.disconnect(),
  };
}
