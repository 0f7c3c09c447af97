import { spawnSync } from "node:child_process";
import { createServer, type Server } from "node:net";
import { join } from "node:path";
import { spawnManaged, waitFor } from "@spoekit/harness";
import {
  ackFrame,
  agentDisconnectFrame,
  agentHelloFrame,
  encodeFrame,
  FrameReader,
  FrameType,
  Scope,
  TypedValue,
} from "@spoekit/spop-codec";
import { afterEach, describe, expect, it } from "vitest";
import { cleanup, onCleanup, startAgent } from "../../test/helpers.ts";
import { LatencyHistogram, parseArgSpec, runCli, runLoad } from "./index.ts";

afterEach(cleanup);

const packageDir = join(import.meta.dirname, "..", "..");

async function scoringAgent() {
  return startAgent({}, (agent) =>
    agent.catchAll((message) => {
      message.setVar(Scope.SESS, "ip_score", TypedValue.int32(0));
    }),
  );
}

/** A hand-written SPOA that answers the HELLO, then NOTIFYs with `answer` (or nothing). */
async function fakeAgent(
  answer: (streamId: number, frameId: number, count: number) => Buffer | undefined,
): Promise<number> {
  const server: Server = createServer((socket) => {
    const reader = new FrameReader();
    let count = 0;
    socket.on("error", () => {});
    socket.on("data", (chunk) => {
      reader.push(chunk);
      for (const frame of reader) {
        if (frame.type === FrameType.HAPROXY_HELLO) {
          socket.write(encodeFrame(agentHelloFrame({ maxFrameSize: 16380, capabilities: ["pipelining"] })));
        } else if (frame.type === FrameType.NOTIFY) {
          const reply = answer(frame.streamId, frame.frameId, ++count);
          if (reply !== undefined) socket.write(reply);
        }
      }
    });
  });
  await new Promise<void>((resolve) => server.listen({ host: "127.0.0.1", port: 0 }, resolve));
  onCleanup(() => new Promise((resolve) => server.close(resolve)));
  const address = server.address();
  return typeof address === "object" && address !== null ? address.port : 0;
}

describe("runLoad", () => {
  it("keeps depth NOTIFYs in flight on each connection and reports rate and latency", async () => {
    const { port, agent } = await scoringAgent();
    let peak = 0;
    agent.addHook("onConnection", () => {
      peak = Math.max(peak, agent.connections.size);
    });
    const report = await runLoad({ port, connections: 4, depth: 8, duration: 300, warmup: 100 });
    expect(report.errors).toMatchObject({ total: 0, samples: [] });
    expect(report.notifies).toBeGreaterThan(0);
    expect(report.rate).toBeCloseTo((report.notifies * 1000) / report.duration, 6);
    const { p50, p90, p99, p999, max } = report.latency;
    expect([p50, p90, p99, p999, max]).toEqual([p50, p90, p99, p999, max].sort((a, b) => a - b));
    expect(peak).toBe(4);
  });

  it("sends no more than the asked rate in open loop", async () => {
    const { port } = await scoringAgent();
    const report = await runLoad({ port, connections: 3, depth: 4, duration: 500, warmup: 0, rate: 1000 });
    expect(report.targetRate).toBe(1000);
    expect(report.notifies).toBeGreaterThan(0);
    expect(report.notifies).toBeLessThanOrEqual(1000 * 0.5 + 10);
    expect(report.errors.total).toBe(0);
  });

  it("drives another SPOA: the bare-bones benchmark baseline, in its own process", async () => {
    const echo = spawnManaged(
      process.execPath,
      ["--conditions=@spoekit/source", "bench/echo-server.mjs", "0"],
      { cwd: packageDir },
    );
    onCleanup(() => echo.stop());
    await waitFor(
      () => /listening \d+/.test(echo.output()),
      { what: "the echo server" },
      () => echo.output(),
    );
    const port = Number(/listening (\d+)/.exec(echo.output())?.[1]);
    const report = await runLoad({
      port,
      connections: 2,
      depth: 4,
      duration: 200,
      warmup: 0,
      ids: "haproxy-2.6",
    });
    expect(report.errors.total).toBe(0);
    expect(report.notifies).toBeGreaterThan(0);
  });

  it("counts ACKs for NOTIFYs never sent as protocol errors", async () => {
    const port = await fakeAgent((streamId, frameId) => encodeFrame(ackFrame(streamId + 1000, frameId, [])));
    const report = await runLoad({ port, connections: 1, depth: 2, duration: 100, warmup: 0 });
    expect(report.errors.protocol).toBeGreaterThan(0);
    expect(report.errors.samples[0]).toMatch(/no such NOTIFY in flight/);
  });

  it("counts a disconnecting agent and the NOTIFYs it left unanswered", async () => {
    const port = await fakeAgent((streamId, frameId, count) =>
      count < 5
        ? encodeFrame(ackFrame(streamId, frameId, []))
        : count === 5
          ? encodeFrame(agentDisconnectFrame(13, "too busy"))
          : undefined,
    );
    const report = await runLoad({ port, connections: 1, depth: 3, duration: 150, warmup: 0 });
    expect(report.errors).toMatchObject({
      disconnects: 1,
      lost: 3,
      samples: ["AGENT-DISCONNECT status 13: too busy"],
    });
  });

  it("counts connections that cannot be opened", async () => {
    const { port, agent } = await scoringAgent();
    await agent.close();
    const report = await runLoad({ port, connections: 2, duration: 50, warmup: 0 });
    expect(report.errors.closed).toBe(2);
    expect(report.notifies).toBe(0);
  });
});

describe("spop-bench", () => {
  it("prints the report as JSON and exits 0 when every NOTIFY was answered", async () => {
    const { port } = await scoringAgent();
    let printed = "";
    const status = await runCli(
      [
        "--port",
        String(port),
        "-c",
        "2",
        "-d",
        "3",
        "-t",
        "0.2",
        "--warmup",
        "0",
        "--json",
        "-a",
        "ip_src=ipv6:2001:db8::1",
      ],
      (text) => {
        printed += text;
      },
    );
    expect(status).toBe(0);
    const report = JSON.parse(printed);
    expect(report).toMatchObject({
      target: `tcp://127.0.0.1:${port}`,
      connections: 2,
      depth: 3,
      errors: { total: 0 },
    });
    expect(report.notifies).toBeGreaterThan(0);
  });

  it("prints a text report, and exits 1 when the agent answered nothing", async () => {
    const port = await fakeAgent(() => undefined);
    let printed = "";
    const status = await runCli(["--port", String(port), "-c", "1", "-t", "0.1", "--warmup", "0"], (text) => {
      printed += text;
    });
    expect(status).toBe(1);
    expect(printed).toMatch(/^spop-bench: 1 connections × 20 in flight to tcp:\/\/127\.0\.0\.1:\d+/);
    expect(printed).toContain("NOTIFY/s  0");
    // Still in flight when the run ended: not errors, but nothing was answered.
    expect(printed).toMatch(/errors {4}0\n$/);
  });

  it.each([["--connections", "zero"], ["--ids", "haproxy-1"], ["--arg", "ip_src=ipv4"], ["--bogus"]])(
    "exits 2 with the usage on %s %s",
    async (...argv) => {
      let errors = "";
      const status = await runCli(
        argv.filter(Boolean) as string[],
        () => {},
        (text) => {
          errors += text;
        },
      );
      expect(status).toBe(2);
      expect(errors).toContain("Usage: spop-bench");
    },
  );

  it("runs as a command", () => {
    const result = spawnSync(
      process.execPath,
      ["--conditions=@spoekit/source", "src/bin/spop-bench.ts", "--help"],
      {
        cwd: packageDir,
        encoding: "utf8",
      },
    );
    expect(result.status).toBe(0);
    expect(result.stdout).toMatch(/^Usage: spop-bench/);
  });

  it.each([
    ["ip_src=ipv4:192.0.2.1", TypedValue.ipv4("192.0.2.1")],
    ["v6=ipv6:2001:db8::1", TypedValue.ipv6("2001:db8::1")],
    ["n=int64:-5", TypedValue.int64(-5)],
    ["big=uint64:18446744073709551615", TypedValue.uint64(2n ** 64n - 1n)],
    ["s=string:a:b", TypedValue.string("a:b")],
    ["b=binary:dead", TypedValue.binary(Buffer.from("dead", "hex"))],
    ["=null", TypedValue.null],
    ["t=bool:true", TypedValue.bool(true)],
  ])("reads --arg %s", (spec, value) => {
    expect(parseArgSpec(spec).value).toEqual(value);
  });
});

describe("LatencyHistogram", () => {
  it("is exact below 128 µs and within 1.6 % above", () => {
    const histogram = new LatencyHistogram();
    for (let micros = 1; micros <= 100_000; micros++) histogram.record(micros);
    expect(histogram.count).toBe(100_000);
    expect(histogram.percentile(0.001)).toBe(100);
    for (const q of [0.5, 0.9, 0.99, 0.999]) {
      const exact = q * 100_000;
      expect(Math.abs(histogram.percentile(q) - exact) / exact).toBeLessThan(0.016);
    }
    expect(histogram.max).toBe(100_000);
    expect(histogram.mean).toBeCloseTo(50_000.5, 6);
  });

  it("adds histograms and clamps what it cannot hold", () => {
    const [a, b] = [new LatencyHistogram(), new LatencyHistogram()];
    a.record(-5);
    b.record(2 ** 40);
    a.add(b);
    expect([a.count, a.percentile(0.5), a.max]).toEqual([2, 0, 2 ** 31 - 1]);
  });
});
