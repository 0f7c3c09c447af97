import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { type RedisServer, startRedis, type TlsMaterial } from "@spoekit/harness";
import { afterAll, beforeAll, expect, it } from "vitest";
import { GcraLimit } from "../src/index.ts";

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
    env: { ...process.env, EXAMPLE_SELF_TEST: "1", PORT: "0", VALKEY_NODES: "", ...env },
    encoding: "utf8",
    timeout: 20_000,
  });
  expect(run.status, run.stderr).toBe(0);
  const { statuses: codes, tookUs } = JSON.parse(run.stdout.trim().split("\n").pop() ?? "{}") as {
    statuses: number[];
    tookUs: number;
  };
  expect(codes).toHaveLength(40);
  // 40 requests at once against 100/s with bursts of 20: the burst passes, plus what refills
  // while they arrive. Every decision fell between the first request and the last answer, a
  // window of tookUs: GCRA admits at most floor((W + τ) / T) in any window W — exact however
  // busy the machine is (the refill is counted from the time the requests really took).
  const example = new GcraLimit({ rate: 100, burst: 20 });
  const bound = Math.floor((tookUs + example.burstToleranceUs) / example.emissionIntervalUs);
  const passed = codes.filter((code) => code === 200).length;
  expect(passed).toBeGreaterThanOrEqual(20);
  expect(passed).toBeLessThanOrEqual(bound);
  expect(codes.filter((code) => code === 429)).toHaveLength(40 - passed);
  return codes;
}

/** Script calls the server answered since the last `CONFIG RESETSTAT`. */
async function scriptCalls(): Promise<number> {
  const stats = String(await redis.command("INFO", "commandstats"));
  const calls = [...stats.matchAll(/cmdstat_eval(?:sha)?:calls=(\d+)/g)].map((match) => Number(match[1]));
  return calls.reduce((sum, n) => sum + n, 0);
}

/** The example's process may take as long as `runExample` lets it (starting Node, TLS): its time is the machine's. */
const EXAMPLE_TIMEOUT_MS = 30_000;

it(
  "runs the README's HTTP server example: the burst passes, the rest gets 429",
  () => {
    runExample({});
  },
  EXAMPLE_TIMEOUT_MS,
);

it.each([
  ["with its CA in VALKEY_CA_FILE", (tls: TlsMaterial) => ({ VALKEY_CA_FILE: tls.caFile })],
  ["with its CA in Node's NODE_EXTRA_CA_CERTS", (tls: TlsMaterial) => ({ NODE_EXTRA_CA_CERTS: tls.caFile })],
])(
  "runs the example on a rediss:// Valkey %s",
  async (_, caEnv) => {
    await redis.command("FLUSHALL");
    await redis.command("CONFIG", "RESETSTAT");
    // A deadline that a busy test machine cannot miss: the failure policy must not answer here.
    const env = { VALKEY_NODES: redis.url, VALKEY_TIMEOUT_MS: "2000", ...caEnv(redis.tls as TlsMaterial) };
    const codes = runExample(env);
    // Every admitted request was Valkey's decision (not the fallback's), over TLS.
    expect(await scriptCalls()).toBeGreaterThanOrEqual(codes.filter((code) => code === 200).length);
  },
  EXAMPLE_TIMEOUT_MS,
);
