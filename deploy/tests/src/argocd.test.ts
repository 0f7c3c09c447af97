import { existsSync, readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { parse } from "yaml";
import { parseDocuments } from "./kustomize.ts";
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
  metadata: { name: string; finalizers?: string[] };
  spec: {
    source?: Source;
    sources?: Source[];
    destination: { namespace?: string };
    syncPolicy?: { automated?: { prune?: boolean; selfHeal?: boolean }; syncOptions?: string[] };
  };
}

const repository = "https://github.com/spoekit/spoekit.git";
const load = (file: string) => {
  const text = readFileSync(fromRoot(`argocd/${file}`), "utf8");
  return { text, document: parseDocuments(text)[0] ?? {}, app: parse(text) as Application };
};
const spoe = load("application-spoe.yaml");
const valkey = load("application-valkey.yaml");
const chart = parse(
  readFileSync(fromRoot("deploy/tests/fixtures/valkey-helm-0.11.0/Chart.yaml"), "utf8"),
) as {
  name: string;
  version: string;
};

describe.each([
  { name: "application-spoe.yaml", ...spoe },
  { name: "application-valkey.yaml", ...valkey },
])("argocd/$name", ({ document, app }) => {
  it("validates against the Argo CD Application schema", () => {
    expect(schemaErrors(document)).toEqual([]);
  });

  it("syncs automatically with prune and self-heal, creates the namespace, and cleans up on delete", () => {
    expect(app.spec.syncPolicy?.automated).toEqual({ prune: true, selfHeal: true });
    expect(app.spec.syncPolicy?.syncOptions).toContain("CreateNamespace=true");
    expect(app.metadata.finalizers).toEqual(["resources-finalizer.argocd.argoproj.io"]);
    expect(app.spec.destination.namespace).toBe("spoekit");
  });
});

describe("argocd/application-spoe.yaml", () => {
  it("syncs a Kustomize overlay of this repository that exists", () => {
    const source = spoe.app.spec.source;
    expect(source?.repoURL).toBe(repository);
    expect(source?.path).toMatch(/^deploy\/overlays\//);
    expect(existsSync(fromRoot(`${source?.path}/kustomization.yaml`))).toBe(true);
  });

  it("names the OpenShift overlay in its comment, and that overlay exists too", () => {
    expect(spoe.text).toContain("deploy/overlays/openshift");
    expect(existsSync(fromRoot("deploy/overlays/openshift/kustomization.yaml"))).toBe(true);
  });
});

describe("argocd/application-valkey.yaml", () => {
  const [helmSource, valuesSource] = valkey.app.spec.sources ?? [];

  it("installs the valkey chart at the version its values are tested against", () => {
    expect(valkey.app.spec.source).toBeUndefined();
    expect(helmSource?.chart).toBe(chart.name);
    expect(helmSource?.targetRevision).toBe(chart.version);
  });

  it("names the release valkey, whose primary Service the agents' VALKEY_NODES points at", () => {
    const deployment = readFileSync(fromRoot("deploy/base/agent/deployment.yaml"), "utf8");
    expect(helmSource?.helm?.releaseName).toBe("valkey");
    expect(deployment).toContain(`value: redis://${helmSource?.helm?.releaseName}:6379`);
  });

  it("reads its values from this repository through the $values reference, at paths that exist", () => {
    expect(valuesSource).toMatchObject({ repoURL: repository, ref: "values" });
    const files = helmSource?.helm?.valueFiles ?? [];
    expect(files).toEqual(["$values/deploy/valkey/values.yaml"]);
    const documented = [...valkey.text.matchAll(/\$values\/(\S+)/g)].map((m) => m[1] ?? "");
    expect(documented).toEqual(["deploy/valkey/values.yaml", "deploy/valkey/values-openshift.yaml"]);
    for (const path of documented) expect(existsSync(fromRoot(path)), path).toBe(true);
  });
});
