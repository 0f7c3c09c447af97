import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createTlsMaterial, type RedisServer, startRedis, type TlsMaterial } from "@spoekit/harness";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createValkeyLimiter, type GcraStoreError, type StoreEvent, ValkeyStore } from "../src/index.ts";
import { addLimiterUser, BURST_OF_THREE, EXACT_BURST, fourInARow, freshKey } from "./behaviour.ts";

let redis: RedisServer;
let material: TlsMaterial;
/** Another CA, which vouches for nothing the server holds. */
let stranger: TlsMaterial;
let strangerDir: string;
beforeAll(async () => {
  redis = await startRedis({ tls: true });
  material = redis.tls as TlsMaterial;
  strangerDir = mkdtempSync(join(tmpdir(), "spoekit-gcra-tls-"));
  stranger = createTlsMaterial(strangerDir);
}, 30_000);
afterAll(async () => {
  await redis?.stop();
  if (strangerDir) rmSync(strangerDir, { recursive: true, force: true });
});

const limit = BURST_OF_THREE;
async function expectExact(store: { check: ValkeyStore["check"] }): Promise<void> {
  expect(await fourInARow(store, freshKey("tls"))).toEqual(EXACT_BURST);
}

describe("TLS (rediss://)", () => {
  it("decides over TLS with the CA from a file, in auto and explicit mode", async () => {
    expect(redis.url.startsWith("rediss://")).toBe(true);
    const auto = new ValkeyStore({ nodes: [redis.url], tlsCaFile: material.caFile, timeoutMs: 2000 });
    const explicit = new ValkeyStore({
      nodes: [`127.0.0.1:${redis.port}`],
      mode: "standalone",
      tls: { ca: material.ca },
      timeoutMs: 2000,
    });
    try {
      await expectExact(auto);
      expect(auto.mode).toBe("standalone");
      await expectExact(explicit);
      const clients = String(await redis.command("CLIENT", "LIST"));
      expect(
        clients.split("\n").filter((line) => line.includes("cmd=evalsha")).length,
      ).toBeGreaterThanOrEqual(2);
    } finally {
      await auto.close();
      await explicit.close();
    }
    expect(
      () => new ValkeyStore({ nodes: [redis.url], tlsCaFile: join(strangerDir, "missing.pem") }),
    ).toThrow(/tlsCaFile: cannot read/);
    expect(() => new ValkeyStore({ nodes: [redis.url], tlsCaFile: material.keyFile })).toThrow(
      /holds no PEM certificate/,
    );
    expect(
      () => new ValkeyStore({ nodes: [redis.url], tlsCaFile: material.caFile, tls: { ca: material.ca } }),
    ).toThrow(/either tlsCaFile or tls.ca/);
  });

  it("logs in as an ACL user over TLS", async () => {
    await addLimiterUser(redis, "+acl|whoami");
    const url = `rediss://limiter:s3cret@127.0.0.1:${redis.port}`;
    const store = new ValkeyStore({ nodes: [url], tlsCaFile: material.caFile, timeoutMs: 2000 });
    const wrong = createValkeyLimiter({
      nodes: [`rediss://limiter:wrong@127.0.0.1:${redis.port}`],
      tlsCaFile: material.caFile,
      mode: "standalone",
      timeoutMs: 300,
      failurePolicy: "closed",
    });
    try {
      await expectExact(store);
      const whoami = await (store.client as NonNullable<ValkeyStore["client"]>).call("ACL", "WHOAMI");
      expect(whoami).toBe("limiter");
      expect(await wrong.check(freshKey("tls"), limit)).toMatchObject({ allowed: false, source: "closed" });
      expect(wrong.stats().failures.auth).toBeGreaterThan(0);
    } finally {
      await store.close();
      await wrong.close();
    }
  });

  it("refuses a server its CA does not vouch for, and the failure policy answers", async () => {
    const failures: GcraStoreError[] = [];
    const events: StoreEvent[] = [];
    const onEvent = (event: StoreEvent) => events.push(event);
    const limiters = [
      // auto mode fails while detecting the deployment, standalone mode while connecting.
      createValkeyLimiter({
        nodes: [redis.url],
        tlsCaFile: stranger.caFile,
        timeoutMs: 300,
        failurePolicy: "closed",
        onEvent,
      }),
      createValkeyLimiter({
        nodes: [redis.url],
        mode: "standalone",
        tls: { ca: stranger.ca },
        timeoutMs: 300,
        failurePolicy: "closed",
        onEvent,
      }),
      // Node's bundled public CAs do not vouch for a private CA either.
      createValkeyLimiter({
        nodes: [redis.url],
        mode: "standalone",
        timeoutMs: 300,
        failurePolicy: "open",
        onEvent,
      }),
    ];
    for (const limiter of limiters) limiter.policy.on("failure", (error) => failures.push(error));
    try {
      const answers = await Promise.all(limiters.map((limiter) => limiter.check(freshKey("tls"), limit)));
      expect(answers.map((a) => [a.allowed, a.source])).toEqual([
        [false, "closed"],
        [false, "closed"],
        [true, "open"],
      ]);
      expect(failures).toHaveLength(3);
      for (const failure of failures) {
        expect(failure).toMatchObject({ kind: "tls", code: "GCRA_STORE_TLS" });
        expect(failure.message).toMatch(/self-signed certificate in certificate chain/);
      }
      expect(limiters.map((limiter) => limiter.stats().connected)).toEqual([false, false, false]);
      // One TLS failure per limiter, however often each retried meanwhile; then each call's error.
      const tlsFailures = events.filter((event) => event.type === "tls-failure");
      expect(tlsFailures).toHaveLength(3);
      expect(events.filter((event) => event.type === "unreachable")).toEqual([]);
    } finally {
      await Promise.all(limiters.map((limiter) => limiter.close()));
    }
  });

  it("presents a client certificate to a server that demands one", async () => {
    const strict = await startRedis({ tls: { requireClientCert: true } });
    const tls = strict.tls as TlsMaterial;
    const store = new ValkeyStore({
      nodes: [strict.url],
      tlsCaFile: tls.caFile,
      tls: { cert: readFileSync(tls.clientCertFile), key: readFileSync(tls.clientKeyFile) },
      timeoutMs: 2000,
    });
    const anonymous = createValkeyLimiter({
      nodes: [strict.url],
      mode: "standalone",
      tlsCaFile: tls.caFile,
      timeoutMs: 300,
      failurePolicy: "closed",
    });
    const failures: GcraStoreError[] = [];
    anonymous.policy.on("failure", (error) => failures.push(error));
    try {
      await expectExact(store);
      expect(await anonymous.check(freshKey("tls"), limit)).toMatchObject({
        allowed: false,
        source: "closed",
      });
      expect(failures.map((failure) => failure.kind)).toEqual(["tls"]);
      expect(failures[0]?.message).toMatch(/certificate required/);
    } finally {
      await store.close();
      await anonymous.close();
      await strict.stop();
    }
  });
});
