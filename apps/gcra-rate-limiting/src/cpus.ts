import { readFileSync } from "node:fs";
import { availableParallelism } from "node:os";

/** The number of CPUs this process may use: the cgroup CPU quota when there is one, else the CPU count. */
export function allowedCpus(
  readFile: (path: string) => string = (path) => readFileSync(path, "utf8"),
): number {
  const cpus = availableParallelism();
  const quota = (() => {
    try {
      // cgroup v2: "max 100000" or "<quota> <period>"
      const [max, period] = readFile("/sys/fs/cgroup/cpu.max").trim().split(/\s+/);
      if (max && max !== "max" && period) return Number(max) / Number(period);
    } catch {
      try {
        const max = Number(readFile("/sys/fs/cgroup/cpu/cpu.cfs_quota_us").trim());
        const period = Number(readFile("/sys/fs/cgroup/cpu/cpu.cfs_period_us").trim());
        if (max > 0 && period > 0) return max / period;
      } catch {
        // no cgroup CPU controller visible: fall back to the CPU count
      }
    }
    return undefined;
  })();
  return quota === undefined ? cpus : Math.max(1, Math.min(cpus, Math.ceil(quota)));
}
