import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { expect, it } from "vitest";

it("runs the README's HTTP server example: the burst passes, the rest gets 429", () => {
  const script = fileURLToPath(new URL("../examples/http-server.ts", import.meta.url));
  const run = spawnSync(process.execPath, ["--conditions=@spoekit/source", script], {
    env: { ...process.env, EXAMPLE_SELF_TEST: "1", PORT: "0", VALKEY_NODES: "" },
    encoding: "utf8",
    timeout: 20_000,
  });
  expect(run.status, run.stderr).toBe(0);
  const codes = run.stdout.trim().split("\n").pop()?.split(" ").map(Number) ?? [];
  expect(codes).toHaveLength(40);
  // 40 requests at once against 100/s with bursts of 20: the burst passes, plus one per 10 ms
  // that the 40 requests take to arrive.
  const passed = codes.filter((code) => code === 200).length;
  expect(passed).toBeGreaterThanOrEqual(20);
  expect(passed).toBeLessThan(30);
  expect(codes.filter((code) => code === 429)).toHaveLength(40 - passed);
});
