/**
 * Against real HAProxy 2.6 and 3.0 (Debian bookworm's and trixie's): an SPOE filter sends NOTIFYs for every HTTP request to a small
 * agent built on this codec; the agent answers with ACKs whose variables HAProxy returns in
 * response headers.
 */
import { createServer, type Server, type Socket } from "node:net";
import { freePort, type HaproxyProcess, haproxyBinaries, startHaproxy, waitFor } from "@spoekit/harness";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  type Action,
  agentDisconnectFrame,
  agentHelloFrame,
  DataType,
  type Disconnect,
  encodeFrame,
  FrameReader,
  FrameType,
  FrameWriter,
  formatIp,
  getArg,
  type HaproxyHello,
  type NotifyFrame,
  negotiateHello,
  parseDisconnect,
  parseHaproxyHello,
  Scope,
  SpopError,
  setVar,
  TypedValue,
  unsetVar,
} from "../src/index.ts";

const BLOCKED = "203.0.113.7";

/** What the agent saw. */
interface AgentLog {
  hellos: HaproxyHello[];
  notifies: NotifyFrame[];
  disconnects: Disconnect[];
  errors: unknown[];
}

function clientAddress(notify: NotifyFrame): string {
  const message = notify.messages[0];
  const forwarded = message && getArg(message, "ip_fwd");
  if (forwarded?.type === DataType.STRING) {
    const match = /for="?\[?([^\]";,]+)/i.exec(forwarded.value);
    if (match?.[1]) return match[1];
  }
  for (const name of ["ip_xff", "ip_src"]) {
    const value = message && getArg(message, name);
    if (value?.type === DataType.IPV4 || value?.type === DataType.IPV6) return formatIp(value.value);
  }
  return "unknown";
}

/** The ACK for a NOTIFY: a verdict, plus one variable of each type for HAProxy to echo. */
function answer(notify: NotifyFrame): Action[] {
  const client = clientAddress(notify);
  const blocked = client === BLOCKED;
  const source = notify.messages[0] && getArg(notify.messages[0], "ip_src");
  return [
    setVar(Scope.SESS, "ip_score", TypedValue.int32(blocked ? 100 : 0)),
    setVar(Scope.SESS, "retry_after", TypedValue.int32(blocked ? 7 : 0)),
    setVar(Scope.SESS, "remaining", TypedValue.int64(-42)),
    setVar(Scope.SESS, "limit", TypedValue.uint32(2 ** 32 - 1)),
    setVar(Scope.TXN, "client", TypedValue.string(client)),
    ...(source?.type === DataType.IPV4 ? [setVar(Scope.TXN, "src", source)] : []),
    setVar(Scope.TXN, "v6", TypedValue.ipv6("2001:db8::1")),
    setVar(Scope.TXN, "flag", TypedValue.bool(true)),
    setVar(Scope.TXN, "big", TypedValue.uint64(2n ** 53n + 1n)),
    setVar(Scope.TXN, "bin", TypedValue.binary(Uint8Array.of(0xde, 0xad, 0xbe, 0xef))),
    unsetVar(Scope.SESS, "gone"),
  ];
}

/** A minimal SPOA on this codec: HELLO, NOTIFY → ACK, DISCONNECT. */
function startAgent(port: number, log: AgentLog): Promise<Server> {
  const serve = (socket: Socket) => {
    socket.setNoDelay(true);
    const reader = new FrameReader();
    const writer = new FrameWriter();
    socket.on("error", () => {
      // HAProxy resets health-check and soft-stopped connections; that is a normal close.
    });
    socket.on("data", (chunk) => {
      try {
        reader.push(chunk);
        for (let frame = reader.next(); frame !== undefined; frame = reader.next()) {
          switch (frame.type) {
            case FrameType.HAPROXY_HELLO: {
              const hello = parseHaproxyHello(frame);
              log.hellos.push(hello);
              const agreed = negotiateHello(hello, {
                maxFrameSize: 16380,
                capabilities: ["pipelining", "async"],
              });
              reader.maxFrameSize = agreed.maxFrameSize;
              writer.maxFrameSize = agreed.maxFrameSize;
              writer.write(agentHelloFrame(agreed));
              socket.write(writer.flush());
              if (hello.healthcheck) socket.end();
              break;
            }
            case FrameType.NOTIFY:
              log.notifies.push(frame);
              writer.writeAck(frame.streamId, frame.frameId, answer(frame));
              socket.write(writer.flush());
              break;
            case FrameType.HAPROXY_DISCONNECT:
              log.disconnects.push(parseDisconnect(frame));
              socket.end(encodeFrame(agentDisconnectFrame(0)));
              break;
            default:
              throw new Error(`unexpected frame type ${frame.type}`);
          }
        }
      } catch (error) {
        log.errors.push(error);
        const status = error instanceof SpopError ? error.status : 99;
        socket.end(encodeFrame(agentDisconnectFrame(status)));
      }
    });
  };
  const server = createServer(serve);
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, "127.0.0.1", () => resolve(server));
  });
}

const echoed = {
  "x-ip-score": "sess.rl.ip_score",
  "x-retry-after": "sess.rl.retry_after",
  "x-remaining": "sess.rl.remaining",
  "x-limit": "sess.rl.limit",
  "x-client": "txn.rl.client",
  "x-src": "txn.rl.src",
  "x-v6": "txn.rl.v6",
  "x-flag": "txn.rl.flag",
  "x-big": "txn.rl.big",
  "x-gone": "sess.rl.gone",
  "x-kept": "sess.rl.kept",
};

function haproxyConfig(httpPort: number, agentPort: number): string {
  const headers = Object.entries(echoed).map(([header, variable]) => `hdr ${header} "%[var(${variable})]"`);
  return [
    "global",
    "  maxconn 1000",
    "defaults",
    "  mode http",
    "  option httpclose",
    "  timeout connect 2s",
    "  timeout client 10s",
    "  timeout server 10s",
    "frontend fe",
    `  bind 127.0.0.1:${httpPort}`,
    "  tcp-request session set-var(sess.rl.gone) str(present)",
    "  tcp-request session set-var(sess.rl.kept) str(present)",
    "  filter spoe engine rl config spoe.conf",
    "  http-request deny deny_status 429 hdr retry-after %[var(sess.rl.retry_after)] if { var(sess.rl.ip_score) -m int ge 100 }",
    `  http-request return status 200 content-type text/plain string ok ${headers.join(" ")} hdr x-bin "%[var(txn.rl.bin),hex]"`,
    "backend spoe-agents",
    "  mode tcp",
    "  timeout server 30s",
    "  option spop-check",
    `  server agent 127.0.0.1:${agentPort} check inter 1s`,
    "",
  ].join("\n");
}

const spoeConfig = [
  "[rl]",
  "spoe-agent rl-agent",
  "  messages check-rate",
  "  option var-prefix rl",
  "  option pipelining",
  "  timeout hello 2s",
  "  timeout idle 30s",
  "  timeout processing 2s",
  "  use-backend spoe-agents",
  "spoe-message check-rate",
  "  args ip_fwd=req.hdr(Forwarded) ip_xff=req.hdr_ip(X-Forwarded-For,1) ip_src=src",
  "  event on-frontend-http-request",
  "",
].join("\n");

function describeArgs(notify: NotifyFrame): [string, string, string][] {
  return (notify.messages[0]?.args ?? []).map((arg) => {
    const { value } = arg;
    const text =
      value.type === DataType.NULL
        ? ""
        : value.type === DataType.IPV4 || value.type === DataType.IPV6
          ? formatIp(value.value)
          : String((value as { value: unknown }).value);
    return [arg.name, String(value.type), text];
  });
}

describe.each(haproxyBinaries())("against $name with an SPOE filter", (binary) => {
  const log: AgentLog = { hellos: [], notifies: [], disconnects: [], errors: [] };
  let agent: Server | undefined;
  let haproxy: HaproxyProcess | undefined;
  let url = "";

  beforeAll(async () => {
    const [httpPort, agentPort] = [await freePort(), await freePort()];
    agent = await startAgent(agentPort, log);
    haproxy = await startHaproxy({
      haproxy: binary,
      config: haproxyConfig(httpPort, agentPort),
      files: { "spoe.conf": spoeConfig },
      waitForPorts: [httpPort],
    });
    url = `http://127.0.0.1:${httpPort}/`;
  }, 30_000);

  afterAll(async () => {
    await haproxy?.stop();
    await new Promise((resolve) => (agent ? agent.close(resolve) : resolve(undefined)));
  });

  async function request(headers: Record<string, string> = {}) {
    const before = log.notifies.length;
    const response = await fetch(url, { headers });
    await response.text();
    expect(log.notifies.length, haproxy?.output()).toBe(before + 1);
    return { response, notify: log.notifies[before] as NotifyFrame };
  }

  it("answers HAProxy's HELLO (traffic and health check)", async () => {
    await request();
    await waitFor(() => log.hellos.some((hello) => hello.healthcheck), {
      what: "a health-check HELLO",
      timeoutMs: 10_000,
    });
    const traffic = log.hellos.find((hello) => !hello.healthcheck);
    expect(traffic).toMatchObject({
      supportedVersions: ["2.0"],
      maxFrameSize: 16380,
      capabilities: ["pipelining", "async"],
      healthcheck: false,
    });
    expect(traffic?.engineId).toMatch(/^[0-9a-f-]{36}$/);
    expect(log.hellos.find((hello) => hello.healthcheck)?.capabilities).toEqual([]);
    expect(log.errors).toEqual([]);
  });

  it("decodes the check-rate NOTIFY of a request without forwarding headers", async () => {
    const { response, notify } = await request();
    expect(response.status).toBe(200);
    expect(notify.messages.map((message) => message.name)).toEqual(["check-rate"]);
    expect(describeArgs(notify)).toEqual([
      ["ip_fwd", String(DataType.NULL), ""],
      ["ip_xff", String(DataType.NULL), ""],
      ["ip_src", String(DataType.IPV4), "127.0.0.1"],
    ]);
    expect(notify.frameId).toBe(1);
  });

  it("gets every variable type of the ACK into HAProxy, and the UNSET-VAR too", async () => {
    const { response } = await request();
    expect(Object.fromEntries(Object.keys(echoed).map((name) => [name, response.headers.get(name)]))).toEqual(
      {
        "x-ip-score": "0",
        "x-retry-after": "0",
        "x-remaining": "-42",
        "x-limit": "4294967295",
        "x-client": "127.0.0.1",
        "x-src": "127.0.0.1",
        "x-v6": "2001:db8::1",
        "x-flag": "1",
        "x-big": "9007199254740993",
        // HAProxy leaves out a header whose value is empty: the unset variable is gone.
        "x-gone": null,
        "x-kept": "present",
      },
    );
    expect(response.headers.get("x-bin")).toBe("DEADBEEF");
  });

  it("decodes X-Forwarded-For as an IPV4 argument, and HAProxy denies what the agent scores 100", async () => {
    const { response, notify } = await request({ "x-forwarded-for": `${BLOCKED}, 10.0.0.1` });
    expect(describeArgs(notify)[1]).toEqual(["ip_xff", String(DataType.IPV4), BLOCKED]);
    expect(response.status).toBe(429);
    expect(response.headers.get("retry-after")).toBe("7");
  });

  it("decodes the raw Forwarded header (req.hdr, no converter) as a STRING argument", async () => {
    const forwarded = 'for="[2001:db8::1]:4711";proto=https';
    const { response, notify } = await request({ forwarded });
    expect(describeArgs(notify)[0]).toEqual(["ip_fwd", String(DataType.STRING), forwarded]);
    expect(response.headers.get("x-client")).toBe("2001:db8::1");
  });

  it("carries each request on a stream of its own, NOTIFYs pipelined on shared connections", async () => {
    const before = log.notifies.length;
    const responses = await Promise.all(Array.from({ length: 20 }, () => fetch(url).then((r) => r.text())));
    expect(responses).toEqual(Array(20).fill("ok"));
    const notifies = log.notifies.slice(before);
    expect(notifies).toHaveLength(20);
    expect(new Set(notifies.map((notify) => notify.streamId)).size).toBe(20);
    expect(log.errors).toEqual([]);
  });

  it("decodes the HAPROXY-DISCONNECT HAProxy sends on soft-stop", async () => {
    await request();
    expect(await haproxy?.softStop()).toBe(0);
    await waitFor(() => log.disconnects.length > 0, { what: "a HAPROXY-DISCONNECT", timeoutMs: 10_000 });
    expect(log.disconnects[0]).toEqual({ status: 0, message: "normal" });
    expect(log.errors).toEqual([]);
  });
});
