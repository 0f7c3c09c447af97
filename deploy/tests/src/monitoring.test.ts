import { readFileSync } from "node:fs";
import { createServer } from "node:http";
import { connect } from "node:net";
import type { KubernetesObject, V1ConfigMap, V1Service } from "@kubernetes/client-node";
import { adminPaths } from "@spoekit/gcra-rate-limiting";
import {
  canonicalHaproxy,
  freePort,
  type HaproxyProcess,
  haproxyBinaries,
  httpGet,
  type RedisServer,
  startHaproxy,
  startRedis,
  total,
  waitFor,
} from "@spoekit/harness";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type AgentProcess, scrape, startAgent } from "./agent-process.ts";
import { loopbackNameserver } from "./haproxy-config.ts";
import { type Plain, renderAll } from "./kustomize.ts";
import { fromRoot } from "./paths.ts";
import { acceptedValues, selectors } from "./promql.ts";
import { schemaErrors } from "./schemas.ts";
import { named } from "./workloads.ts";

interface Rule {
  alert?: string;
  expr: string;
  for?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}
interface Panel {
  title: string;
  type: string;
  targets?: { expr: string }[];
}

const [kubernetes, openshift] = renderAll();
const dashboardFile = readFileSync(fromRoot("deploy/components/monitoring/dashboard/spoekit.json"), "utf8");
const dashboard = JSON.parse(dashboardFile) as {
  title: string;
  panels: Panel[];
  templating: { list: { query: string }[] };
};
const readme = readFileSync(fromRoot("deploy/README.md"), "utf8");
// What is counted matters here, not how fast (see CanonicalHaproxyOptions.processingTimeout).
const { haproxyCfg, spoeConf } = canonicalHaproxy({ processingTimeout: "5s" });

function rulesOf(objects: KubernetesObject[]): Rule[] {
  const rule = named<KubernetesObject & { spec: { groups: { rules: Rule[] }[] } }>(
    objects,
    "PrometheusRule",
    "spoekit",
  );
  return rule.spec.groups.flatMap((group) => group.rules);
}
const rules = rulesOf(kubernetes?.objects ?? []);

/** Every PromQL expression the alerts and the dashboard evaluate, with where it comes from. */
const queries: [where: string, expr: string][] = [
  ...rules.map((rule): [string, string] => [`alert ${rule.alert}`, rule.expr]),
  ...dashboard.panels.flatMap((panel) =>
    (panel.targets ?? []).map((target): [string, string] => [`panel "${panel.title}"`, target.expr]),
  ),
  ...dashboard.templating.list
    .filter((variable) => variable.query.startsWith("label_values("))
    .map((variable): [string, string] => [
      "dashboard variable",
      variable.query.replace(/^label_values\(([^,]+),.*\)$/, "$1"),
    ]),
];

/** GitHub's anchor for a Markdown heading. */
function slug(heading: string): string {
  return heading
    .trim()
    .toLowerCase()
    .replace(/[^\w\- ]/g, "")
    .replace(/ /g, "-");
}
const anchors = new Set([...readme.matchAll(/^#+ (.+)$/gm)].map((m) => slug(m[1] ?? "")));

describe.each([kubernetes, openshift])("the monitoring component in $name", (rendering) => {
  const objects = rendering?.objects ?? [];

  it("scrapes the agents' and HAProxy's Services on the port and path that serve /metrics", () => {
    const monitors = objects.filter((o) => o.kind === "ServiceMonitor") as (KubernetesObject & {
      spec: {
        selector: { matchLabels: Record<string, string> };
        endpoints: { port: string; path: string }[];
      };
    })[];
    const exporterPath = /http-request use-service prometheus-exporter if \{ path (\S+) \}/.exec(
      haproxyCfg,
    )?.[1];
    const expected: Record<string, [port: string, path: string | undefined]> = {
      "gcra-rate-limiting": ["admin", adminPaths.metrics],
      haproxy: ["stats", exporterPath],
    };
    expect(monitors.map((m) => m.metadata?.name).sort()).toEqual(Object.keys(expected).sort());
    for (const monitor of monitors) {
      const services = objects.filter(
        (o) =>
          o.kind === "Service" &&
          Object.entries(monitor.spec.selector.matchLabels).every(([k, v]) => o.metadata?.labels?.[k] === v),
      ) as V1Service[];
      expect(services.map((s) => s.metadata?.name)).toEqual([monitor.metadata?.name]);
      const [port, path] = expected[monitor.metadata?.name ?? ""] ?? [];
      expect(monitor.spec.endpoints.map((e) => [e.port, e.path])).toEqual([[port, path]]);
      expect(services[0]?.spec?.ports?.map((p) => p.name)).toContain(port);
    }
  });

  it("ships the dashboard JSON as a ConfigMap for Grafana's sidecar", () => {
    const configMap = named<V1ConfigMap>(objects, "ConfigMap", "spoekit-dashboard");
    expect(configMap.metadata?.labels?.grafana_dashboard).toBe("1");
    expect(configMap.data?.["spoekit.json"]).toBe(dashboardFile);
  });
});

describe("the alerts", () => {
  it("validate against the PrometheusRule schema, which refuses a misspelt field", () => {
    const document = (kubernetes?.documents ?? []).find((d) => d.kind === "PrometheusRule") as Plain;
    expect(schemaErrors(document)).toEqual([]);
    const misspelt = structuredClone(document) as { spec: { groups: Plain[] } };
    (misspelt.spec.groups[0] as Plain).rule = [];
    expect(schemaErrors(misspelt as unknown as Plain).join()).toMatch(/additional properties/);
  });

  it("cover the store, the failure policy, SPOE on HAProxy's side, denials, restarts, OOM and latency", () => {
    expect(rules.map((r) => r.alert)).toEqual(
      expect.arrayContaining([
        "SpoekitValkeyUnreachable",
        "SpoekitFailurePolicyAnswering",
        "SpoekitNoAgentAvailable",
        "SpoekitSpoeErrors",
        "SpoekitRequestsUnchecked",
        "SpoekitDenyRatioAnomaly",
        "SpoekitAgentRestarting",
        "SpoekitAgentOOMKilled",
        "SpoekitDecisionLatencyHigh",
      ]),
    );
  });

  it.each(rules.map((r) => [r.alert, r] as const))(
    "%s has a severity and a runbook in deploy/README.md",
    (_, rule) => {
      expect(["critical", "warning"]).toContain(rule.labels?.severity);
      expect(rule.annotations?.summary).toBeTruthy();
      const url = rule.annotations?.runbook_url ?? "";
      expect(url).toMatch(/^https:\/\/github\.com\/spoekit\/spoekit\/blob\/main\/deploy\/README\.md#/);
      const anchor = url.split("#")[1] ?? "";
      expect(anchor).toBe(slug(rule.alert ?? ""));
      expect([...anchors]).toContain(anchor);
    },
  );
});

describe("the dashboard", () => {
  it("uses only panel types both Grafana and the OpenShift console render", () => {
    // The console draws graph, singlestat, table and row panels; Grafana migrates graph and
    // singlestat to timeseries and stat on load.
    for (const panel of dashboard.panels) expect(["graph", "singlestat"], panel.title).toContain(panel.type);
  });

  it("is the one deploy/README.md sends OpenShift users to", () => {
    expect(readme).toContain(`Observe → Dashboards → ${dashboard.title}`);
  });

  it("shows decisions by outcome, latency, store health, SPOP connections, HAProxy requests and 429s", () => {
    const all = dashboard.panels.flatMap((p) => (p.targets ?? []).map((t) => t.expr)).join("\n");
    for (const metric of [
      "gcra_decisions_total",
      "spoa_notify_duration_seconds_bucket",
      "gcra_store_connected",
      "gcra_store_mode",
      "spoa_connections",
      "haproxy_frontend_http_requests_total",
      "haproxy_frontend_requests_denied_total",
    ]) {
      expect(all).toContain(metric);
    }
  });
});

/**
 * Series the queries use that neither process exports: kube-state-metrics', present wherever
 * prometheus-operator runs (kube-prometheus, OpenShift), by its documented names.
 */
const kubeStateMetrics: Record<string, string[]> = {
  kube_pod_container_status_restarts_total: ["container", "pod"],
  kube_pod_container_status_last_terminated_reason: ["container", "pod", "reason"],
};
/** Labels Prometheus adds to every scraped series (target labels), not the exporters. */
const targetLabels = new Set(["job", "namespace", "pod", "instance", "container", "service", "endpoint"]);

describe.each(haproxyBinaries())("every query against what the agent and $name export", (binary) => {
  let redis: RedisServer | undefined;
  let app: AgentProcess | undefined;
  let haproxy: HaproxyProcess | undefined;
  let closeBackend: (() => void) | undefined;
  const exported = new Map<string, Record<string, string>[]>();
  let statuses: number[] = [];
  let httpPort = 0;
  let statsPort = 0;

  beforeAll(async () => {
    redis = await startRedis();
    app = await startAgent({
      VALKEY_NODES: redis.url,
      SPOA_WORKERS: "1",
      // Valkey decides every request, however loaded the machine (not the failure policy).
      VALKEY_TIMEOUT: "1s",
      // One request per 100 s and the smallest burst: a client is denied from its second or
      // third request on, for the rest of the test.
      SPOA_RATE_INTERVAL: "100000000",
      SPOA_RATE_BURST: "100000000",
    });
    const { spopPort, adminPort } = app;
    const backend = createServer((_req, res) => res.end("backend"));
    const backendPort = await freePort();
    await new Promise<void>((resolve) => backend.listen({ host: "127.0.0.1", port: backendPort }, resolve));
    closeBackend = () => {
      backend.closeAllConnections();
      backend.close();
    };
    httpPort = await freePort();
    statsPort = await freePort();
    haproxy = await startHaproxy({
      haproxy: binary,
      config: haproxyCfg,
      files: { "spoe-rate-limit.conf": spoeConf },
      waitForPorts: [httpPort, statsPort],
      env: {
        HTTP_BIND: `127.0.0.1:${httpPort}`,
        STATS_BIND: `127.0.0.1:${statsPort}`,
        AGENT_HOST: "127.0.0.1",
        AGENT_PORT: String(spopPort),
        AGENT_SLOTS: "1",
        BACKEND_HOST: "127.0.0.1",
        BACKEND_PORT: String(backendPort),
        SPOE_CONFIG: "spoe-rate-limit.conf",
        NBTHREAD: "1",
        NAMESERVER: loopbackNameserver,
      },
    });
    // HAProxy's first health check marks the agent up.
    await waitFor(
      async () =>
        total(await scrape(statsPort), "haproxy_backend_active_servers", { proxy: "spoe-agents" }) === 1,
      {
        what: "the agent up in HAProxy",
        timeoutMs: 15_000,
      },
    );
    statuses = [];
    for (const client of ["192.0.2.1", "192.0.2.1", "192.0.2.1", "192.0.2.1", "192.0.2.2"]) {
      statuses.push((await httpGet(httpPort, { headers: { "X-Forwarded-For": client } })).status);
    }
    // Something that is not SPOP: the agent counts a protocol error and a closed connection.
    await new Promise<void>((resolve) => {
      const socket = connect({ host: "127.0.0.1", port: spopPort }, () =>
        socket.end("GET / HTTP/1.0\r\n\r\n"),
      );
      socket.on("close", () => resolve());
      socket.on("error", () => socket.destroy());
      socket.resume();
    });
    for (const { name, labels } of [...(await scrape(adminPort)), ...(await scrape(statsPort))]) {
      exported.set(name, [...(exported.get(name) ?? []), labels]);
    }
  }, 60_000);

  afterAll(async () => {
    await haproxy?.stop();
    closeBackend?.();
    await app?.stop();
    await redis?.stop();
  });

  it("counts in the dashboard's 429 and decision queries what HAProxy answered", async () => {
    const tooMany = statuses.filter((status) => status === 429).length;
    expect([2, 3]).toContain(tooMany);
    expect(statuses).toEqual([200, ...Array(3 - tooMany).fill(200), ...Array(tooMany).fill(429), 200]);
    const front = await scrape(statsPort);
    let agent = await scrape(app?.adminPort ?? 0);
    const decided = () =>
      total(agent, "gcra_decisions_total") + total(agent, "gcra_unresolved_messages_total");
    // HAProxy answered every request, so each was decided; wait for the agent's counters.
    await waitFor(
      async () => {
        agent = await scrape(app?.adminPort ?? 0);
        return decided() >= statuses.length;
      },
      { what: "the agent's counters to include every request", timeoutMs: 5000 },
    );
    const forwarded = total(front, "haproxy_backend_http_requests_total", { proxy: "app" });
    const denied = total(front, "haproxy_frontend_requests_denied_total", { proxy: "http-in" });
    expect([forwarded, denied]).toEqual([5 - tooMany, tooMany]);
    expect(total(agent, "gcra_decisions_total", { outcome: "denied" })).toBe(tooMany);
    // The frontend also counts connections that sent nothing (the harness's port probe):
    // "unchecked" therefore counts the requests that went through the rules.
    expect(total(front, "haproxy_frontend_http_requests_total", { proxy: "http-in" })).toBeGreaterThanOrEqual(
      5,
    );
    expect(forwarded + denied - decided()).toBe(0);
  });

  it.each(queries)("%s selects only series the agent, HAProxy or kube-state-metrics export", (_, expr) => {
    const found = selectors(expr);
    expect(found.length).toBeGreaterThan(0);
    for (const { metric, matchers } of found) {
      const known = kubeStateMetrics[metric];
      const series = exported.get(metric);
      expect(series ?? known, `${metric} is exported by neither the agent nor HAProxy`).toBeDefined();
      for (const matcher of matchers) {
        if (targetLabels.has(matcher.label) && !known?.includes(matcher.label)) continue;
        if (known) {
          expect(known, `${metric}{${matcher.label}}`).toContain(matcher.label);
          continue;
        }
        const values = new Set((series ?? []).map((labels) => labels[matcher.label]));
        expect(
          [...values].some((v) => v !== undefined),
          `${metric} has no label ${matcher.label}`,
        ).toBe(true);
        for (const value of acceptedValues(matcher) ?? []) {
          expect([...values], `${metric}{${matcher.label}="${value}"}`).toContain(value);
        }
      }
    }
  });
});
