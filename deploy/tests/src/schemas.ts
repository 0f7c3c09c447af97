import { readFileSync } from "node:fs";
import { Application } from "@kubernetes-models/argo-cd/argoproj.io/v1alpha1";
import { Ajv, type ValidateFunction } from "ajv";
import { Deployment, StatefulSet } from "kubernetes-models/apps/v1";
import { HorizontalPodAutoscaler } from "kubernetes-models/autoscaling/v2";
import { Job } from "kubernetes-models/batch/v1";
import { NetworkPolicy } from "kubernetes-models/networking.k8s.io/v1";
import { PodDisruptionBudget } from "kubernetes-models/policy/v1";
import { ConfigMap, Secret, Service, ServiceAccount } from "kubernetes-models/v1";
import type { Plain } from "./kustomize.ts";
import { fromRoot } from "./paths.ts";

interface ValidatingModel {
  validate(): void;
}
type ModelClass = new (data: Plain) => ValidatingModel;

/** The kinds the manifests use, each with its generated schema; any other kind fails the test. */
const models: Record<string, ModelClass> = {
  "v1/ConfigMap": ConfigMap as unknown as ModelClass,
  "v1/Secret": Secret as unknown as ModelClass,
  "v1/Service": Service as unknown as ModelClass,
  "v1/ServiceAccount": ServiceAccount as unknown as ModelClass,
  "apps/v1/Deployment": Deployment as unknown as ModelClass,
  "apps/v1/StatefulSet": StatefulSet as unknown as ModelClass,
  "batch/v1/Job": Job as unknown as ModelClass,
  "policy/v1/PodDisruptionBudget": PodDisruptionBudget as unknown as ModelClass,
  "autoscaling/v2/HorizontalPodAutoscaler": HorizontalPodAutoscaler as unknown as ModelClass,
  "networking.k8s.io/v1/NetworkPolicy": NetworkPolicy as unknown as ModelClass,
  "argoproj.io/v1alpha1/Application": Application as unknown as ModelClass,
};

const ajv = new Ajv({ allErrors: true, strict: true, allowUnionTypes: true });
// The OpenAPI integer format of the CRD schemas (JavaScript numbers: safe integers).
ajv.addFormat("int64", { type: "number", validate: (value: number) => Number.isSafeInteger(value) });

/**
 * route.openshift.io/v1 Route, as OpenShift's API reference defines the fields used here;
 * unknown fields are refused so that a misspelt key cannot pass unnoticed.
 */
const routeTarget = {
  type: "object",
  required: ["kind", "name"],
  additionalProperties: false,
  properties: {
    kind: { enum: ["Service", ""] },
    name: { type: "string", minLength: 1 },
    weight: { type: "integer", minimum: 0, maximum: 256 },
  },
};
const validateRoute = ajv.compile({
  type: "object",
  required: ["apiVersion", "kind", "metadata", "spec"],
  additionalProperties: false,
  properties: {
    apiVersion: { const: "route.openshift.io/v1" },
    kind: { const: "Route" },
    metadata: { type: "object", required: ["name"], properties: { name: { type: "string", minLength: 1 } } },
    spec: {
      type: "object",
      required: ["to"],
      additionalProperties: false,
      properties: {
        host: { type: "string", maxLength: 253 },
        subdomain: { type: "string", maxLength: 253 },
        path: { type: "string", pattern: "^/" },
        to: routeTarget,
        alternateBackends: { type: "array", maxItems: 3, items: routeTarget },
        port: {
          type: "object",
          required: ["targetPort"],
          additionalProperties: false,
          properties: { targetPort: { type: ["integer", "string"], not: { enum: [0, ""] } } },
        },
        tls: {
          type: "object",
          required: ["termination"],
          additionalProperties: false,
          properties: {
            termination: { enum: ["edge", "reencrypt", "passthrough"] },
            insecureEdgeTerminationPolicy: { enum: ["Allow", "None", "Redirect", ""] },
            certificate: { type: "string" },
            key: { type: "string" },
            caCertificate: { type: "string" },
            destinationCACertificate: { type: "string" },
          },
        },
        wildcardPolicy: { enum: ["None", "Subdomain", ""] },
      },
    },
  },
});

/** prometheus-operator's custom resources, from the vendored CRD schemas (see their README). */
const crdFixture = (file: string) =>
  ajv.compile(
    JSON.parse(readFileSync(fromRoot(`deploy/tests/fixtures/prometheus-operator-crds/${file}`), "utf8")),
  );
const validators: Record<string, ValidateFunction> = {
  "route.openshift.io/v1/Route": validateRoute,
  "monitoring.coreos.com/v1/ServiceMonitor": crdFixture("servicemonitor.schema.json"),
  "monitoring.coreos.com/v1/PrometheusRule": crdFixture("prometheusrule.schema.json"),
};

/** Schema errors of one object (empty when valid). */
export function schemaErrors(document: Plain): string[] {
  const key = `${String(document.apiVersion)}/${String(document.kind)}`;
  const validate = validators[key];
  if (validate) return validate(document) ? [] : ajv.errorsText(validate.errors).split(", ");
  const Model = models[key];
  if (!Model) return [`no schema known for ${key}`];
  try {
    new Model(document).validate();
    return [];
  } catch (error) {
    return [error instanceof Error ? error.message : String(error)];
  }
}
