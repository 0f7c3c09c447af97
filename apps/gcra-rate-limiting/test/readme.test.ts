/**
 * The README documents what the code defines: every setting of config.ts with its default, and
 * every metric the processes export, with its type.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { createValkeyLimiter } from "@spoekit/gcra";
import { afterAll, describe, expect, it } from "vitest";
import { createMetrics, createPrimaryMetrics, observeAgent, observeValkey } from "../src/metrics.ts";
import { createRuleMetrics } from "../src/rules/metrics.ts";
import { settings } from "../src/settings.ts";
import { appDir } from "./stack.ts";

const readme = readFileSync(join(appDir, "README.md"), "utf8");

/** The cells of the table rows whose first cell is `` `name` ``. */
function row(name: string): string[] | undefined {
  const line = readme.split("\n").find((l) => l.startsWith(`| \`${name}\``));
  return line
    ?.split("|")
    .slice(1, -1)
    .map((cell) => cell.trim());
}

describe("README.md", () => {
  it("lists every setting with its default", () => {
    for (const setting of Object.values(settings)) {
      const cells = row(setting.name);
      expect(cells, setting.name).toBeDefined();
      expect(cells?.[1], setting.name).toBe(setting.default === undefined ? "—" : `\`${setting.default}\``);
    }
  });

  // A Valkey limiter that never connects (port 1): its metrics exist from construction.
  const limiter = createValkeyLimiter({ nodes: ["redis://127.0.0.1:1"], mode: "standalone" });
  afterAll(() => limiter.close());

  it("documents every metric the app exports, with its type, and no other", async () => {
    const worker = createMetrics("valkey");
    const unsubscribe = observeAgent(worker.registry);
    observeValkey(worker.registry, limiter);
    createRuleMetrics(worker.registry);
    const primary = createPrimaryMetrics(() => 0);
    try {
      const exported = [
        ...(await worker.registry.getMetricsAsJSON()),
        ...(await primary.getMetricsAsJSON()),
      ].filter((metric) => /^(gcra|spoa)_/.test(metric.name));
      const documented = readme
        .split("\n")
        .map((line) => /^\| `((?:gcra|spoa)_\w+)`\s*\|\s*(\w+)/.exec(line))
        .filter((match) => match !== null)
        .map((match) => [match[1], match[2]]);
      expect(Object.fromEntries(documented)).toEqual(
        Object.fromEntries(exported.map((metric) => [metric.name, metric.type])),
      );
    } finally {
      unsubscribe();
    }
  });
});
