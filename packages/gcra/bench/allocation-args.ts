import { fileURLToPath } from "node:url";

/**
 * The arguments of `node` that run the benchmark's allocation measurement
 * (`allocationPerDecision` in `bench.ts`) against the servers at `nodes`: a child process with
 * `--expose-gc` and a young generation no sample fills, so that every byte allocated counts.
 */
export function allocationArgs(mode: "standalone" | "cluster", nodes: readonly string[]): string[] {
  return [
    "--expose-gc",
    "--max-semi-space-size=256",
    "--min-semi-space-size=256",
    "--conditions=@spoekit/source",
    fileURLToPath(new URL("./bench.ts", import.meta.url)),
    "--allocation",
    mode,
    ...nodes,
  ];
}
