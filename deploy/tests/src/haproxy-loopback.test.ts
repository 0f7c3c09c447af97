import { Agent, createServer, type Server } from "node:http";
import {
  canonicalHaproxy,
  freePort,
  type HaproxyProcess,
  haproxyBinaries,
  httpGet,
  startHaproxy,
} from "@spoekit/harness";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { haproxyEnvironment } from "./haproxy-config.ts";
import { type ScriptedAgent, startScriptedAgent } from "./scripted-agent.ts";

/** The address the scripted agent refuses, one it gives no verdict for; every other client is allowed. */
const limitedClient = "198.51.100.7";
const unjudgedClient = "198.51.100.8";
const denied = { ip_score: 100, retry_after: 3, remaining: 0, limit: 20 };
const allowed = { ip_score: 0, remaining: 19, limit: 20 };

// These tests check how verdicts become headers and statuses, so no verdict may miss the file's
// few-millisecond wait on a busy machine (see CanonicalHaproxyOptions.processingTimeout); one
// second still lets the last test see a request pass when no agent answers.
const canonical = canonicalHaproxy({ processingTimeout: "1s" });

const get = (port: number, headers: Record<string, string | string[]>, agent?: Agent) =>
  httpGet(port, { headers, ...(agent ? { agent } : {}) });

describe.each(haproxyBinaries())(
  "the canonical HAProxy configuration on loopback ($name, scripted agent)",
  (haproxy) => {
    let backend: Server;
    let agent: ScriptedAgent;
    let proxy: HaproxyProcess;
    let httpPort: number;

    beforeAll(async () => {
      backend = createServer((_req, res) => res.end("backend"));
      await new Promise<void>((resolve) => backend.listen({ host: "127.0.0.1", port: 0 }, resolve));
      const backendAddress = backend.address();
      agent = await startScriptedAgent((args) =>
        args.ip_xff === limitedClient ? denied : args.ip_xff === unjudgedClient ? {} : allowed,
      );
      httpPort = await freePort();
      const statsPort = await freePort();
      proxy = await startHaproxy({
        haproxy,
        config: canonical.haproxyCfg,
        files: { "spoe-rate-limit.conf": canonical.spoeConf },
        waitForPorts: [httpPort, statsPort],
        env: haproxyEnvironment({
          HTTP_BIND: `127.0.0.1:${httpPort}`,
          STATS_BIND: `127.0.0.1:${statsPort}`,
          AGENT_HOST: "127.0.0.1",
          AGENT_PORT: String(agent.port),
          AGENT_SLOTS: "1",
          BACKEND_HOST: "127.0.0.1",
          BACKEND_PORT: String(
            typeof backendAddress === "object" && backendAddress ? backendAddress.port : 0,
          ),
          SPOE_CONFIG: "spoe-rate-limit.conf",
          NBTHREAD: "1",
        }),
      });
    });

    afterAll(async () => {
      await proxy?.stop();
      await agent?.close();
      await new Promise((resolve) => backend?.close(resolve));
    });

    it("starts without a warning: the resolvers section needs no route to a DNS resolver", () => {
      expect(proxy.output()).not.toMatch(/\[(WARNING|ALERT)\]/);
    });

    it("forwards an allowed request with the RateLimit headers the agent's counts give", async () => {
      const answer = await get(httpPort, { "X-Forwarded-For": "203.0.113.5" });
      expect(answer.status, proxy.output()).toBe(200);
      expect(answer.body).toBe("backend");
      expect(answer.headers["ratelimit-limit"]).toBe("20");
      expect(answer.headers["ratelimit-remaining"]).toBe("19");
      expect(answer.headers["retry-after"]).toBeUndefined();
      expect(agent.received.at(-1)).toMatchObject({ ip_xff: "203.0.113.5", ip_src: "127.0.0.1" });
    });

    it("answers 429 with Retry-After when the agent scores the client 80 or more", async () => {
      const answer = await get(httpPort, { "X-Forwarded-For": limitedClient });
      expect(answer.status).toBe(429);
      expect(answer.headers["retry-after"]).toBe("3");
      expect(answer.headers["ratelimit-limit"]).toBe("20");
      expect(answer.headers["ratelimit-remaining"]).toBe("0");
      expect(answer.body).not.toBe("backend");
    });

    // The SPOE file's `.if version_atleast(2.8)`: 2.6 takes the raw branch, 3.0 the rfc7239 converters.
    const rfc7239 = haproxy.version !== "2.6";

    it(`hands the Forwarded header's client to the agent ${rfc7239 ? "as an address (rfc7239 converters)" : "as raw text"}`, async () => {
      await get(httpPort, { Forwarded: 'for="[2001:db8::1]:4711";proto=https' });
      expect(agent.received.at(-1)?.ip_fwd).toBe(
        rfc7239 ? "2001:db8::1" : 'for="[2001:db8::1]:4711";proto=https',
      );
      expect(agent.received.at(-1)?.ip_xff).toBeNull();
    });

    it("hands over the client's own hop: the first element of the first Forwarded line", async () => {
      await get(httpPort, { Forwarded: ["for=192.0.2.7, for=198.51.100.1", "for=203.0.113.9;proto=http"] });
      // 2.6 hands the first line whole (the agent takes its first for=), 3.0 its first element's for=.
      expect(agent.received.at(-1)?.ip_fwd).toBe(rfc7239 ? "192.0.2.7" : "for=192.0.2.7, for=198.51.100.1");
    });

    it("never applies one request's verdict to the next on a kept-alive connection", async () => {
      const keepAlive = new Agent({ keepAlive: true, maxSockets: 1 });
      try {
        const first = await get(httpPort, { "X-Forwarded-For": limitedClient }, keepAlive);
        const second = await get(httpPort, { "X-Forwarded-For": unjudgedClient }, keepAlive);
        expect(first.status).toBe(429);
        expect(second.reusedSocket).toBe(true);
        expect(second.status).toBe(200);
        expect(second.headers["ratelimit-remaining"]).toBeUndefined();
      } finally {
        keepAlive.destroy();
      }
    });

    it("lets requests through without RateLimit headers when no agent answers", async () => {
      await agent.close();
      const answer = await get(httpPort, { "X-Forwarded-For": limitedClient });
      expect(answer.status).toBe(200);
      expect(answer.body).toBe("backend");
      expect(answer.headers["ratelimit-limit"]).toBeUndefined();
      expect(answer.headers["retry-after"]).toBeUndefined();
    });
  },
);
