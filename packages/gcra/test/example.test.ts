import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { type RedisServer, startRedis, type TlsMaterial } from "@spoekit/harness";
import { afterAll, beforeAll, expect, it } from "vitest";

let redis: RedisServer;
beforeAll(async () => {
  redis = await startRedis({ tls: true });
}, 30_000);
afterAll(async () => {
  await redis?.stop();
});

/** Runs the example's self-test and returns the status codes of its 40 requests. */
function runExample(env: NodeJS.ProcessEnv): number[] {
  const script = fileURLToPath(new URL("../examples/http-server.ts", import.meta.url));
  const run = spawnSync(process.execPath, ["--conditions=@spoekit/source", script], {
    // Bursts of 20, then one request per 1000 s: however slowly the 40 requests arrive on a busy
    // machine, nothing refills in between.
    env: {
      ...process.env,
      EXAMPLE_SELF_TEST: "1",
      PORT: "0",
      RATE: "0.001",
      BURST: "20",
      VALKEY_NODES: "",
      ...env,
    },
    encoding: "utf8",
    timeout: 20_000,
  });
  expect(run.status, run.stderr).toBe(0);
  const codes = run.stdout.trim().split("\n").pop()?.split(" ").map(Number) ?? [];
  // In whatever order they arrive: the first 20 pass, the other 20 get 429.
  expect([...codes].sort()).toEqual([...new Array<number>(20).fill(200), ...new Array<number>(20).fill(429)]);
  return codes;
}

/** Script calls the server answered since the last `CONFIG RESETSTAT`. */
async function scriptCalls(): Promise<number> {
  const stats = String(await redis.command("INFO", "commandstats"));
  const calls = [...stats.matchAll(/cmdstat_eval(?:sha)?:calls=(\d+)/g)].map((match) => Number(match[1]));
  return calls.reduce((sum, n) => sum + n, 0);
}

it("runs the README's HTTP server example: the burst passes, the rest gets 429", () => {
  runExample({});
});

it.each([
  ["with its CA in VALKEY_CA_FILE", (tls: TlsMaterial) => ({ VALKEY_CA_FILE: tls.caFile })],
  ["with its CA in Node's NODE_EXTRA_CA_CERTS", (tls: TlsMaterial) => ({ NODE_EXTRA_CA_CERTS: tls.caFile })],
])("runs the example on a rediss:// Valkey %s", async (_, caEnv) => {
  await redis.command("FLUSHALL");
  await redis.command("CONFIG", "RESETSTAT");
  // A deadline that a busy test machine cannot miss: the failure policy must not answer here.
  const env = { VALKEY_NODES: redis.url, VALKEY_TIMEOUT_MS: "2000", ...caEnv(redis.tls as TlsMaterial) };
  const codes = runExample(env);
  // Every admitted request was Valkey's decision (not the fallback's), over TLS.
  expect(await scriptCalls()).toBeGreaterThanOrEqual(codes.filter((code) => code === 200).length);
});
