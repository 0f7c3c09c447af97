import { readFileSync } from "node:fs";
import type {
  KubernetesObject,
  V1ConfigMap,
  V1HorizontalPodAutoscaler,
  V1NetworkPolicy,
  V1PodDisruptionBudget,
  V1Service,
  V2HorizontalPodAutoscaler,
} from "@kubernetes/client-node";
import { dumpYaml, loadYaml } from "@kubernetes/client-node";
import {
  adminPaths,
  deadlineConflict,
  defaultPorts,
  loadConfig,
  settings,
} from "@spoekit/gcra-rate-limiting";
import { describe, expect, it } from "vitest";
import { parse } from "yaml";
import { deployedHaproxy, processingTimeoutMs } from "./haproxy-config.ts";
import { renderAll } from "./kustomize.ts";
import { fromRoot } from "./paths.ts";
import { restrictedViolations } from "./pod-security.ts";
import { schemaErrors } from "./schemas.ts";
import {
  container,
  containerEnvironment,
  containersOf,
  named,
  ofKind,
  resolvePodPort,
  resolvePort,
  selects,
  workload,
  workloads,
} from "./workloads.ts";

const renderings = renderAll();
const agentImage = "ghcr.io/spoekit/gcra-rate-limiting";

/** The highest "agent peak RSS" apps/gcra-rate-limiting/BENCHMARKS.md reports, in MiB. */
const measuredPeakRssMiB = Math.max(
  ...readFileSync(fromRoot("apps/gcra-rate-limiting/BENCHMARKS.md"), "utf8")
    .split("\n")
    .filter((line) => line.includes("**agent peak RSS**"))
    .flatMap((line) => [...line.matchAll(/\*\*([\d.]+) MiB\*\*/g)].map((m) => Number(m[1]))),
);

/**
 * The SPOP connections one agent accepts: the app's SPOA_MAX_CONNECTIONS default once it has
 * that setting, else the cap deploy/README.md (Sizing) plans with.
 */
const agentConnectionCap = Number(
  (settings as Record<string, { default?: string | undefined }>).SPOA_MAX_CONNECTIONS?.default ?? 1024,
);

/** A Kubernetes memory quantity (Mi or Gi) in MiB. */
function mebibytes(quantity: string | undefined): number {
  const match = /^(\d+)(Mi|Gi)$/.exec(quantity ?? "");
  if (!match) throw new Error(`unexpected memory quantity ${quantity}`);
  return Number(match[1]) * (match[2] === "Gi" ? 1024 : 1);
}

describe.each(renderings)("$name", ({ name, documents, objects }) => {
  const agent = workload(objects, "Deployment", "gcra-rate-limiting");
  const agentContainer = container(agent.pod, "agent");
  const haproxy = workload(objects, "Deployment", "haproxy");
  const namespace = agent.namespace ?? "";

  it("renders every object into the spoekit namespace", () => {
    expect(objects.length).toBeGreaterThan(0);
    for (const object of objects) expect(object.metadata?.namespace, object.kind).toBe("spoekit");
  });

  it("validates every object against its API schema", () => {
    const errors = documents.flatMap((document) =>
      schemaErrors(document).map((error) => `${String(document.kind)}: ${error}`),
    );
    expect(errors).toEqual([]);
  });

  it("uses no field the Kubernetes client models do not know (no misspelt keys)", () => {
    for (const document of documents) {
      const roundTrip = parse(dumpYaml(loadYaml(JSON.stringify(document))));
      expect(roundTrip, `${String(document.kind)} ${JSON.stringify(document.metadata)}`).toEqual(document);
    }
  });

  it("admits every pod template under the restricted Pod Security Standard", () => {
    for (const w of workloads(objects))
      expect(restrictedViolations(w.pod), `${w.kind} ${w.name}`).toEqual([]);
  });

  it("keeps every container's root filesystem read-only and writes only to emptyDir volumes", () => {
    for (const w of workloads(objects)) {
      for (const c of containersOf(w.pod)) {
        expect(c.securityContext?.readOnlyRootFilesystem, `${w.name}/${c.name}`).toBe(true);
      }
    }
    const tmp = agentContainer.volumeMounts?.find((m) => m.mountPath === "/tmp");
    expect(agent.pod.volumes?.find((v) => v.name === tmp?.name)?.emptyDir).toBeDefined();
  });

  it("pins every image to an explicit tag other than latest", () => {
    for (const w of workloads(objects)) {
      for (const c of containersOf(w.pod)) {
        const image = c.image ?? "";
        const tag = /^[^@]+:([^/:@]+)$/.exec(image)?.[1];
        expect(tag, `${w.name}/${c.name} uses ${image}`).toBeDefined();
        expect(tag).not.toBe("latest");
      }
    }
    expect(agentContainer.image?.startsWith(`${agentImage}:`)).toBe(true);
  });

  it("points the agent's probes at the admin port and the paths the app serves", () => {
    const admin = resolvePort(agentContainer, "admin");
    expect(admin).toBe(defaultPorts.admin);
    const probes = {
      startup: agentContainer.startupProbe,
      liveness: agentContainer.livenessProbe,
      readiness: agentContainer.readinessProbe,
    };
    for (const [kind, probe] of Object.entries(probes)) {
      expect(probe?.httpGet?.path, kind).toBe(adminPaths[kind as keyof typeof probes]);
      expect(resolvePort(agentContainer, probe?.httpGet?.port), kind).toBe(admin);
    }
  });

  it("points every probe of every container at a port the container declares", () => {
    for (const w of workloads(objects)) {
      for (const c of containersOf(w.pod)) {
        for (const probe of [c.startupProbe, c.livenessProbe, c.readinessProbe]) {
          const port = probe?.httpGet?.port ?? probe?.tcpSocket?.port;
          if (port !== undefined) expect(resolvePort(c, port), `${w.name}/${c.name} ${port}`).toBeDefined();
        }
      }
    }
  });

  it("gives the agent only variables its configuration schema defines, with values it accepts", () => {
    for (const variable of agentContainer.env ?? []) expect(Object.keys(settings)).toContain(variable.name);
    const config = loadConfig(containerEnvironment(agentContainer, { namespace }), () => 1);
    const spop = "port" in config.spoeAddress ? config.spoeAddress.port : undefined;
    const admin = "port" in config.adminAddress ? config.adminAddress.port : undefined;
    expect(spop).toBe(resolvePort(agentContainer, "spop"));
    expect(admin).toBe(resolvePort(agentContainer, "admin"));
    expect(config.valkeyNodes.length).toBeGreaterThan(0);
  });

  it("lets the agent drain before the kubelet kills it (grace > DRAIN_TIMEOUT + 10 s)", () => {
    const config = loadConfig(containerEnvironment(agentContainer, { namespace }), () => 1);
    expect(agent.pod.terminationGracePeriodSeconds ?? 30).toBeGreaterThan(config.drainTimeoutMs / 1000 + 10);
  });

  it("takes the agent out of the endpoints within its DRAIN_DELAY, before it stops accepting", () => {
    const config = loadConfig(containerEnvironment(agentContainer, { namespace }), () => 1);
    const probe = agentContainer.readinessProbe;
    // The kubelet's defaults where the manifest sets nothing.
    const period = probe?.periodSeconds ?? 10;
    const failures = probe?.failureThreshold ?? 3;
    // /readyz answers 503 from the signal on: the failureThreshold-th failed probe comes at most
    // period × failureThreshold later, each probe answered at once (within timeoutSeconds).
    expect(period * failures * 1000).toBeLessThanOrEqual(config.drainDelayMs);
    expect(probe?.timeoutSeconds ?? 1).toBeLessThanOrEqual(period);
    // The delay is part of DRAIN_TIMEOUT and leaves time to answer what is in flight.
    expect(config.drainDelayMs).toBeGreaterThan(0);
    expect(config.drainDelayMs).toBeLessThan(config.drainTimeoutMs);
    // No preStop hook: it would run before SIGTERM, and the grace period would have to cover it too.
    expect(agentContainer.lifecycle?.preStop).toBeUndefined();
  });

  it("tells the agent HAProxy's processing timeout, with a Valkey deadline that leaves room to answer", () => {
    const config = loadConfig(containerEnvironment(agentContainer, { namespace }), () => 1);
    expect(config.processingTimeoutMs).toBe(processingTimeoutMs(deployedHaproxy(objects).files.spoeConf));
    expect(config.valkeyTimeoutDerived).toBe(true);
    expect(deadlineConflict(config)).toBeUndefined();
  });

  it("gives the agent a memory limit of at least its measured peak RSS + 25 %, and requests below it", () => {
    const config = loadConfig(containerEnvironment(agentContainer, { namespace }), () =>
      Number(agentContainer.resources?.limits?.cpu),
    );
    expect(config.workers).toBe(1);
    const limit = mebibytes(agentContainer.resources?.limits?.memory);
    expect(limit).toBeGreaterThanOrEqual(measuredPeakRssMiB * 1.25);
    expect(mebibytes(agentContainer.resources?.requests?.memory)).toBeGreaterThanOrEqual(measuredPeakRssMiB);
    expect(mebibytes(agentContainer.resources?.requests?.memory)).toBeLessThanOrEqual(limit);
  });

  it("orders the Argo CD sync: Valkey, its cluster-create Job, agents, then HAProxy", () => {
    const wave = (o: KubernetesObject) =>
      Number(o.metadata?.annotations?.["argocd.argoproj.io/sync-wave"] ?? 0);
    const valkey = objects.filter(
      (o) => o.metadata?.labels?.["app.kubernetes.io/instance"] === "valkey-cluster",
    );
    const nodes = valkey.filter((o) => o.kind !== "Job");
    const job = valkey.find((o) => o.kind === "Job");
    // Monitoring objects (ServiceMonitors) carry the same labels but need no order.
    const workloadObjects = objects.filter((o) => o.kind !== "ServiceMonitor");
    const component = (value: string) =>
      workloadObjects.filter((o) => o.metadata?.labels?.["app.kubernetes.io/component"] === value);
    const agentObjects = component("agent");
    const haproxyObjects = component("load-balancer");
    expect(agentObjects.length).toBeGreaterThan(0);
    expect(haproxyObjects.length).toBeGreaterThan(0);
    const agentWaves = new Set(agentObjects.map(wave));
    expect([...agentWaves]).toEqual([0]);
    for (const o of haproxyObjects) expect(wave(o), `${o.kind} ${o.metadata?.name}`).toBe(1);
    if (name.includes("valkey chart")) {
      expect(valkey).toEqual([]);
      return;
    }
    // The nodes' ConfigMaps are unlabelled (generated): they go with the nodes.
    const configMaps = objects.filter(
      (o) => o.kind === "ConfigMap" && o.metadata?.name?.startsWith("valkey-"),
    );
    for (const o of [...nodes, ...configMaps]) expect(wave(o), `${o.kind} ${o.metadata?.name}`).toBe(-2);
    expect(job?.metadata?.annotations).toMatchObject({
      "argocd.argoproj.io/hook": "Sync",
      "argocd.argoproj.io/sync-wave": "-1",
    });
  });

  it("spreads agents and HAProxy pods across nodes", () => {
    for (const w of [agent, haproxy]) {
      const byHost = w.pod.topologySpreadConstraints?.find((t) => t.topologyKey === "kubernetes.io/hostname");
      expect(selects(byHost?.labelSelector, w.podLabels), w.name).toBe(true);
    }
  });

  it("announces the agent's metrics to Prometheus on the admin port", () => {
    expect(agent.podAnnotations["prometheus.io/scrape"]).toBe("true");
    expect(Number(agent.podAnnotations["prometheus.io/port"])).toBe(resolvePort(agentContainer, "admin"));
    expect(agent.podAnnotations["prometheus.io/path"]).toBe(adminPaths.metrics);
  });

  it("takes secrets from Secret references only, never from literals or rendered Secrets", () => {
    for (const document of documents.filter((d) => d.kind === "Secret")) {
      expect(document.data ?? document.stringData, "a Secret with content is rendered").toBeUndefined();
    }
    for (const w of workloads(objects)) {
      for (const c of containersOf(w.pod)) {
        for (const variable of c.env ?? []) {
          if (/PASSWORD|SECRET|TOKEN|AUTH/.test(variable.name)) {
            expect(variable.value, `${w.name}/${c.name} ${variable.name}`).toBeUndefined();
            expect(variable.valueFrom?.secretKeyRef?.name).toBeTruthy();
          }
        }
      }
    }
    expect(agentContainer.env?.find((v) => v.name === "VALKEY_PASSWORD")?.valueFrom?.secretKeyRef).toEqual({
      name: "valkey-users",
      key: "gcra",
    });
  });

  it("selects with every Service the pods of one workload, on ports they declare", () => {
    for (const service of ofKind<V1Service>(objects, "Service")) {
      const targets = workloads(objects).filter((w) =>
        selects({ matchLabels: service.spec?.selector ?? { "": "no selector" } }, w.podLabels),
      );
      expect(
        targets.map((w) => w.name),
        `Service ${service.metadata?.name}`,
      ).toHaveLength(1);
      const [target] = targets;
      for (const port of service.spec?.ports ?? []) {
        const resolved = target && resolvePodPort(target.pod, port.targetPort ?? port.port);
        expect(resolved, `Service ${service.metadata?.name} port ${port.name}`).toBeDefined();
      }
    }
  });

  it("publishes the agent on SPOP 9000 and admin 9090, and HAProxy on 80 and stats 8404", () => {
    const ports = (serviceName: string) =>
      named<V1Service>(objects, "Service", serviceName).spec?.ports?.map((p) => [p.name, p.port]);
    expect(ports("gcra-rate-limiting")).toEqual([
      ["spop", defaultPorts.spop],
      ["admin", defaultPorts.admin],
    ]);
    expect(ports("haproxy")).toEqual([
      ["http", 80],
      ["stats", 8404],
    ]);
  });

  it("covers each Deployment with a PodDisruptionBudget that leaves pods running", () => {
    const budgets = ofKind<V1PodDisruptionBudget>(objects, "PodDisruptionBudget");
    for (const w of workloads(objects).filter((w) => w.kind !== "Job")) {
      const budget = budgets.find((b) => selects(b.spec?.selector, w.podLabels));
      expect(budget, `${w.kind} ${w.name}`).toBeDefined();
      expect(budget?.spec?.maxUnavailable ?? 0).toBe(1);
    }
  });

  it("autoscales the agent within the server slots HAProxy keeps for agents", () => {
    const hpa = named<V2HorizontalPodAutoscaler & V1HorizontalPodAutoscaler>(
      objects,
      "HorizontalPodAutoscaler",
      "gcra-rate-limiting",
    );
    expect(hpa.spec?.scaleTargetRef).toMatchObject({ kind: "Deployment", name: agent.name });
    expect(hpa.spec?.minReplicas).toBeGreaterThanOrEqual(2);
    const env = containerEnvironment(container(haproxy.pod, "haproxy"), { namespace });
    expect(hpa.spec?.maxReplicas).toBeLessThanOrEqual(Number(env.AGENT_SLOTS));
    expect(hpa.spec?.maxReplicas).toBeGreaterThanOrEqual(hpa.spec?.minReplicas ?? 1);
  });

  describe("HAProxy's own policies", () => {
    const hpa = named<V2HorizontalPodAutoscaler & V1HorizontalPodAutoscaler>(
      objects,
      "HorizontalPodAutoscaler",
      "haproxy",
    );
    const policy = named<V1NetworkPolicy>(objects, "NetworkPolicy", "haproxy");
    const haproxyContainer = container(haproxy.pod, "haproxy");

    it("autoscales HAProxy, which therefore sets no replica count of its own", () => {
      expect(hpa.spec?.scaleTargetRef).toMatchObject({ kind: "Deployment", name: haproxy.name });
      expect(hpa.spec?.minReplicas).toBeGreaterThanOrEqual(2);
      expect(hpa.spec?.maxReplicas).toBeGreaterThan(hpa.spec?.minReplicas ?? 0);
      const deployment = named<{ spec?: { replicas?: number } } & KubernetesObject>(
        objects,
        "Deployment",
        "haproxy",
      );
      expect(deployment.spec?.replicas).toBeUndefined();
    });

    it("keeps every HAProxy's SPOE connections to one agent within the agent's connection cap", () => {
      const env = containerEnvironment(haproxyContainer, { namespace });
      const perServer = Number(env.AGENT_MAXCONN);
      expect(perServer).toBeGreaterThan(0);
      expect((hpa.spec?.maxReplicas ?? 0) * perServer).toBeLessThanOrEqual(agentConnectionCap);
    });

    it("admits HTTP from the ingress only and stats/metrics from monitoring only", () => {
      expect(selects(policy.spec?.podSelector, haproxy.podLabels)).toBe(true);
      expect(policy.spec?.policyTypes).toEqual(["Ingress"]);
      const [http, stats, ...rest] = policy.spec?.ingress ?? [];
      expect(rest).toEqual([]);
      expect(http?.ports?.map((p) => resolvePort(haproxyContainer, p.port))).toEqual([
        resolvePort(haproxyContainer, "http"),
      ]);
      expect(http?._from).toEqual(
        name.startsWith("openshift")
          ? [
              {
                namespaceSelector: { matchLabels: { "policy-group.network.openshift.io/ingress": "" } },
                podSelector: {},
              },
            ]
          : [{ namespaceSelector: { matchLabels: { "kubernetes.io/metadata.name": "ingress-nginx" } } }],
      );
      expect(stats?.ports?.map((p) => resolvePort(haproxyContainer, p.port))).toEqual([
        resolvePort(haproxyContainer, "stats"),
      ]);
      expect(stats?._from?.[0]?.namespaceSelector?.matchLabels?.["kubernetes.io/metadata.name"]).toBe(
        name.startsWith("openshift") ? "openshift-user-workload-monitoring" : "monitoring",
      );
    });
  });

  describe("the agent's NetworkPolicy", () => {
    const policy = named<V1NetworkPolicy>(objects, "NetworkPolicy", "gcra-rate-limiting");
    const ingress = policy.spec?.ingress ?? [];
    const egress = policy.spec?.egress ?? [];

    it("applies to the agent pods only, for both directions", () => {
      const selected = workloads(objects).filter((w) => selects(policy.spec?.podSelector, w.podLabels));
      expect(selected.map((w) => w.name)).toEqual([agent.name]);
      expect(policy.spec?.policyTypes).toEqual(["Ingress", "Egress"]);
    });

    it("admits HAProxy on the SPOP port and the monitoring namespace on the admin port, nothing else", () => {
      expect(ingress).toHaveLength(2);
      const [fromHaproxy, fromMonitoring] = ingress;
      expect(selects(fromHaproxy?._from?.[0]?.podSelector, haproxy.podLabels)).toBe(true);
      expect(fromHaproxy?._from?.[0]?.namespaceSelector).toBeUndefined();
      expect(fromHaproxy?.ports?.map((p) => resolvePort(agentContainer, p.port))).toEqual([
        defaultPorts.spop,
      ]);
      const monitoring =
        fromMonitoring?._from?.[0]?.namespaceSelector?.matchLabels?.["kubernetes.io/metadata.name"];
      expect(monitoring).toBe(
        name.startsWith("openshift") ? "openshift-user-workload-monitoring" : "monitoring",
      );
      expect(fromMonitoring?.ports?.map((p) => resolvePort(agentContainer, p.port))).toEqual([
        defaultPorts.admin,
      ]);
    });

    it("lets the agent reach Valkey on 6379 and DNS, nothing else", () => {
      expect(egress).toHaveLength(2);
      const [toValkey, toDns] = egress;
      expect(toValkey?.ports).toEqual([{ port: 6379, protocol: "TCP" }]);
      const valkeyChartPod = { "app.kubernetes.io/name": "valkey", "app.kubernetes.io/instance": "valkey" };
      expect(selects(toValkey?.to?.[0]?.podSelector, valkeyChartPod)).toBe(true);
      for (const w of workloads(objects).filter((w) => w.podLabels["app.kubernetes.io/name"] === "valkey")) {
        expect(selects(toValkey?.to?.[0]?.podSelector, w.podLabels), w.name).toBe(true);
      }
      const dnsPort = name.startsWith("openshift") ? 5353 : 53;
      expect(toDns?.ports).toEqual([
        { port: dnsPort, protocol: "UDP" },
        { port: dnsPort, protocol: "TCP" },
      ]);
    });
  });

  it("mounts the generated HAProxy ConfigMap where haproxy.cfg expects its files", () => {
    const volume = haproxy.pod.volumes?.find((v) => v.configMap);
    const configMap = named<V1ConfigMap>(objects, "ConfigMap", volume?.configMap?.name ?? "");
    const mount = container(haproxy.pod, "haproxy").volumeMounts?.find((m) => m.name === volume?.name);
    expect(mount?.mountPath).toBe("/usr/local/etc/haproxy");
    expect(Object.keys(configMap.data ?? {}).sort()).toEqual(["haproxy.cfg", "spoe-rate-limit.conf"]);
    const spoeDefault = /\$\{SPOE_CONFIG-([^}]+)\}/.exec(configMap.data?.["haproxy.cfg"] ?? "")?.[1];
    expect(spoeDefault).toBe(`${mount?.mountPath}/spoe-rate-limit.conf`);
  });

  it("binds HAProxy on the unprivileged ports its container declares", () => {
    const c = container(haproxy.pod, "haproxy");
    const env = containerEnvironment(c, { namespace });
    const port = (bind: string | undefined) => Number(bind?.split(":").pop());
    expect(port(env.HTTP_BIND)).toBe(resolvePort(c, "http"));
    expect(port(env.STATS_BIND)).toBe(resolvePort(c, "stats"));
    expect(resolvePort(c, "http")).toBeGreaterThanOrEqual(1024);
    expect(Number(env.NBTHREAD)).toBeLessThanOrEqual(Number(c.resources?.limits?.cpu));
  });

  if (name.startsWith("openshift")) {
    it("leaves the UID to OpenShift's restricted-v2 SCC: no fixed runAsUser, runAsGroup or fsGroup", () => {
      for (const w of workloads(objects)) {
        const pod = w.pod.securityContext;
        expect([pod?.runAsUser, pod?.runAsGroup, pod?.fsGroup], w.name).toEqual([
          undefined,
          undefined,
          undefined,
        ]);
        for (const c of containersOf(w.pod)) {
          expect(c.securityContext?.runAsUser, `${w.name}/${c.name}`).toBeUndefined();
        }
      }
    });

    it("routes to the HAProxy Service's HTTP port with edge TLS and replaced forwarding headers", () => {
      const route = objects.find((o) => o.kind === "Route") as KubernetesObject & {
        spec: { to: { name: string }; port: { targetPort: string } };
      };
      const service = named<V1Service>(objects, "Service", route.spec.to.name);
      expect(service.spec?.ports?.map((p) => p.name)).toContain(route.spec.port.targetPort);
      expect(route.metadata?.annotations?.["haproxy.router.openshift.io/set-forwarded-headers"]).toBe(
        "replace",
      );
    });
  } else {
    it("gives every pod a numeric non-root UID so the kubelet can enforce runAsNonRoot", () => {
      for (const w of workloads(objects)) {
        expect(w.pod.securityContext?.runAsUser, w.name).toBeGreaterThan(0);
      }
    });
  }
});

describe("the operator's documentation", () => {
  it("tells how to create every Secret the manifests reference, with its keys", () => {
    const readme = readFileSync(fromRoot("argocd/README.md"), "utf8");
    for (const { objects } of renderings) {
      for (const w of workloads(objects)) {
        for (const c of containersOf(w.pod)) {
          for (const variable of c.env ?? []) {
            const ref = variable.valueFrom?.secretKeyRef;
            if (!ref) continue;
            expect(readme).toContain(`create secret generic ${ref.name}`);
            expect(readme).toContain(`--from-literal=${ref.key}=`);
          }
        }
      }
    }
  });
});
