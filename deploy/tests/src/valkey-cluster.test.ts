import { execFile } from "node:child_process";
import { promisify } from "node:util";
import type { V1Job } from "@kubernetes/client-node";
import { dataServers, type RedisServer, requireBinary, startRedis, waitFor } from "@spoekit/harness";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { kustomizeWithValkeyCluster } from "./kustomize.ts";
import { fromRoot } from "./paths.ts";
import { container, containerEnvironment, named, workload } from "./workloads.ts";

const run = promisify(execFile);
const password = "cluster-admin-password";
const rendered = kustomizeWithValkeyCluster("kubernetes + valkey-cluster", "kubernetes").objects;

describe("the Valkey Cluster component", () => {
  it("persists every node with an append-only file fsynced every second", () => {
    const configMap = rendered.find(
      (o) => o.kind === "ConfigMap" && o.metadata?.name?.startsWith("valkey-cluster-config"),
    ) as { data?: Record<string, string> } | undefined;
    expect(configMap?.data?.["valkey.conf"]).toMatch(/^appendonly yes$/m);
    expect(configMap?.data?.["valkey.conf"]).toMatch(/^appendfsync everysec$/m);
    expect(configMap?.data?.["valkey.conf"]).toMatch(/^cluster-enabled yes$/m);
  });

  it("runs three nodes, each with its own volume", () => {
    const statefulset = rendered.find((o) => o.kind === "StatefulSet") as {
      spec?: { replicas?: number; volumeClaimTemplates?: unknown[] };
    };
    expect(statefulset.spec?.replicas).toBe(3);
    expect(statefulset.spec?.volumeClaimTemplates).toHaveLength(1);
  });

  it("points the agents at every node, in cluster mode", () => {
    const agent = workload(rendered, "Deployment", "gcra-rate-limiting");
    const env = containerEnvironment(container(agent.pod, "agent"), { namespace: "spoekit" });
    expect(env.VALKEY_MODE).toBe("cluster");
    const job = named<V1Job>(rendered, "Job", "valkey-cluster-create");
    const jobEnv = containerEnvironment(
      container(job.spec?.template.spec ?? { containers: [] }, "cluster-create"),
      {
        namespace: "spoekit",
      },
    );
    const nodes = (jobEnv.CLUSTER_NODES ?? "").split(" ").map((node) => `redis://${node}`);
    expect(env.VALKEY_NODES?.split(",")).toEqual(nodes);
  });
});

describe("cluster-create.sh", () => {
  const nodes: RedisServer[] = [];
  beforeAll(async () => {
    for (let i = 0; i < 3; i++)
      nodes.push(await startRedis({ cluster: true, args: ["--requirepass", password] }));
  });
  afterAll(async () => {
    await Promise.all(nodes.map((node) => node.stop()));
  });

  const createCluster = () =>
    run(requireBinary("sh"), [fromRoot("deploy/valkey-cluster/cluster-create.sh")], {
      env: {
        PATH: process.env.PATH ?? "",
        VALKEY_CLI: dataServers.valkey.cli.path(),
        CLUSTER_NODES: nodes.map((node) => `${node.host}:${node.port}`).join(" "),
        VALKEY_USER: "default",
        REDISCLI_AUTH: password,
        WAIT_TRIES: "5",
      },
    });

  it("joins the nodes into one cluster, then changes nothing when run again", async () => {
    const first = await createCluster();
    expect(first.stdout).toContain("cluster created");
    await waitFor(
      async () => String(await nodes[0]?.command("CLUSTER", "INFO")).includes("cluster_state:ok"),
      {
        what: "cluster_state:ok",
        timeoutMs: 15_000,
      },
    );
    for (const node of nodes)
      expect(String(await node.command("CLUSTER", "INFO"))).toContain("cluster_known_nodes:3");

    const second = await createCluster();
    expect(second.stdout).toMatch(/cluster exists .*cluster_state:ok, 3 known nodes\): nothing to do/);
    expect(String(await nodes[2]?.command("CLUSTER", "INFO"))).toContain("cluster_known_nodes:3");
  }, 60_000);
});
