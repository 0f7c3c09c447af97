import { spawnSync } from "node:child_process";
import { Resolver } from "node:dns/promises";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import {
  checkHaproxyConfig,
  createTlsMaterial,
  dataServers,
  freePort,
  haproxy3Path,
  haproxyBinaries,
  httpGet,
  rawCommand,
  requireBinary,
  spawnManaged,
  startDnsServer,
  startHaproxy,
  startRedis,
  waitFor,
} from "./index.ts";
import { onPath } from "./versions.ts";

/** Sends one command to HAProxy's master CLI on `port`; resolves with everything it answered. */
function masterCli(port: number, command: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: "127.0.0.1", port });
    let answer = "";
    socket.setTimeout(5000, () =>
      socket.destroy(new Error(`no end of the master CLI's answer to ${command}`)),
    );
    socket.on("data", (chunk) => {
      answer += chunk.toString("utf8");
    });
    socket.on("end", () => resolve(answer));
    socket.on("error", reject);
    // Half-closing tells the CLI there is no next command: it answers and closes.
    socket.end(`${command}\n`);
  });
}

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

describe.each(haproxyBinaries())("$name", (haproxy) => {
  it("rejects an invalid configuration with haproxy's own message", () => {
    const result = checkHaproxyConfig("frontend x\n  no-such-directive\n", {}, {}, haproxy);
    expect(result.valid).toBe(false);
    expect(result.output).toMatch(/no-such-directive/);
  });

  it("starts haproxy in the foreground and serves until stopped", async () => {
    const port = await freePort();
    const proxy = await startHaproxy({
      haproxy,
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
    expect(proxy.haproxy).toBe(haproxy);
    try {
      const response = await fetch(`http://127.0.0.1:${port}/`);
      expect(response.status).toBe(200);
      expect(await response.text()).toBe("hello");
    } finally {
      await proxy.stop();
    }
    await expect(fetch(`http://127.0.0.1:${port}/`)).rejects.toThrow();
  });

  it("reloads in master-worker mode (the master CLI's reload) and keeps serving", async () => {
    const [port, cliPort] = [await freePort(), await freePort()];
    const dir = mkdtempSync(join(tmpdir(), "spoekit-haproxy-reload-"));
    writeFileSync(
      join(dir, "haproxy.cfg"),
      `global\n  maxconn 100\ndefaults\n  mode http\n  timeout client 5s\n  timeout connect 5s\n  timeout server 5s\nfrontend fe\n  bind 127.0.0.1:${port}\n  http-request return status 200 content-type text/plain string "hello"\n`,
    );
    const master = spawnManaged(
      haproxy.path(),
      ["-W", "-db", "-S", `ipv4@127.0.0.1:${cliPort}`, "-f", "haproxy.cfg"],
      { cwd: dir },
    );
    // A connection of its own per request: a kept-alive one would hold the former worker.
    const serves = async () => (await httpGet(port)).status === 200;
    try {
      await waitFor(serves, { what: `${haproxy.name} serving` }, () => master.output());
      // The master CLI listens once the master runs its loop (a SIGUSR2 sent before is lost).
      await waitFor(async () => /worker/.test(await masterCli(cliPort, "show proc")), {
        what: "the master CLI",
      });
      const answer = await masterCli(cliPort, "reload");
      // The master re-executes itself (the patched loader and library path must hold for that),
      // forks a new worker, and the former one leaves cleanly.
      await waitFor(
        () => /Former worker \(\d+\) exited with code 0/.test(master.output()),
        { what: "the former worker gone after the reload" },
        () => master.output(),
      );
      expect(master.output().match(/New worker \(\d+\) forked/g)).toHaveLength(2);
      expect(await serves()).toBe(true);
      expect(master.output()).not.toMatch(/ALERT/);
      // 3.0 reports the reload's outcome on the CLI; 2.6 closes the connection without a word.
      expect(answer).toMatch(haproxy.version === "2.6" ? /^$/ : /^Success=1\n/);
    } finally {
      await master.stop("SIGTERM");
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("the server releases the suites run on", () => {
  it("yields HAProxy 2.6 and 3.0, each binary reporting its own release", () => {
    const binaries = haproxyBinaries();
    expect(binaries.map((haproxy) => [haproxy.name, haproxy.version])).toEqual([
      ["HAProxy 2.6", "2.6"],
      ["HAProxy 3.0", "3.0"],
    ]);
    for (const haproxy of binaries) {
      const line = spawnSync(haproxy.path(), ["-v"], { encoding: "utf8" }).stdout.split("\n")[0];
      expect(line).toMatch(new RegExp(`^HAProxy version ${haproxy.version.replace(".", "\\.")}\\.`));
    }
    expect(binaries[1]?.path()).toBe(haproxy3Path);
  });

  it("names the servers scripts/haproxy3.mjs and scripts/valkey8.mjs put in place (run again: nothing to do)", () => {
    const script = (name: string) =>
      spawnSync(process.execPath, [join(import.meta.dirname, "..", "..", "..", "scripts", name)], {
        encoding: "utf8",
      });
    const haproxy3 = script("haproxy3.mjs");
    expect(haproxy3.status, haproxy3.stderr).toBe(0);
    expect(haproxy3.stdout.trim()).toBe(haproxy3Path);
    const valkey8 = script("valkey8.mjs");
    expect(valkey8.status, valkey8.stderr).toBe(0);
    expect(valkey8.stdout).toMatch(/^Valkey server v=8\./);
  });

  it("runs valkey-server 8 by default and redis-server 7 on request", async () => {
    const valkey = await startRedis();
    const redis = await startRedis({ server: "redis" });
    try {
      expect(String(await valkey.command("INFO", "server"))).toMatch(/^valkey_version:8\./m);
      expect(String(await redis.command("INFO", "server"))).toMatch(/^redis_version:7\./m);
    } finally {
      await Promise.all([valkey.stop(), redis.stop()]);
    }
  });

  it("fails naming the release and the command that installs it when a binary is another release", () => {
    const impostor = onPath("Valkey 8", "8", "redis-server", /^Valkey server v=8\./);
    expect(() => impostor.path()).toThrow(
      /^Valkey 8 is not available: \S*redis-server reports "Redis server v=7.*"\. Install Debian's redis-server/,
    );
    expect(dataServers.valkey.server.path()).toMatch(/\/valkey-server$/);
  });
});

describe("startDnsServer", () => {
  it("answers A queries from its table, no record for other types, NXDOMAIN for other names", async () => {
    const dns = await startDnsServer({ "agents.example.test": ["127.0.0.1", "127.0.0.2"] });
    try {
      const resolver = new Resolver({ timeout: 2000, tries: 1 });
      resolver.setServers([dns.address]);
      expect((await resolver.resolve4("Agents.Example.Test")).sort()).toEqual(["127.0.0.1", "127.0.0.2"]);
      await expect(resolver.resolve6("agents.example.test")).rejects.toMatchObject({ code: "ENODATA" });
      await expect(resolver.resolve4("other.example.test")).rejects.toMatchObject({ code: "ENOTFOUND" });
      expect(dns.asked).toEqual(["agents.example.test", "agents.example.test", "other.example.test"]);
    } finally {
      await dns.close();
    }
  });
});
