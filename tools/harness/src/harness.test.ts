import { afterAll, describe, expect, it } from "vitest";
import { checkHaproxyConfig, freePort, requireBinary, startHaproxy, startRedis } from "./index.ts";

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
