/**
 * HAProxy 2.6 and 3.0 (Debian bookworm's and trixie's) with the canonical configuration, the app
 * on a standalone valkey-server, and a tiny backend, all on loopback: what clients see.
 */
import { haproxyBinaries, type RedisServer, startRedis } from "@spoekit/harness";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { admittedCounts, paced, retryAfterSeconds } from "./gcra-run.ts";
import {
  type AppProcess,
  type Front,
  type HttpReply,
  startApp,
  startBackend,
  startProxy,
  total,
  waitForFirstVerdict,
} from "./stack.ts";

// T = 2 s, τ = 4.9 s: bursts of floor(4.9 / 2) = 2. τ is no multiple of T, so the instants at
// which the next request may pass fall between the paced requests rather than on them, and
// Retry-After values straddle whole seconds by a wide margin (see gcra-run.ts).
const intervalUs = 2_000_000;
const burstUs = 4_900_000;
const burst = 2;

describe.each(haproxyBinaries())("behind $name, on Valkey", (haproxy) => {
  let redis: RedisServer | undefined;
  let backend: Awaited<ReturnType<typeof startBackend>> | undefined;
  let app: AppProcess | undefined;
  let proxy: Front;

  beforeAll(async () => {
    redis = await startRedis();
    backend = await startBackend();
    // Counts are asserted, so every verdict comes from Valkey, however busy the machine: store
    // deadline and HAProxy's wait long enough that neither the policy nor HAProxy answers.
    app = await startApp({
      VALKEY_NODES: redis.url,
      VALKEY_TIMEOUT: "1s",
      SPOA_RATE_INTERVAL: String(intervalUs),
      SPOA_RATE_BURST: String(burstUs),
    });
    proxy = await startProxy(haproxy, [app.spopPort], backend.port, { processingTimeout: "5s" });
    await waitForFirstVerdict(proxy, String(burst), app);
  }, 60_000);

  afterAll(async () => {
    await proxy?.stop();
    await app?.stop();
    await backend?.close();
    await redis?.stop();
  });

  it("gives a client at 5× the rate exactly the GCRA-allowed 200s, the rest 429 with a correct Retry-After", async () => {
    const periodMs = intervalUs / 1000 / 5;
    const replies = await paced(16, periodMs, () => proxy.get({ "X-Forwarded-For": "203.0.113.10" }));
    const statuses = replies.map((r) => r.status);
    const admitted = statuses.filter((s) => s === 200).length;
    expect(
      statuses.every((s) => s === 200 || s === 429),
      statuses.join(" "),
    ).toBe(true);
    // 16 requests 400 ms apart: W ≈ 6 s, floor((6 + 4.9) / 2) = 5.
    const expected = admittedCounts(replies, intervalUs, burstUs);
    expect(expected, "the timing window is too wide to decide").toHaveLength(1);
    expect(admitted, statuses.join(" ")).toBe(expected[0]);
    expect(replies[0]?.body).toBe("backend");

    let admittedBefore = 0;
    replies.forEach((reply: HttpReply, index) => {
      if (reply.status === 200) {
        admittedBefore++;
        expect(reply.headers["ratelimit-limit"]).toBe(String(burst));
        expect(Number(reply.headers["ratelimit-remaining"])).toBeLessThan(burst);
        expect(reply.headers["retry-after"]).toBeUndefined();
        return;
      }
      const allowedValues = retryAfterSeconds(replies, index, admittedBefore, intervalUs, burstUs);
      expect(allowedValues.map(String), `request ${index}`).toContain(reply.headers["retry-after"]);
      expect(reply.headers["ratelimit-remaining"]).toBe("0");
    });
    // Both 1 and 2 seconds occur: the values are computed, not constant.
    const retryValues = new Set(replies.filter((r) => r.status === 429).map((r) => r.headers["retry-after"]));
    expect([...retryValues].sort()).toEqual(["1", "2"]);

    const metrics = await app?.metrics();
    expect(total(metrics ?? [], "gcra_decisions_total", { outcome: "denied" })).toBeGreaterThanOrEqual(
      16 - admitted,
    );
  }, 30_000);

  it("limits clients named by X-Forwarded-For and by Forwarded independently of each other", async () => {
    const burstOf = async (headers: Record<string, string>) => {
      const statuses: number[] = [];
      for (let i = 0; i <= burst; i++) statuses.push((await proxy.get(headers)).status);
      return statuses;
    };
    const full = [...new Array<number>(burst).fill(200), 429];
    expect(await burstOf({ "X-Forwarded-For": "192.0.2.21" })).toEqual(full);
    expect(await burstOf({ "X-Forwarded-For": "192.0.2.22, 10.0.0.1" })).toEqual(full);
    // HAProxy 2.6 hands the first Forwarded line to the agent raw (the agent takes its first
    // for=), 3.0 the address its rfc7239 converters take from the line's first element.
    expect(await burstOf({ Forwarded: "for=192.0.2.23;proto=https, for=10.0.0.2" })).toEqual(full);
    // Forwarded wins over X-Forwarded-For; an obfuscated for= is skipped for the next source.
    expect((await proxy.get({ Forwarded: "for=192.0.2.21", "X-Forwarded-For": "192.0.2.24" })).status).toBe(
      429,
    );
    expect(await burstOf({ Forwarded: "for=_hidden", "X-Forwarded-For": "192.0.2.24" })).toEqual(full);
    expect((await proxy.get({ "X-Forwarded-For": "192.0.2.24" })).status).toBe(429);
  });

  it("keys IPv6 clients by their /64: addresses of one /64 share a limit, the next /64 has its own", async () => {
    const statuses = [
      (await proxy.get({ "X-Forwarded-For": "2001:db8:1:2::1" })).status,
      (await proxy.get({ "X-Forwarded-For": "2001:db8:1:2:ffff:ffff:ffff:fffe" })).status,
      (await proxy.get({ Forwarded: 'for="[2001:db8:1:2::abcd]:4711"' })).status,
      (await proxy.get({ "X-Forwarded-For": "2001:db8:1:3::1" })).status,
    ];
    expect(statuses).toEqual([200, 200, 429, 200]);
    const denied = await proxy.get({ "X-Forwarded-For": "2001:db8:1:2::99" });
    expect(denied.status).toBe(429);
    expect(["1", "2", "3"]).toContain(denied.headers["retry-after"]);
  });
});
