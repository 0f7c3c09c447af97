import type { V1Capabilities, V1PodSpec, V1SecurityContext } from "@kubernetes/client-node";

/**
 * The Pod Security Standards' "restricted" profile (which includes "baseline"), as checks on a
 * pod spec. Returns one message per violation; an empty list means the pod is admitted by a
 * namespace labelled `pod-security.kubernetes.io/enforce: restricted`.
 */
export function restrictedViolations(pod: V1PodSpec): string[] {
  const violations: string[] = [];
  const podContext = pod.securityContext ?? {};
  const containers = [
    ...(pod.initContainers ?? []),
    ...pod.containers,
    ...((pod.ephemeralContainers ?? []) as { name: string; securityContext?: V1SecurityContext }[]),
  ];

  // baseline: host namespaces, host ports, host paths
  if (pod.hostNetwork) violations.push("hostNetwork must not be true");
  if (pod.hostPID) violations.push("hostPID must not be true");
  if (pod.hostIPC) violations.push("hostIPC must not be true");
  for (const c of [...(pod.initContainers ?? []), ...pod.containers]) {
    for (const port of c.ports ?? []) {
      if (port.hostPort) violations.push(`container ${c.name}: hostPort ${port.hostPort} is not allowed`);
    }
  }

  // restricted: volume types
  const allowedVolumes = [
    "configMap",
    "csi",
    "downwardAPI",
    "emptyDir",
    "ephemeral",
    "persistentVolumeClaim",
    "projected",
    "secret",
  ];
  for (const volume of pod.volumes ?? []) {
    const types = Object.keys(volume).filter((key) => key !== "name");
    for (const type of types) {
      if (!allowedVolumes.includes(type))
        violations.push(`volume ${volume.name}: type ${type} is not allowed`);
    }
  }

  // baseline: sysctls limited to the safe set
  const safeSysctls = [
    "kernel.shm_rmid_forced",
    "net.ipv4.ip_local_port_range",
    "net.ipv4.ip_unprivileged_port_start",
    "net.ipv4.tcp_syncookies",
    "net.ipv4.ping_group_range",
    "net.ipv4.ip_local_reserved_ports",
    "net.ipv4.tcp_keepalive_time",
    "net.ipv4.tcp_fin_timeout",
    "net.ipv4.tcp_keepalive_intvl",
    "net.ipv4.tcp_keepalive_probes",
  ];
  for (const sysctl of podContext.sysctls ?? []) {
    if (!safeSysctls.includes(sysctl.name)) violations.push(`sysctl ${sysctl.name} is not in the safe set`);
  }

  const seccompAllowed = (type: string | undefined) => type === "RuntimeDefault" || type === "Localhost";
  const podSeccomp = podContext.seccompProfile?.type;
  if (podSeccomp !== undefined && !seccompAllowed(podSeccomp)) {
    violations.push(`pod seccompProfile ${podSeccomp} is not RuntimeDefault or Localhost`);
  }
  if (podContext.runAsUser === 0) violations.push("pod runAsUser must not be 0");
  checkSeLinux(podContext.seLinuxOptions, "pod", violations);
  checkAppArmor(podContext.appArmorProfile?.type, "pod", violations);

  for (const c of containers) {
    const context = c.securityContext ?? {};
    const where = `container ${c.name}`;
    if (context.privileged) violations.push(`${where}: privileged must not be true`);
    if (context.allowPrivilegeEscalation !== false) {
      violations.push(`${where}: allowPrivilegeEscalation must be false`);
    }
    if (
      context.runAsNonRoot !== true &&
      !(podContext.runAsNonRoot === true && context.runAsNonRoot !== false)
    ) {
      violations.push(`${where}: runAsNonRoot must be true (pod or container)`);
    }
    if (context.runAsUser === 0) violations.push(`${where}: runAsUser must not be 0`);
    const seccomp = context.seccompProfile?.type;
    if (seccomp !== undefined ? !seccompAllowed(seccomp) : !seccompAllowed(podSeccomp)) {
      violations.push(`${where}: seccompProfile must be RuntimeDefault or Localhost (pod or container)`);
    }
    checkCapabilities(context.capabilities, where, violations);
    if (context.procMount !== undefined && context.procMount !== "Default") {
      violations.push(`${where}: procMount must be Default`);
    }
    checkSeLinux(context.seLinuxOptions, where, violations);
    checkAppArmor(context.appArmorProfile?.type, where, violations);
  }
  return violations;
}

function checkCapabilities(
  capabilities: V1Capabilities | undefined,
  where: string,
  violations: string[],
): void {
  if (!(capabilities?.drop ?? []).includes("ALL")) violations.push(`${where}: capabilities must drop ALL`);
  for (const added of capabilities?.add ?? []) {
    if (added !== "NET_BIND_SERVICE") violations.push(`${where}: capability ${added} may not be added`);
  }
}

function checkSeLinux(
  options: { type?: string; user?: string; role?: string } | undefined,
  where: string,
  violations: string[],
): void {
  if (!options) return;
  const allowedTypes = ["", "container_t", "container_init_t", "container_kvm_t", "container_engine_t"];
  if (options.type !== undefined && !allowedTypes.includes(options.type)) {
    violations.push(`${where}: SELinux type ${options.type} is not allowed`);
  }
  if (options.user) violations.push(`${where}: SELinux user may not be set`);
  if (options.role) violations.push(`${where}: SELinux role may not be set`);
}

function checkAppArmor(type: string | undefined, where: string, violations: string[]): void {
  if (type !== undefined && type !== "RuntimeDefault" && type !== "Localhost") {
    violations.push(`${where}: AppArmor profile ${type} is not allowed`);
  }
}
