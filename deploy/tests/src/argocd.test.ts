import { existsSync, readdirSync, readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { parse } from "yaml";
import { kustomize, parseDocuments } from "./kustomize.ts";
import { fromRoot } from "./paths.ts";
import { schemaErrors } from "./schemas.ts";

interface Source {
  repoURL: string;
  targetRevision?: string;
  path?: string;
  chart?: string;
  ref?: string;
  helm?: { releaseName?: string; valueFiles?: string[] };
}
interface Application {
  metadata: { name: string; namespace: string; finalizers?: string[] };
  spec: {
    source?: Source;
    sources?: Source[];
    destination: { namespace?: string };
    syncPolicy?: { automated?: { prune?: boolean; selfHeal?: boolean }; syncOptions?: string[] };
  };
}

const repository = "https://github.com/spoekit/spoekit.git";
const targets = ["kubernetes", "openshift"] as const;
/** Where Argo CD runs: upstream's namespace, and the OpenShift GitOps operator's. */
const argoNamespace = { kubernetes: "argocd", openshift: "openshift-gitops" } as const;

const load = (file: string) => {
  const text = readFileSync(fromRoot(`argocd/${file}`), "utf8");
  return { file, text, document: parseDocuments(text)[0] ?? {}, app: parse(text) as Application };
};
const files = readdirSync(fromRoot("argocd"), { recursive: true, encoding: "utf8" })
  .filter((file) => file.endsWith(".yaml"))
  .sort();
const all = files.map(load);
const readme = readFileSync(fromRoot("argocd/README.md"), "utf8");
const chart = parse(
  readFileSync(fromRoot("deploy/tests/fixtures/valkey-helm-0.11.0/Chart.yaml"), "utf8"),
) as { name: string; version: string };

describe.each(all)("argocd/$file", ({ file, document, app }) => {
  it("validates against the Argo CD Application schema", () => {
    expect(schemaErrors(document)).toEqual([]);
  });

  it("syncs automatically with prune and self-heal and cleans up on delete", () => {
    expect(app.spec.syncPolicy?.automated).toEqual({ prune: true, selfHeal: true });
    expect(app.metadata.finalizers).toEqual(["resources-finalizer.argocd.argoproj.io"]);
  });

  it("lives in the Argo CD namespace of its target and takes this repository at main", () => {
    const target = targets.find((t) => file.includes(t));
    expect(target, "file named after a target").toBeDefined();
    expect(app.metadata.namespace).toBe(argoNamespace[target ?? "kubernetes"]);
    const own = [app.spec.source, ...(app.spec.sources ?? [])].filter((s) => s?.repoURL === repository);
    expect(own.length).toBe(1);
    expect(own[0]?.targetRevision).toBe("main");
  });

  it("is listed in argocd/README.md", () => {
    expect(readme).toContain(`argocd/${file}`);
  });
});

describe.each(targets)("argocd/%s/", (target) => {
  const spoekit = load(`${target}/spoekit.yaml`).app;

  it("syncs the overlay of its target into the namespace spoekit, creating it", () => {
    expect(spoekit.spec.source?.path).toBe(`deploy/overlays/${target}`);
    expect(existsSync(fromRoot(`deploy/overlays/${target}/kustomization.yaml`))).toBe(true);
    expect(spoekit.spec.destination.namespace).toBe("spoekit");
    expect(spoekit.spec.syncPolicy?.syncOptions).toContain("CreateNamespace=true");
  });

  it("is applied whole by the one command the documentation gives", () => {
    const docs = `${readme}\n${readFileSync(fromRoot("deploy/README.md"), "utf8")}`;
    expect(docs).toMatch(new RegExp(`^\\s*(kubectl|oc) apply -f argocd/${target}/$`, "m"));
  });
});

describe("argocd/openshift/console-dashboard.yaml", () => {
  const { app } = load("openshift/console-dashboard.yaml");

  it("syncs the dashboard ConfigMap into openshift-config-managed, where the console reads it", () => {
    const path = app.spec.source?.path ?? "";
    expect(app.spec.destination.namespace).toBe("openshift-config-managed");
    const rendered = kustomize("console dashboard", fromRoot(path)).documents;
    expect(rendered.map((d) => [d.kind, (d.metadata as { namespace?: string }).namespace])).toEqual([
      ["ConfigMap", "openshift-config-managed"],
    ]);
    expect(rendered.flatMap(schemaErrors)).toEqual([]);
    expect((rendered[0]?.metadata as { labels?: Record<string, string> } | undefined)?.labels).toMatchObject({
      "console.openshift.io/dashboard": "true",
    });
  });
});

describe.each(targets)("argocd/valkey-helm/%s.yaml (the valkey chart option)", (target) => {
  const { app, text } = load(`valkey-helm/${target}.yaml`);
  const [helmSource, valuesSource] = app.spec.sources ?? [];

  it("installs the valkey chart at the version its values are tested against", () => {
    expect(app.spec.source).toBeUndefined();
    expect(helmSource?.chart).toBe(chart.name);
    expect(helmSource?.targetRevision).toBe(chart.version);
  });

  it("names the release valkey, whose primary Service the base's VALKEY_NODES points at", () => {
    const deployment = readFileSync(fromRoot("deploy/base/agent/deployment.yaml"), "utf8");
    expect(helmSource?.helm?.releaseName).toBe("valkey");
    expect(deployment).toContain(`value: redis://${helmSource?.helm?.releaseName}:6379`);
  });

  it("reads the values of its target from this repository, at paths that exist", () => {
    expect(valuesSource).toMatchObject({ repoURL: repository, ref: "values" });
    const expected = ["deploy/valkey/values.yaml"];
    if (target === "openshift") expected.push("deploy/valkey/values-openshift.yaml");
    expect(helmSource?.helm?.valueFiles).toEqual(expected.map((path) => `$values/${path}`));
    for (const path of expected) expect(existsSync(fromRoot(path)), path).toBe(true);
    expect(text).toContain("valkey-cluster");
  });
});
