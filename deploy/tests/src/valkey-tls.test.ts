import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { V1Job, V1StatefulSet } from "@kubernetes/client-node";
import { loadConfig } from "@spoekit/gcra-rate-limiting";
import {
  createTlsMaterial,
  freePort,
  type ManagedProcess,
  requireBinary,
  spawnManaged,
  waitFor,
} from "@spoekit/harness";
import { afterAll, describe, expect, it } from "vitest";
import { kustomizeEdited } from "./kustomize.ts";
import { restrictedViolations } from "./pod-security.ts";
import { schemaErrors } from "./schemas.ts";
import { container, containerEnvironment, named, workload, workloads } from "./workloads.ts";

/** The line deploy/components/valkey-tls/kustomization.yaml tells operators to add. */
const withTls = (text: string) =>
  text.replace("  - ../../valkey-cluster\n", "  - ../../valkey-cluster\n  - ../../components/valkey-tls\n");
const renderings = [
  kustomizeEdited("kubernetes + valkey-tls", "kubernetes", withTls),
  kustomizeEdited("openshift + valkey-tls", "openshift", withTls),
];
const caPath = "/etc/valkey-tls/ca.crt";

describe.each(renderings)("$name", ({ documents, objects }) => {
  const agent = workload(objects, "Deployment", "gcra-rate-limiting");
  const agentContainer = container(agent.pod, "agent");
  const env = containerEnvironment(agentContainer, { namespace: "spoekit" });

  it("validates every object and keeps every pod within the restricted profile", () => {
    expect(documents.flatMap((d) => schemaErrors(d).map((e) => `${String(d.kind)}: ${e}`))).toEqual([]);
    for (const w of workloads(objects)) expect(restrictedViolations(w.pod), w.name).toEqual([]);
  });

  it("connects the agents with rediss:// to every node, trusting the CA of the Secret valkey-tls", () => {
    const read: string[] = [];
    const config = loadConfig(
      env,
      () => 1,
      (path) => {
        read.push(path);
        return "-----BEGIN CERTIFICATE-----\n";
      },
    );
    expect(read).toEqual([caPath]);
    expect(config.valkeyNodes.map((url) => url.protocol)).toEqual(Array(6).fill("rediss:"));
    const job = named<V1Job>(objects, "Job", "valkey-cluster-create");
    const jobEnv = containerEnvironment(
      container(job.spec?.template.spec ?? { containers: [] }, "cluster-create"),
      {
        namespace: "spoekit",
      },
    );
    expect(env.VALKEY_NODES?.split(",")).toEqual(
      (jobEnv.CLUSTER_NODES ?? "").split(" ").map((node) => `rediss://${node}`),
    );
    const mount = agentContainer.volumeMounts?.find((m) => caPath.startsWith(`${m.mountPath}/`));
    const volume = agent.pod.volumes?.find((v) => v.name === mount?.name);
    expect(volume?.secret?.secretName).toBe("valkey-tls");
    expect(volume?.secret?.items).toEqual([{ key: "ca.crt", path: "ca.crt" }]);
  });

  it("serves TLS only on the nodes, for clients, replication and the cluster bus", () => {
    const command = named<V1StatefulSet>(objects, "StatefulSet", "valkey-cluster").spec?.template.spec
      ?.containers[0]?.command;
    const flag = (name: string) => command?.[command.indexOf(name) + 1];
    expect([flag("--port"), flag("--tls-port")]).toEqual(["0", "6379"]);
    expect([flag("--tls-replication"), flag("--tls-cluster")]).toEqual(["yes", "yes"]);
  });
});

describe("the nodes' TLS flags and the cluster-create Job's valkey-cli flags", () => {
  const rendered = renderings[0]?.objects ?? [];
  const dir = mkdtempSync(join(tmpdir(), "spoekit-valkey-tls-"));
  let server: ManagedProcess | undefined;
  afterAll(async () => {
    await server?.stop("SIGTERM");
    rmSync(dir, { recursive: true, force: true });
  });

  it("start a server that answers valkey-cli over TLS with the Secret's CA, and refuses clear text", async () => {
    const tls = createTlsMaterial(dir);
    const files: Record<string, string> = {
      "/tls/tls.crt": tls.certFile,
      "/tls/tls.key": tls.keyFile,
      "/tls/ca.crt": tls.caFile,
    };
    const command =
      named<V1StatefulSet>(rendered, "StatefulSet", "valkey-cluster").spec?.template.spec?.containers[0]
        ?.command ?? [];
    const port = await freePort();
    // The flags after the configuration file and its announced hostname, with this test's
    // files and port instead of the pod's.
    const flags = command
      .slice(command.indexOf("--cluster-announce-hostname") + 2)
      .map((arg) => files[arg] ?? (arg === "6379" ? String(port) : arg));
    expect(flags).toContain("--tls-port");
    server = spawnManaged(requireBinary("redis-server"), ["--dir", dir, "--save", "", ...flags]);
    const job = named<V1Job>(rendered, "Job", "valkey-cluster-create");
    const cliTls = (
      containerEnvironment(container(job.spec?.template.spec ?? { containers: [] }, "cluster-create"), {
        namespace: "spoekit",
      }).VALKEY_CLI_TLS ?? ""
    )
      .split(" ")
      .map((arg) => files[arg] ?? arg);
    const cli = (args: string[]) => {
      try {
        return execFileSync(
          requireBinary("redis-cli"),
          [...args, "-h", "127.0.0.1", "-p", String(port), "ping"],
          {
            encoding: "utf8",
            stdio: "pipe",
            timeout: 5000,
          },
        ).trim();
      } catch (error) {
        return String(error);
      }
    };
    await waitFor(
      async () => cli(cliTls) === "PONG",
      { what: "PONG over TLS", timeoutMs: 10_000 },
      () => server?.output() ?? "",
    );
    expect(cli([])).not.toBe("PONG");
  }, 30_000);
});
