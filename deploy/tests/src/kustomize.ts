import { execFileSync } from "node:child_process";
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type KubernetesObject, loadAllYaml } from "@kubernetes/client-node";
import { requireBinary } from "@spoekit/harness";
import { parseAllDocuments } from "yaml";
import { fromRoot } from "./paths.ts";

/** A plain object as YAML or JSON gives it. */
export type Plain = Record<string, unknown>;

/** The output of one `kubectl kustomize` run, parsed twice: as plain data and as client-node models. */
export interface Rendering {
  readonly name: string;
  readonly yaml: string;
  /** Each document as written, for schema validation and comparisons. */
  readonly documents: Plain[];
  /** The same documents deserialized by @kubernetes/client-node (unknown fields dropped). */
  readonly objects: KubernetesObject[];
}

export function parseDocuments(text: string): Plain[] {
  return parseAllDocuments(text).map((document) => {
    if (document.errors.length > 0) throw new Error(document.errors.map((e) => e.message).join("\n"));
    return document.toJS() as Plain;
  });
}

/** Renders a kustomization directory with `kubectl kustomize`. */
export function kustomize(name: string, directory: string): Rendering {
  const kubectl = requireBinary("kubectl");
  const yaml = execFileSync(kubectl, ["kustomize", directory], { encoding: "utf8", stdio: "pipe" });
  return { name, yaml, documents: parseDocuments(yaml), objects: loadAllYaml(yaml) as KubernetesObject[] };
}

/** The component line of the Kubernetes overlay that makes the Valkey Cluster the store. */
export const valkeyClusterComponent = "  - ../../valkey-cluster\n";

/**
 * Renders an overlay of a copy of deploy/ after `edit` changed the Kubernetes overlay's
 * kustomization.yaml (which the OpenShift overlay builds on); `edit` must change something.
 */
export function kustomizeEdited(
  name: string,
  overlay: "kubernetes" | "openshift",
  edit: (kustomization: string) => string,
): Rendering {
  const copy = mkdtempSync(join(tmpdir(), "spoekit-deploy-"));
  try {
    for (const part of ["base", "overlays", "valkey-cluster", "components"]) {
      cpSync(fromRoot(`deploy/${part}`), join(copy, part), { recursive: true });
    }
    const file = join(copy, "overlays/kubernetes/kustomization.yaml");
    const text = readFileSync(file, "utf8");
    const edited = edit(text);
    if (edited === text) throw new Error(`${name}: the edit changed nothing in deploy/overlays/kubernetes`);
    writeFileSync(file, edited);
    return kustomize(name, join(copy, "overlays", overlay));
  } finally {
    rmSync(copy, { recursive: true, force: true });
  }
}

/**
 * Renders an overlay after the edit deploy/README.md describes for the valkey Helm chart
 * option: the valkey-cluster component left out of the Kubernetes overlay.
 */
export function kustomizeWithValkeyChart(name: string, overlay: "kubernetes" | "openshift"): Rendering {
  return kustomizeEdited(name, overlay, (text) => text.replace(valkeyClusterComponent, ""));
}

/** Every way the repository's manifests are meant to be rendered: the defaults first. */
export function renderAll(): Rendering[] {
  return [
    kustomize("kubernetes", fromRoot("deploy/overlays/kubernetes")),
    kustomize("openshift", fromRoot("deploy/overlays/openshift")),
    kustomizeWithValkeyChart("kubernetes + valkey chart", "kubernetes"),
    kustomizeWithValkeyChart("openshift + valkey chart", "openshift"),
  ];
}
