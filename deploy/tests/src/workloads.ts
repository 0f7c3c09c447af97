import type {
  IntOrString,
  KubernetesObject,
  V1Container,
  V1Deployment,
  V1EnvVar,
  V1Job,
  V1LabelSelector,
  V1PodSpec,
  V1StatefulSet,
} from "@kubernetes/client-node";

/** A pod template of a Deployment, StatefulSet or Job. */
export interface Workload {
  readonly kind: string;
  readonly name: string;
  readonly namespace: string | undefined;
  readonly podLabels: Record<string, string>;
  readonly podAnnotations: Record<string, string>;
  readonly pod: V1PodSpec;
}

export function ofKind<T extends KubernetesObject>(objects: readonly KubernetesObject[], kind: string): T[] {
  return objects.filter((object) => object.kind === kind) as T[];
}

export function named<T extends KubernetesObject>(
  objects: readonly KubernetesObject[],
  kind: string,
  name: string,
): T {
  const found = ofKind<T>(objects, kind).find((object) => object.metadata?.name === name);
  if (!found) throw new Error(`no ${kind} named ${name}`);
  return found;
}

export function workloads(objects: readonly KubernetesObject[]): Workload[] {
  const templated = [
    ...ofKind<V1Deployment>(objects, "Deployment"),
    ...ofKind<V1StatefulSet>(objects, "StatefulSet"),
    ...ofKind<V1Job>(objects, "Job"),
  ];
  return templated.map((object) => {
    const template = object.spec?.template;
    if (!template?.spec) throw new Error(`${object.kind} ${object.metadata?.name} has no pod template`);
    return {
      kind: object.kind ?? "",
      name: object.metadata?.name ?? "",
      namespace: object.metadata?.namespace,
      podLabels: template.metadata?.labels ?? {},
      podAnnotations: template.metadata?.annotations ?? {},
      pod: template.spec,
    };
  });
}

export function workload(objects: readonly KubernetesObject[], kind: string, name: string): Workload {
  const found = workloads(objects).find((w) => w.kind === kind && w.name === name);
  if (!found) throw new Error(`no ${kind} named ${name}`);
  return found;
}

/** Every container of a pod: init containers first, as the kubelet starts them. */
export function containersOf(pod: V1PodSpec): V1Container[] {
  return [...(pod.initContainers ?? []), ...pod.containers];
}

export function container(pod: V1PodSpec, name: string): V1Container {
  const found = containersOf(pod).find((c) => c.name === name);
  if (!found) throw new Error(`no container named ${name}`);
  return found;
}

/** Does a label selector (matchLabels and matchExpressions) select these labels? */
export function selects(selector: V1LabelSelector | undefined, labels: Record<string, string>): boolean {
  if (!selector) return false;
  const byLabels = Object.entries(selector.matchLabels ?? {}).every(([key, value]) => labels[key] === value);
  const byExpressions = (selector.matchExpressions ?? []).every((expression) => {
    const value = labels[expression.key];
    switch (expression.operator) {
      case "In":
        return value !== undefined && (expression.values ?? []).includes(value);
      case "NotIn":
        return value === undefined || !(expression.values ?? []).includes(value);
      case "Exists":
        return value !== undefined;
      case "DoesNotExist":
        return value === undefined;
      default:
        return false;
    }
  });
  return byLabels && byExpressions;
}

/** The container port a probe, Service or NetworkPolicy port means: by name or by number. */
export function resolvePort(c: V1Container, port: IntOrString | undefined): number | undefined {
  if (port === undefined) return undefined;
  const declared = c.ports ?? [];
  if (typeof port === "number") return declared.some((p) => p.containerPort === port) ? port : undefined;
  if (/^\d+$/.test(port)) return resolvePort(c, Number(port));
  return declared.find((p) => p.name === port)?.containerPort;
}

/** A container port across all containers of a pod, by name or number. */
export function resolvePodPort(pod: V1PodSpec, port: IntOrString | undefined): number | undefined {
  for (const c of pod.containers) {
    const resolved = resolvePort(c, port);
    if (resolved !== undefined) return resolved;
  }
  return undefined;
}

/**
 * The environment a container sees, as the kubelet builds it: `$(NAME)` references to earlier
 * variables expanded, `fieldRef` to the pod's namespace filled in, and Secret references replaced
 * by `secretValue` (their content is not in Git).
 */
export function containerEnvironment(
  c: V1Container,
  { namespace, secretValue = "from-a-secret" }: { namespace: string; secretValue?: string },
): Record<string, string> {
  const env: Record<string, string> = {};
  for (const variable of c.env ?? [])
    env[variable.name] = variableValue(variable, env, namespace, secretValue);
  return env;
}

function variableValue(
  variable: V1EnvVar,
  earlier: Record<string, string>,
  namespace: string,
  secret: string,
): string {
  if (variable.value !== undefined) {
    return variable.value.replace(
      /\$\(([A-Za-z_][A-Za-z0-9_]*)\)/g,
      (whole, name: string) => earlier[name] ?? whole,
    );
  }
  const from = variable.valueFrom;
  if (from?.secretKeyRef) return secret;
  if (from?.fieldRef?.fieldPath === "metadata.namespace") return namespace;
  if (from?.fieldRef?.fieldPath === "metadata.name") return "pod-0";
  throw new Error(`environment variable ${variable.name} has a source the tests do not model`);
}
