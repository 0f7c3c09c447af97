/**
 * `pnpm fuzz`: the property suite with many more cases (default: 50 times the test suite's,
 * about 5 million). `--scale N` multiplies the suite's runs by N, `--seed S` replays a run.
 */
import { parseArgs } from "node:util";
import { checkProperty, type PropertyName, suiteRuns } from "./properties.ts";

const { values } = parseArgs({
  options: { scale: { type: "string", default: "50" }, seed: { type: "string" } },
});
const scale = Number(values.scale);
if (!Number.isFinite(scale) || scale <= 0)
  throw new Error(`--scale must be a positive number, not ${values.scale}`);
const seed = values.seed === undefined ? Date.now() % 2 ** 31 : Number(values.seed);

console.log(`fuzzing with seed ${seed} (replay: pnpm fuzz --scale ${scale} --seed ${seed})`);
let total = 0;
for (const [name, runs] of Object.entries(suiteRuns) as [PropertyName, number][]) {
  const count = Math.round(runs * scale);
  const started = performance.now();
  checkProperty(name, count, seed);
  total += count;
  console.log(
    `${name.padEnd(16)} ${String(count).padStart(10)} cases  ${((performance.now() - started) / 1000).toFixed(1)} s`,
  );
}
console.log(`${total} cases, no failure`);
