import { execFile } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import type { V1ConfigMap, V1Job, V1StatefulSet } from "@kubernetes/client-node";
import {
  type ClusterNodeInfo,
  dataServers,
  parseClusterNodes,
  type RedisServer,
  rawCommands,
  requireBinary,
  startRedis,
  total,
  waitFor,
} from "@spoekit/harness";
import { TypedValue } from "@spoekit/spoe-agent";
import { checkRateMessage, connectClient } from "@spoekit/spoe-agent/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type AgentProcess, scrape, startAgent } from "./agent-process.ts";
import { kustomize } from "./kustomize.ts";
import { fromRoot } from "./paths.ts";
import { writeAcl } from "./valkey-acl.ts";
import { container, containerEnvironment, named, workload } from "./workloads.ts";

const run = promisify(execFile);
const rendered = kustomize("kubernetes", fromRoot("deploy/overlays/kubernetes")).objects;
const job = named<V1Job>(rendered, "Job", "valkey-cluster-create");
const jobEnv = containerEnvironment(
  container(job.spec?.template.spec ?? { containers: [] }, "cluster-create"),
  {
    namespace: "spoekit",
  },
);
const statefulset = named<V1StatefulSet>(rendered, "StatefulSet", "valkey-cluster");
const valkeyConf =
  rendered
    .filter((o): o is V1ConfigMap => o.kind === "ConfigMap")
    .find((o) => o.metadata?.name?.startsWith("valkey-cluster-config"))?.data?.["valkey.conf"] ?? "";
const aclRules =
  container(statefulset.spec?.template.spec ?? { containers: [] }, "acl").env?.find(
    (v) => v.name === "GCRA_PERMISSIONS",
  )?.value ?? "";

describe("the Valkey Cluster component (the default store)", () => {
  it("persists every node with an append-only file fsynced every second", () => {
    expect(valkeyConf).toMatch(/^appendonly yes$/m);
    expect(valkeyConf).toMatch(/^appendfsync everysec$/m);
    expect(valkeyConf).toMatch(/^cluster-enabled yes$/m);
  });

  it("runs six nodes, each with its own volume, joined as three primaries with a replica each", () => {
    expect(statefulset.spec?.replicas).toBe(6);
    expect(statefulset.spec?.volumeClaimTemplates).toHaveLength(1);
    expect(jobEnv.CLUSTER_NODES?.split(" ")).toHaveLength(6);
    expect(jobEnv.CLUSTER_REPLICAS).toBe("1");
  });

  it("points the agents at every node, in cluster mode", () => {
    const agent = workload(rendered, "Deployment", "gcra-rate-limiting");
    const env = containerEnvironment(container(agent.pod, "agent"), { namespace: "spoekit" });
    expect(env.VALKEY_MODE).toBe("cluster");
    const nodes = (jobEnv.CLUSTER_NODES ?? "").split(" ").map((node) => `redis://${node}`);
    expect(env.VALKEY_NODES?.split(",")).toEqual(nodes);
  });
});

/**
 * The component's nodes on loopback: the rendered valkey.conf (with this test's ports,
 * directories and a shorter cluster-node-timeout), the ACL and replication credentials
 * written by write-acl.sh, joined by cluster-create.sh with the Job's environment.
 */
describe("six nodes as the component configures them", () => {
  const admin = "admin-password";
  const agentPassword = "agent-password";
  const secrets = mkdtempSync(join(tmpdir(), "spoekit-valkey-users-"));
  const nodes: RedisServer[] = [];
  let agent: AgentProcess | undefined;

  const ask = (node: RedisServer, ...command: string[]) =>
    rawCommands(node.port, [["AUTH", "default", admin], command]).then((replies) => String(replies[1]));
  const topology = async (live: RedisServer): Promise<ClusterNodeInfo[]> =>
    parseClusterNodes(await ask(live, "CLUSTER", "NODES"));

  beforeAll(async () => {
    writeAcl(secrets, { default: admin, gcra: agentPassword }, aclRules);
    // The pod's paths and listeners are the harness's here; everything else is the file as rendered.
    const config = valkeyConf
      .split("\n")
      .filter((line) => !/^(port|bind|dir|cluster-config-file) /.test(line))
      .join("\n")
      .replaceAll("/acl/", `${secrets}/`);
    // requirepass: the same password as the ACL file gives "default", for the harness's own
    // checks. The pods announce their DNS names (the StatefulSet's --cluster-announce-hostname),
    // these nodes their address.
    for (let i = 0; i < 6; i++)
      nodes.push(
        await startRedis({
          cluster: true,
          config,
          args: ["--requirepass", admin, "--cluster-announce-hostname", "127.0.0.1"],
        }),
      );
  }, 60_000);

  afterAll(async () => {
    await agent?.stop();
    await Promise.all(nodes.map((node) => node.stop()));
    rmSync(secrets, { recursive: true, force: true });
  });

  const createCluster = () =>
    run(requireBinary("sh"), [fromRoot("deploy/valkey-cluster/cluster-create.sh")], {
      env: {
        PATH: process.env.PATH ?? "",
        VALKEY_CLI: dataServers.valkey.cli.path(),
        CLUSTER_NODES: nodes.map((node) => `${node.host}:${node.port}`).join(" "),
        CLUSTER_REPLICAS: jobEnv.CLUSTER_REPLICAS ?? "",
        VALKEY_USER: jobEnv.VALKEY_USER ?? "",
        REDISCLI_AUTH: admin,
        WAIT_TRIES: "5",
      },
    });

  it("form three primaries whose replicas authenticate and sync, and cluster-create changes nothing twice", async () => {
    const first = await createCluster();
    expect(first.stdout).toContain("cluster created");
    await waitFor(
      async () => {
        const view = await topology(nodes[0] as RedisServer);
        const replicas = nodes.filter((node) => view.find((n) => n.port === node.port)?.role === "replica");
        if (replicas.length !== 3) return false;
        const links = await Promise.all(replicas.map((node) => ask(node, "INFO", "replication")));
        return links.every((info) => info.includes("master_link_status:up"));
      },
      { what: "three replicas in sync with their primaries", timeoutMs: 30_000 },
    );
    const view = await topology(nodes[0] as RedisServer);
    expect(view.filter((n) => n.role === "primary")).toHaveLength(3);
    const second = await createCluster();
    expect(second.stdout).toMatch(/cluster exists .*cluster_state:ok, 6 known nodes\): nothing to do/);
  }, 60_000);

  it("survive the loss of any one node: its replica takes over and the agent decides with Valkey again", async () => {
    agent = await startAgent({
      VALKEY_NODES: nodes.map((node) => `redis://127.0.0.1:${node.port}`).join(","),
      VALKEY_MODE: "cluster",
      VALKEY_USERNAME: "gcra",
      VALKEY_PASSWORD: agentPassword,
      SPOA_FAILURE_POLICY: "open",
      // Who decides is the point here, not how fast: a loaded machine must not turn a slow
      // answer into a policy decision.
      VALKEY_TIMEOUT: "1s",
      SPOA_WORKERS: "1",
    });
    const haproxy = await connectClient({ port: agent.spopPort });
    await haproxy.hello();
    // 60 clients: their keys land on every primary.
    const clients = Array.from({ length: 60 }, (_, i) => `198.51.100.${i + 1}`);
    const decideAll = async () => {
      for (const ip of clients) await haproxy.notify([checkRateMessage(ip, { ipXff: TypedValue.null })]);
    };
    const byStore = async () =>
      total(await scrape(agent?.adminPort ?? 0), "gcra_decisions_total", { source: "store" });
    let before = await byStore();
    await decideAll();
    expect((await byStore()) - before).toBe(clients.length);

    const primaries = (await topology(nodes[0] as RedisServer)).filter((n) => n.role === "primary");
    const victim = nodes.find((node) => node.port === primaries[0]?.port);
    if (!victim) throw new Error("no primary to stop");
    await victim.kill();
    const live = nodes.find((node) => node !== victim) as RedisServer;
    await waitFor(
      async () => {
        const info = await ask(live, "CLUSTER", "INFO");
        const view = await topology(live);
        return (
          info.includes("cluster_state:ok") &&
          view.filter((n) => n.role === "primary" && !n.failing).length === 3
        );
      },
      { what: "a replica promoted in place of the stopped primary", timeoutMs: 30_000 },
    );
    // Every client's key is decided by Valkey again, without restarting or reconfiguring the agent.
    await waitFor(
      async () => {
        before = await byStore();
        await decideAll();
        return (await byStore()) - before === clients.length;
      },
      { what: "every decision by the store after the failover", timeoutMs: 30_000 },
      () => agent?.process.output() ?? "",
    );
    await haproxy.disconnect();
  }, 90_000);
});
