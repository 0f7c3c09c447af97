import { readFileSync } from "node:fs";
import { loadConfig } from "@spoekit/gcra-rate-limiting";
import { haproxyBinaries } from "@spoekit/harness";
import { describe, expect, it } from "vitest";
import {
  canonical,
  checkWithEnvironment,
  configVariables,
  deployedHaproxy,
  processingTimeoutMs,
} from "./haproxy-config.ts";
import { kustomize } from "./kustomize.ts";
import { fromRoot } from "./paths.ts";
import { container, workload } from "./workloads.ts";

const overlays = ["kubernetes", "openshift"].map((name) =>
  kustomize(name, fromRoot(`deploy/overlays/${name}`)),
);
const local = { SPOE_CONFIG: "spoe-rate-limit.conf" };
/** Every HAProxy release the configuration is checked and run on (2.6 and 3.0). */
const haproxies = haproxyBinaries();

/** The lines of the SPOE file's `.if version_atleast(2.8)` branch and of its `.else` branch. */
function versionBranches(spoe: string): { modern: string[]; legacy: string[] } {
  const match = /^\.if version_atleast\(2\.8\)\n([\s\S]*?)^\.else\n([\s\S]*?)^\.endif$/m.exec(spoe);
  const lines = (block: string | undefined) =>
    (block ?? "")
      .split("\n")
      .map((line) => line.trim())
      .filter((line) => line && !line.startsWith("#"));
  return { modern: lines(match?.[1]), legacy: lines(match?.[2]) };
}

describe.each(overlays)("HAProxy configuration rendered by the $name overlay", ({ objects }) => {
  const deployed = deployedHaproxy(objects);

  it("is the canonical haproxy.cfg and spoe-rate-limit.conf, unchanged", () => {
    expect(deployed.files).toEqual(canonical);
  });

  it.each(haproxies)(
    "passes $name's haproxy -c without warnings with the Deployment's environment",
    (haproxy) => {
      const result = checkWithEnvironment(haproxy, deployed.files, deployed.environment);
      expect(result.output).not.toMatch(/WARNING|ALERT/);
      expect(result.valid, result.output).toBe(true);
    },
  );

  it("sets only variables haproxy.cfg reads, or that other variables refer to", () => {
    const haproxy = workload(objects, "Deployment", "haproxy");
    const env = container(haproxy.pod, "haproxy").env ?? [];
    const read = configVariables(canonical.haproxyCfg);
    const referenced = env.flatMap((v) => [...(v.value ?? "").matchAll(/\$\(([A-Z_]+)\)/g)].map((m) => m[1]));
    for (const variable of env) {
      expect(read.has(variable.name) || referenced.includes(variable.name), variable.name).toBe(true);
    }
  });

  it("names the agents and the application by fully qualified names (HAProxy's resolver has no search list)", () => {
    const { AGENT_HOST, BACKEND_HOST } = deployed.environment;
    expect(AGENT_HOST).toBe("gcra-rate-limiting.spoekit.svc.cluster.local");
    expect(BACKEND_HOST).toMatch(/\.spoekit\.svc\.cluster\.local$/);
  });
});

describe("the canonical HAProxy configuration", () => {
  it.each(haproxies)("passes $name's haproxy -c with its defaults alone", (haproxy) => {
    const result = checkWithEnvironment(haproxy, canonical, local);
    expect(result.output).not.toMatch(/WARNING|ALERT/);
    expect(result.valid, result.output).toBe(true);
  });

  it.each(haproxies)(
    "passes $name's haproxy -c pointed at an agent and an application on loopback",
    (haproxy) => {
      const result = checkWithEnvironment(haproxy, canonical, {
        ...local,
        HTTP_BIND: "127.0.0.1:18080",
        STATS_BIND: "127.0.0.1:18404",
        AGENT_HOST: "127.0.0.1",
        AGENT_PORT: "19000",
        AGENT_SLOTS: "1",
        BACKEND_HOST: "127.0.0.1",
        BACKEND_PORT: "18081",
        NBTHREAD: "1",
      });
      expect(result.output).not.toMatch(/WARNING|ALERT/);
      expect(result.valid, result.output).toBe(true);
    },
  );

  it.each(haproxies)(
    "is refused by $name's haproxy -c when a variable makes it wrong (the check reads the environment)",
    (haproxy) => {
      expect(checkWithEnvironment(haproxy, canonical, { ...local, AGENT_PORT: "not-a-port" }).valid).toBe(
        false,
      );
      const badNameserver = checkWithEnvironment(haproxy, canonical, {
        ...local,
        NAMESERVER: "not-an-address",
      });
      expect(badNameserver.valid).toBe(false);
      expect(badNameserver.output).toMatch(/nameserver/);
    },
  );

  it.each(haproxies)(
    "warns on $name when no socket to the nameserver can be opened, so tests name one on loopback",
    (haproxy) => {
      // A broadcast address: the kernel refuses the socket as it does a nameserver without a route.
      const unreachable = checkWithEnvironment(haproxy, canonical, {
        ...local,
        NAMESERVER: "255.255.255.255:53",
      });
      expect(unreachable.output).toMatch(/WARNING.*can't connect socket for nameserver/);
      const loopback = checkWithEnvironment(haproxy, canonical, { ...local, NAMESERVER: "127.0.0.1:53" });
      expect(loopback.output).not.toMatch(/WARNING|ALERT/);
    },
  );

  it("gives every variable but NBTHREAD and NAMESERVER a default, and guards those two with defined()", () => {
    const variables = configVariables(canonical.haproxyCfg);
    expect([...variables].filter(([, fallback]) => fallback === undefined).map(([name]) => name)).toEqual([
      "NBTHREAD",
      "NAMESERVER",
    ]);
    expect(canonical.haproxyCfg).toMatch(/^\.if defined\(NBTHREAD\)$/m);
    expect(canonical.haproxyCfg).toMatch(/^\.if defined\(NAMESERVER\)$/m);
    expect(Object.fromEntries(variables)).toMatchObject({
      HTTP_BIND: ":8080",
      STATS_BIND: ":8404",
      AGENT_HOST: "gcra-rate-limiting",
      AGENT_PORT: "9000",
      AGENT_SLOTS: "16",
      BACKEND_HOST: "backend",
      BACKEND_PORT: "80",
      SPOE_CONFIG: "/usr/local/etc/haproxy/spoe-rate-limit.conf",
    });
  });

  it("keeps the default connection limit within an open-file limit of 20000 (two descriptors a connection)", () => {
    const maxconn = Number(configVariables(canonical.haproxyCfg).get("MAXCONN"));
    expect(2 * maxconn + 1000).toBeLessThan(20_000);
  });

  it("resolves agents and the application at run time, so HAProxy starts before they exist", () => {
    const servers = canonical.haproxyCfg.split("\n").filter((line) => /^\s+server(-template)? /.test(line));
    expect(servers).toHaveLength(2);
    for (const server of servers) {
      expect(server).toMatch(/ resolvers dns /);
      expect(server).toMatch(/ init-addr none/);
    }
    // The nameservers of resolv.conf (Kubernetes, compose), unless NAMESERVER names one.
    expect(canonical.haproxyCfg).toMatch(
      /^resolvers dns\n\.if defined\(NAMESERVER\)\n\s+nameserver \S+ "\$\{NAMESERVER\}"\n\.else\n\s+parse-resolv-conf\n\.endif$/m,
    );
  });

  it("answers 429 with Retry-After from the agent's verdict, and RateLimit headers from its counts", () => {
    const cfg = canonical.haproxyCfg;
    expect(cfg).toContain(
      'http-request deny deny_status 429 hdr Retry-After "%[var(sess.rl.retry_after,1)]" if { var(sess.rl.ip_score) -m int ge 80 }',
    );
    expect(cfg).toContain(
      'set-header RateLimit-Limit "%[var(sess.rl.limit)]" if { var(sess.rl.limit) -m found }',
    );
    expect(cfg).toContain(
      'set-header RateLimit-Remaining "%[var(sess.rl.remaining)]" if { var(sess.rl.remaining) -m found }',
    );
  });

  it("checks agents with SPOP health checks in the backend the SPOE engine uses", () => {
    const backend = /use-backend (\S+)/.exec(canonical.spoeConf)?.[1];
    const section = new RegExp(`^backend ${backend}\\n((?:[ \\t].*\\n)+)`, "m").exec(
      canonical.haproxyCfg,
    )?.[1];
    expect(section).toContain("option spop-check");
    expect(section).toMatch(/^\s+mode tcp$/m);
  });

  it.each(haproxies)(
    "keeps the SPOE backend in mode tcp: $name has no mode spop (3.1 and later convert it)",
    (haproxy) => {
      const spop = canonical.haproxyCfg.replace(/^(\s+)mode tcp$/m, "$1mode spop");
      expect(spop).not.toBe(canonical.haproxyCfg);
      const result = checkWithEnvironment(haproxy, { ...canonical, haproxyCfg: spop }, local);
      expect(result.valid).toBe(false);
      expect(result.output).toMatch(/unknown proxy mode 'spop'/);
    },
  );

  it("sends check-rate with ip_fwd, ip_xff and ip_src on each request, under the var prefix rl", () => {
    const spoe = canonical.spoeConf;
    expect(spoe).toMatch(/^\s+messages check-rate$/m);
    expect(spoe).toMatch(/^\s+option var-prefix rl$/m);
    expect(spoe).toMatch(/^\s+option pipelining$/m);
    expect(spoe).toMatch(/^\s+register-var-names ip_score retry_after remaining limit rule$/m);
    expect(spoe).toMatch(/^\s+timeout hello 100ms$/m);
    expect(spoe).toMatch(/^\s+timeout idle 30s$/m);
    // The agent's default, from which its Valkey deadline derives; the app's README shows it.
    expect(processingTimeoutMs(spoe)).toBe(loadConfig({}).processingTimeoutMs);
    const readme = readFileSync(fromRoot("apps/gcra-rate-limiting/README.md"), "utf8");
    expect(processingTimeoutMs(readme)).toBe(processingTimeoutMs(spoe));
    expect(spoe).toMatch(/^spoe-message check-rate$/m);
    expect(spoe).toMatch(/^\s+args ip_xff=req\.hdr_ip\(X-Forwarded-For,1\)$/m);
    expect(spoe).toMatch(/^\s+args ip_src=src$/m);
    expect(spoe).toMatch(
      /^\s+args path=path method=method host=req\.hdr\(host\) tenant=req\.hdr\(X-Tenant\)$/m,
    );
    expect(spoe).toMatch(/^\s+event on-frontend-http-request$/m);
  });

  it("passes Forwarded through the rfc7239 converters on HAProxy ≥ 2.8 and raw before", () => {
    expect(versionBranches(canonical.spoeConf)).toEqual({
      modern: ["args ip_fwd=req.hdr(Forwarded,1),rfc7239_field(for),rfc7239_n2nn"],
      legacy: ["args ip_fwd=req.fhdr(Forwarded,1)"],
    });
  });

  it.each(haproxies)(
    "needs the version guard: the ≥ 2.8 branch alone is refused by 2.6 only (now $name)",
    (haproxy) => {
      const forced = canonical.spoeConf.replace(".if version_atleast(2.8)", ".if version_atleast(2.6)");
      const result = checkWithEnvironment(haproxy, { ...canonical, spoeConf: forced }, local);
      if (haproxy.version === "2.6") {
        expect(result.valid).toBe(false);
        expect(result.output).toMatch(/rfc7239_field/);
      } else {
        expect(result.output).not.toMatch(/WARNING|ALERT/);
        expect(result.valid, result.output).toBe(true);
      }
    },
  );
});
