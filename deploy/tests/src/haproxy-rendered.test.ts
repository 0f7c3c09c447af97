import { readFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import {
  type DnsServer,
  freePort,
  type HaproxyProcess,
  haproxyBinaries,
  httpGet,
  startDnsServer,
  startHaproxy,
  waitFor,
  withProcessingTimeout,
} from "@spoekit/harness";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parse } from "yaml";
import { canonical, deployedHaproxy, haproxyEnvironment } from "./haproxy-config.ts";
import { kustomize } from "./kustomize.ts";
import { fromRoot } from "./paths.ts";
import { type ScriptedAgent, startScriptedAgent } from "./scripted-agent.ts";

/**
 * The HAProxy configuration as each overlay and compose render it — their files, their agent and
 * application names, slots and threads — started on loopback and asked for two requests: names
 * resolved through HAProxy's resolvers by a DNS server on loopback (NAMESERVER), the listening
 * addresses and ports moved to free loopback ones, and MAXCONN at 1000: HAProxy needs two file
 * descriptors per connection and refuses to start when it cannot raise its limit that far
 * (the Kubernetes overlay's 20000 needs 40032; a pod allows it, this machine's 20000 does not).
 * `haproxy -c` checks the overlays' own MAXCONN (haproxy-config.test.ts).
 */
const compose = parse(readFileSync(fromRoot("deploy/compose/compose.yaml"), "utf8")) as {
  services: { haproxy?: { environment?: Record<string, string> } };
};
const rendered = [
  ...["kubernetes", "openshift"].map((name) => ({
    name: `the ${name} overlay`,
    ...deployedHaproxy(kustomize(name, fromRoot(`deploy/overlays/${name}`)).objects),
  })),
  {
    name: "compose",
    // compose mounts the canonical files (compose.test.ts checks the mounts).
    files: canonical,
    environment: compose.services.haproxy?.environment ?? {},
  },
];
const cases = rendered.flatMap((source) =>
  haproxyBinaries().map((haproxy) => ({ ...source, haproxy, title: `${source.name} on ${haproxy.name}` })),
);

const limitedClient = "198.51.100.7";

describe.each(cases)("HAProxy as $title, with its own names", ({ files, environment, haproxy }) => {
  let backend: Server;
  let agent: ScriptedAgent;
  let dns: DnsServer;
  let proxy: HaproxyProcess;
  let httpPort: number;
  const { AGENT_HOST = "", BACKEND_HOST = "" } = environment;

  beforeAll(async () => {
    backend = createServer((_req, res) => res.end("backend"));
    await new Promise<void>((resolve) => backend.listen({ host: "127.0.0.1", port: 0 }, resolve));
    const backendAddress = backend.address();
    agent = await startScriptedAgent((args) =>
      args.ip_xff === limitedClient
        ? { ip_score: 100, retry_after: 3, remaining: 0, limit: 20 }
        : { ip_score: 0, remaining: 19, limit: 20 },
    );
    dns = await startDnsServer({ [AGENT_HOST]: ["127.0.0.1"], [BACKEND_HOST]: ["127.0.0.1"] });
    httpPort = await freePort();
    const statsPort = await freePort();
    proxy = await startHaproxy({
      haproxy,
      config: files.haproxyCfg,
      // The verdicts are asserted: HAProxy waits for them however busy the machine (see
      // `CanonicalHaproxyOptions.processingTimeout`).
      files: { "spoe-rate-limit.conf": withProcessingTimeout(files.spoeConf, "5s") },
      waitForPorts: [httpPort, statsPort],
      env: haproxyEnvironment({
        ...environment,
        HTTP_BIND: `127.0.0.1:${httpPort}`,
        STATS_BIND: `127.0.0.1:${statsPort}`,
        AGENT_PORT: String(agent.port),
        BACKEND_PORT: String(typeof backendAddress === "object" && backendAddress ? backendAddress.port : 0),
        SPOE_CONFIG: "spoe-rate-limit.conf",
        NAMESERVER: dns.address,
        MAXCONN: "1000",
      }),
    });
    // The servers wait in maintenance until the resolvers have an address for them.
    await waitFor(
      async () =>
        (await httpGet(httpPort, { headers: { "X-Forwarded-For": "203.0.113.1" } })).headers[
          "ratelimit-limit"
        ] === "20",
      { what: `a verdict through ${haproxy.name}`, timeoutMs: 15_000 },
      () => proxy.output(),
    );
  }, 30_000);

  afterAll(async () => {
    await proxy?.stop();
    await agent?.close();
    await dns?.close();
    await new Promise((resolve) => backend?.close(resolve));
  });

  it("finds the agents and the application by the names it was given, through its resolvers", () => {
    expect(AGENT_HOST).not.toMatch(/^[\d.]+$/);
    expect(dns.asked).toEqual(expect.arrayContaining([AGENT_HOST.toLowerCase(), BACKEND_HOST.toLowerCase()]));
  });

  it("forwards an allowed request to the application, with the agent's RateLimit headers", async () => {
    const answer = await httpGet(httpPort, { headers: { "X-Forwarded-For": "203.0.113.5" } });
    expect(answer.status, proxy.output()).toBe(200);
    expect(answer.body).toBe("backend");
    expect(answer.headers["ratelimit-remaining"]).toBe("19");
  });

  it("answers 429 with Retry-After for the client the agent limits", async () => {
    const answer = await httpGet(httpPort, { headers: { "X-Forwarded-For": limitedClient } });
    expect(answer.status, proxy.output()).toBe(429);
    expect(answer.headers["retry-after"]).toBe("3");
    expect(answer.body).not.toBe("backend");
  });
});
