/**
 * Against real HAProxy 2.6 (Debian bookworm's) and 3.0 (Debian trixie's): the rate limiter's SPOE configuration shape —
 * `option pipelining`, `option var-prefix`, `timeout processing`, `option spop-check` on the
 * backend — in front of an agent built on this package, running in its own process.
 */
import { connect } from "node:net";
import { join } from "node:path";
import {
  freePort,
  type HaproxyProcess,
  haproxyBinaries,
  type ManagedProcess,
  spawnManaged,
  startHaproxy,
  waitFor,
} from "@spoekit/harness";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const packageDir = join(import.meta.dirname, "..");

function haproxyConfig(httpPort: number, statsPort: number, agentPort: number): string {
  return `
global
  maxconn 1000
  stats socket ipv4@127.0.0.1:${statsPort} level admin

defaults
  mode http
  # One request per connection: a session variable (sess.rl.*) never outlives its request.
  option httpclose
  timeout connect 1s
  timeout client 10s
  timeout server 10s

frontend http-in
  bind 127.0.0.1:${httpPort}
  filter spoe engine rate-limit config rate-limit.conf
  http-request deny deny_status 429 if { var(sess.rl.ip_score) -m int ge 80 }
  http-request return status 200 content-type text/plain string ok hdr x-ip-score "%[var(sess.rl.ip_score)]" hdr x-client "%[var(txn.rl.client)]"

backend spoe-backend
  mode tcp
  timeout server 30s
  option spop-check
  server agent 127.0.0.1:${agentPort} check inter 200ms fall 2 rise 1
`;
}

// HAProxy 2.6 has no rfc7239_* converters: the Forwarded header goes to the agent raw (on 3.0 too).
const spoeConfig = `
[rate-limit]
spoe-agent rate-limit
  messages check-rate
  option var-prefix rl
  option pipelining
  timeout hello 2s
  timeout idle 30s
  timeout processing 300ms
  use-backend spoe-backend

spoe-message check-rate
  args ip_fwd=req.hdr(Forwarded) ip_xff=req.hdr_ip(X-Forwarded-For,1) ip_src=src
  event on-frontend-http-request
`;

/** One command on HAProxy's stats socket; resolves with its answer. */
function statsCommand(port: number, command: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: "127.0.0.1", port });
    let answer = "";
    socket.on("data", (chunk) => {
      answer += chunk.toString("utf8");
    });
    socket.on("end", () => resolve(answer));
    socket.on("error", reject);
    socket.write(`${command}\n`);
  });
}

/** `status` and `check_status` of the agent server, from `show stat`. */
async function agentServerState(statsPort: number): Promise<{ status: string; check: string }> {
  const [header, ...rows] = (await statsCommand(statsPort, "show stat")).trim().split("\n");
  const columns = (header ?? "").replace(/^# /, "").split(",");
  const row = rows
    .map((line) => line.split(","))
    .find((cells) => cells[0] === "spoe-backend" && cells[1] === "agent");
  const cell = (name: string) => row?.[columns.indexOf(name)] ?? "";
  return { status: cell("status"), check: cell("check_status") };
}

describe.each(haproxyBinaries())("behind $name", (binary) => {
  let haproxy: HaproxyProcess | undefined;
  let agent: ManagedProcess | undefined;
  let agentPort = 0;
  let statsPort = 0;
  let url = "";

  async function startAgentProcess(): Promise<ManagedProcess> {
    const started = spawnManaged(
      process.execPath,
      ["--conditions=@spoekit/source", "test/e2e-agent.ts", String(agentPort)],
      {
        cwd: packageDir,
      },
    );
    await waitFor(
      () => started.output().includes('"msg":"listening"'),
      { what: "the agent" },
      () => started.output(),
    );
    return started;
  }

  const request = async (headers: Record<string, string> = {}) => {
    const response = await fetch(url, { headers });
    await response.text();
    return response;
  };

  beforeAll(async () => {
    const httpPort = await freePort();
    statsPort = await freePort();
    agentPort = await freePort();
    agent = await startAgentProcess();
    haproxy = await startHaproxy({
      haproxy: binary,
      config: haproxyConfig(httpPort, statsPort, agentPort),
      files: { "rate-limit.conf": spoeConfig },
      waitForPorts: [httpPort, statsPort],
    });
    url = `http://127.0.0.1:${httpPort}/`;
  }, 30_000);

  afterAll(async () => {
    await haproxy?.stop();
    await agent?.stop("SIGKILL");
  });

  it("marks the agent UP through its health checks (option spop-check)", async () => {
    await waitFor(async () => (await agentServerState(statsPort)).check === "L7OK", {
      what: "an L7OK check",
    });
    expect(await agentServerState(statsPort)).toEqual({ status: "UP", check: "L7OK" });
  });

  it("sees the variables the agent sets: the score denies, the client comes back in a header", async () => {
    const allowed = await request({ "X-Forwarded-For": "192.0.2.10" });
    expect(allowed.status, haproxy?.output()).toBe(200);
    expect(allowed.headers.get("x-ip-score")).toBe("0");
    expect(allowed.headers.get("x-client")).toBe("192.0.2.10");
    const source = await request();
    expect(source.headers.get("x-client")).toBe("127.0.0.1");
    expect((await request({ "X-Forwarded-For": "203.0.113.7" })).status).toBe(429);
  });

  it("answers many concurrent requests over pipelined connections", async () => {
    const responses = await Promise.all(
      Array.from({ length: 60 }, (_, i) => request({ "X-Forwarded-For": `192.0.2.${i + 1}` })),
    );
    expect(responses.map((response) => response.headers.get("x-client"))).toEqual(
      Array.from({ length: 60 }, (_, i) => `192.0.2.${i + 1}`),
    );
  });

  it("does not hang a request whose handler outlasts timeout processing", async () => {
    const slow = await request({ "X-Forwarded-For": "198.51.100.99" });
    // The handler ran and still holds that NOTIFY's ACK (it waits for SIGUSR2): HAProxy answered
    // on its own timeout.
    await waitFor(() => agent?.output().includes("holding the answer for 198.51.100.99") ?? false, {
      what: "the agent holding the slow answer",
    });
    expect(slow.status).toBe(200);
    expect(slow.headers.get("x-ip-score")).toBeNull();
    // The late ACK is ignored by HAProxy; the connection keeps serving.
    agent?.child.kill("SIGUSR2");
    expect((await request({ "X-Forwarded-For": "192.0.2.20" })).headers.get("x-ip-score")).toBe("0");
  });

  it("is marked DOWN when killed, and reconnected to and UP again when restarted", async () => {
    await agent?.stop("SIGKILL");
    await waitFor(async () => (await agentServerState(statsPort)).status === "DOWN", {
      what: "the agent DOWN",
    });
    const unanswered = await request({ "X-Forwarded-For": "203.0.113.7" });
    expect(unanswered.status).toBe(200); // no agent: no verdict, the request goes on
    expect(unanswered.headers.get("x-ip-score")).toBeNull();
    agent = await startAgentProcess();
    await waitFor(async () => (await agentServerState(statsPort)).status === "UP", { what: "the agent UP" });
    await waitFor(async () => (await request()).headers.get("x-ip-score") === "0", {
      what: "a verdict again",
    });
    expect((await request({ "X-Forwarded-For": "203.0.113.7" })).status).toBe(429);
  });

  it("answers the HAPROXY-DISCONNECT HAProxy sends on soft-stop", async () => {
    await request();
    expect(await haproxy?.softStop()).toBe(0);
    // The agent logs the frame, answers it, then logs the connection closed: wait for the last line.
    await waitFor(() => agent?.output().includes('"cause":"haproxy-disconnect"') ?? false, {
      what: "a connection closed by a HAPROXY-DISCONNECT",
    });
    expect(agent?.output()).toMatch(/"status":0,"reason":"normal".*"msg":"HAPROXY-DISCONNECT received"/);
    expect(agent?.output()).toContain('"cause":"haproxy-disconnect"');
    expect(agent?.output()).not.toMatch(/"level":(40|50|60)/);
  }, 20_000);
});
