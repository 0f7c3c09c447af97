/**
 * HAProxy (2.6 and 3.0) with the canonical configuration in front of the app with a rules file,
 * on Valkey: a per-route and a per-tenant rule as clients see them, and the rule's name in
 * HAProxy's log.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { haproxyBinaries, type RedisServer, startRedis, waitFor } from "@spoekit/harness";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  type AppProcess,
  type Front,
  startApp,
  startBackend,
  startProxy,
  waitForFirstVerdict,
} from "./stack.ts";

const RULES = `rules:
  - name: login
    match: { path: { prefix: /login } }
    key: [client_ip]
    rate: 1/m
    burst: 2
  - name: tenant
    match: { tenant: { present: true } }
    key: [tenant]
    rate: 1/m
    burst: 3
  - name: per-ip
    key: [client_ip]
    rate: 1/m
    burst: 100
`;

describe.each(haproxyBinaries())("behind $name", (haproxy) => {
  const dir = mkdtempSync(join(tmpdir(), "gcra-haproxy-rules-"));
  let redis: RedisServer | undefined;
  let backend: Awaited<ReturnType<typeof startBackend>> | undefined;
  let app: AppProcess | undefined;
  let proxy: Front;

  beforeAll(async () => {
    const file = join(dir, "rules.yaml");
    writeFileSync(file, RULES);
    redis = await startRedis();
    backend = await startBackend();
    // Counts are asserted: store deadline and HAProxy's wait long enough that neither the
    // failure policy nor HAProxy answers, however busy the machine.
    app = await startApp({ VALKEY_NODES: redis.url, VALKEY_TIMEOUT: "1s", SPOA_RULES_FILE: file });
    proxy = await startProxy(haproxy, [app.spopPort], backend.port, { processingTimeout: "5s" });
    await waitForFirstVerdict(proxy, "100", app);
  }, 60_000);

  afterAll(async () => {
    await proxy?.stop();
    await app?.stop();
    await backend?.close();
    await redis?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it("limits a route per client: the burst, then 429 with Retry-After; other routes pass", async () => {
    const client = { "X-Forwarded-For": "203.0.113.5" };
    const replies = [];
    for (let i = 0; i < 3; i++) replies.push(await proxy.get(client, "/login"));
    expect(replies.map((r) => r.status)).toEqual([200, 200, 429]);
    expect(replies[0]?.headers["ratelimit-limit"]).toBe("2");
    expect(replies[2]?.headers["retry-after"]).toBe("60");
    expect((await proxy.get(client, "/home")).status).toBe(200);
    // Another client has a login burst of its own.
    expect((await proxy.get({ "X-Forwarded-For": "203.0.113.6" }, "/login")).status).toBe(200);
    await waitFor(() => proxy.haproxy.output().includes("{login}"), { what: "the rule in HAProxy's log" });
  });

  it("limits a tenant across clients by the X-Tenant header; requests without it are not counted", async () => {
    const statuses = [];
    for (let i = 1; i <= 4; i++) {
      statuses.push((await proxy.get({ "X-Forwarded-For": `203.0.114.${i}`, "X-Tenant": "acme" })).status);
    }
    expect(statuses).toEqual([200, 200, 200, 429]);
    expect((await proxy.get({ "X-Forwarded-For": "203.0.114.9", "X-Tenant": "globex" })).status).toBe(200);
    expect((await proxy.get({ "X-Forwarded-For": "203.0.114.9" })).status).toBe(200);
    await waitFor(() => proxy.haproxy.output().includes("{tenant}"), { what: "the rule in HAProxy's log" });
  });
});
