/**
 * `pnpm bench:compare <revision>`: the NOTIFY/ACK pair of this tree against the same pair at
 * another git revision, in one process, in short alternating windows — so that on a shared
 * machine both see the same load, and the ratio holds where absolute times do not. Run it on
 * one core (`taskset -c 0`). Prints, per pair, the median CPU time of each and the median of
 * the windows' own ratios.
 */
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const revision = process.argv[2];
if (revision === undefined) throw new Error("usage: pnpm bench:compare <git revision>");
const here = join(import.meta.dirname, "..", "src");
const other = mkdtempSync(join(tmpdir(), "spop-codec-"));
try {
  const root = execFileSync("git", ["rev-parse", "--show-toplevel"], { encoding: "utf8" }).trim();
  const archive = execFileSync("git", ["-C", root, "archive", revision, "packages/spop-codec/src"]);
  execFileSync("tar", ["-x", "-C", other], { input: archive });
  const load = async (src: string) =>
    ((await import(`./pair-loops.ts?src=${encodeURIComponent(src)}`)) as typeof import("./pair-loops.ts"))
      .loops;
  const [base, head] = [await load(join(other, "packages/spop-codec/src")), await load(here)];

  const WINDOW = 100_000;
  const WINDOWS = 21;
  const median = (values: number[]) =>
    [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)] as number;
  const cpu = (loop: (count: number) => number) => {
    const used = process.cpuUsage();
    loop(WINDOW);
    const { user, system } = process.cpuUsage(used);
    return ((user + system) * 1000) / WINDOW;
  };
  console.log(
    `NOTIFY decoded + ACK encoded, this tree against ${revision}: CPU ns per pair, median of ${WINDOWS} windows`,
  );
  for (const name of Object.keys(head) as (keyof typeof head)[]) {
    for (let i = 0; i < 10; i++) {
      base[name](WINDOW);
      head[name](WINDOW);
    }
    const then: number[] = [];
    const now: number[] = [];
    const ratios: number[] = [];
    for (let w = 0; w < WINDOWS; w++) {
      // Alternate which goes first, so that neither always follows the other's garbage.
      let before: number;
      let after: number;
      if (w % 2 === 0) {
        before = cpu(base[name]);
        after = cpu(head[name]);
      } else {
        after = cpu(head[name]);
        before = cpu(base[name]);
      }
      then.push(before);
      now.push(after);
      ratios.push(after / before);
    }
    console.log(
      `  ${name}: ${median(then).toFixed(0)} ns at ${revision}, ${median(now).toFixed(0)} ns now — ${median(ratios).toFixed(2)}× the time`,
    );
  }
} finally {
  rmSync(other, { recursive: true, force: true });
}
