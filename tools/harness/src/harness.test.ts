import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import {
  checkHaproxyConfig,
  createTlsMaterial,
  freePort,
  rawCommand,
  requireBinary,
  startHaproxy,
  startRedis,
} from "./index.ts";

describe("requireBinary", () => {
  it("names the missing program and how to install it", () => {
    expect(() => requireBinary("spoekit-no-such-program")).toThrow(
      /spoekit-no-such-program is not installed/,
    );
  });
});

describe("startRedis", () => {
  const servers: { stop(): Promise<void> }[] = [];
  afterAll(async () => {
    await Promise.all(servers.map((s) => s.stop()));
  });

  it("starts a server that answers, survives a kill with restart, and stops", async () => {
    const redis = await startRedis();
    servers.push(redis);
    expect(await redis.command("SET", "k", "v")).toBe("OK");
    expect(await redis.command("GET", "k")).toBe("v");
    await redis.kill();
    await expect(redis.command("PING")).rejects.toThrow();
    await redis.restart();
    expect(await redis.command("PING")).toBe("PONG");
    // No persistence: a crash loses the data, as the failover tests expect.
    expect(await redis.command("GET", "k")).toBeNull();
  });

  it("authenticates its own commands when started with a password", async () => {
    const redis = await startRedis({ args: ["--requirepass", "s3cret"] });
    servers.push(redis);
    expect(await redis.command("INCR", "n")).toBe(1);
  });

  it("serves TLS only, with certificates made at start, trusted through their CA alone", async () => {
    const redis = await startRedis({ tls: { requireClientCert: true } });
    servers.push(redis);
    const tls = redis.tls;
    if (!tls) throw new Error("no TLS material");
    expect(redis.url).toBe(`rediss://127.0.0.1:${redis.port}`);
    expect(tls.caFile.startsWith(redis.dir)).toBe(true);
    expect(await redis.command("PING")).toBe("PONG");
    const client = { cert: readFileSync(tls.clientCertFile), key: readFileSync(tls.clientKeyFile) };
    expect(await rawCommand(redis.port, ["PING"], { tls: { ca: tls.ca, ...client } })).toBe("PONG");
    // Plain RESP on the TLS port is cut off.
    await expect(rawCommand(redis.port, ["PING"], { timeoutMs: 1000 })).rejects.toThrow(/ECONNRESET/);
    // Another CA's certificates are refused by the client, and no client certificate by the server.
    const elsewhere = mkdtempSync(join(tmpdir(), "spoekit-tls-"));
    try {
      const other = createTlsMaterial(elsewhere);
      expect(other.ca).not.toBe(tls.ca);
      await expect(rawCommand(redis.port, ["PING"], { tls: { ca: other.ca, ...client } })).rejects.toThrow(
        /self-signed certificate in certificate chain/,
      );
    } finally {
      rmSync(elsewhere, { recursive: true, force: true });
    }
    await expect(rawCommand(redis.port, ["PING"], { tls: { ca: tls.ca }, timeoutMs: 1000 })).rejects.toThrow(
      /certificate required/,
    );
  });
});

describe("haproxy", () => {
  it("rejects an invalid configuration with haproxy's own message", () => {
    const result = checkHaproxyConfig("frontend x\n  no-such-directive\n");
    expect(result.valid).toBe(false);
    expect(result.output).toMatch(/no-such-directive/);
  });

  it("starts haproxy in the foreground and serves until stopped", async () => {
    const port = await freePort();
    const haproxy = await startHaproxy({
      config: [
        "global",
        "  maxconn 100",
        "defaults",
        "  mode http",
        "  timeout client 5s",
        "  timeout connect 5s",
        "  timeout server 5s",
        "frontend fe",
        `  bind 127.0.0.1:${port}`,
        '  http-request return status 200 content-type text/plain string "hello"',
        "",
      ].join("\n"),
      waitForPorts: [port],
    });
    try {
      const response = await fetch(`http://127.0.0.1:${port}/`);
      expect(response.status).toBe(200);
      expect(await response.text()).toBe("hello");
    } finally {
      await haproxy.stop();
    }
    await expect(fetch(`http://127.0.0.1:${port}/`)).rejects.toThrow();
  });
});
