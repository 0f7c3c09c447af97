import { Writable } from "node:stream";
import { freePort, type RedisServer, startRedis, waitFor } from "@spoekit/harness";
import { type Logger, pino } from "pino";
import { describe, expect, it } from "vitest";
import { loadConfig } from "./config.ts";
import { createLimiter } from "./limiter.ts";

/** A pino logger whose JSON lines the test reads. */
function capturedLog(): { log: Logger; lines: () => Record<string, unknown>[] } {
  const chunks: string[] = [];
  const sink = new Writable({
    write(chunk, _encoding, done) {
      chunks.push(String(chunk));
      done();
    },
  });
  const log: Logger = pino({ level: "debug" }, sink);
  return {
    log,
    lines: () =>
      chunks
        .join("")
        .split("\n")
        .filter((line) => line !== "")
        .map((line) => JSON.parse(line) as Record<string, unknown>),
  };
}

describe("the limiter's log of store transitions", () => {
  it("logs one line when Valkey is unreachable and one when it answers again, however many calls fail", async () => {
    const port = await freePort();
    const config = loadConfig({
      VALKEY_NODES: `redis://127.0.0.1:${port}`,
      VALKEY_MODE: "standalone",
      SPOA_FAILURE_POLICY: "open",
    });
    const { log, lines } = capturedLog();
    const limiter = createLimiter(config, log);
    let redis: RedisServer | undefined;
    try {
      await waitFor(() => lines().some((line) => line.event === "unreachable"), {
        what: "the unreachable line",
        timeoutMs: 10_000,
      });
      for (let i = 0; i < 20; i++) await limiter.decide(`10.0.0.${i}`);
      redis = await startRedis({ port });
      expect(await limiter.warmUp(10_000)).toBe(true);
      await waitFor(() => lines().some((line) => line.event === "circuit-closed"), {
        what: "the circuit-closed line",
        timeoutMs: 10_000,
      });
      const transitions = lines().filter((line) => line.event !== "error");
      expect(transitions.map((line) => [line.level, line.event, line.msg])).toEqual([
        [40, "unreachable", "Valkey is unreachable"],
        [40, "circuit-open", "the failure policy answers for this Valkey shard"],
        [30, "recovered", "Valkey answers again"],
        [30, "circuit-closed", "Valkey decides for this shard again"],
      ]);
      expect(transitions[0]).toMatchObject({ node: `127.0.0.1:${port}`, code: "GCRA_STORE_CONNECTION" });
      // Twenty failed calls, one line per distinct failure, each with no stack.
      const errors = lines().filter((line) => line.event === "error");
      expect(errors.length).toBeLessThan(5);
      for (const line of errors) expect(line).not.toHaveProperty("err");
    } finally {
      await limiter.close();
      await redis?.stop();
    }
  });
});
