import { describe, expect, it } from "vitest";
import { restrictedViolations } from "./pod-security.ts";

describe("restrictedViolations", () => {
  it("admits a pod that meets the restricted profile", () => {
    expect(
      restrictedViolations({
        securityContext: { runAsNonRoot: true, seccompProfile: { type: "RuntimeDefault" } },
        containers: [
          {
            name: "app",
            securityContext: {
              allowPrivilegeEscalation: false,
              capabilities: { drop: ["ALL"], add: ["NET_BIND_SERVICE"] },
            },
          },
        ],
        volumes: [{ name: "tmp", emptyDir: {} }],
      }),
    ).toEqual([]);
  });

  it("names each way a pod breaks the restricted profile", () => {
    expect(
      restrictedViolations({
        hostNetwork: true,
        hostPID: true,
        securityContext: { runAsUser: 0, seccompProfile: { type: "Unconfined" } },
        initContainers: [{ name: "init" }],
        containers: [
          {
            name: "app",
            ports: [{ containerPort: 80, hostPort: 80 }],
            securityContext: {
              privileged: true,
              runAsNonRoot: true,
              seccompProfile: { type: "RuntimeDefault" },
              capabilities: { drop: ["ALL"], add: ["NET_ADMIN"] },
            },
          },
        ],
        volumes: [{ name: "host", hostPath: { path: "/" } }],
      }),
    ).toEqual([
      "hostNetwork must not be true",
      "hostPID must not be true",
      "container app: hostPort 80 is not allowed",
      "volume host: type hostPath is not allowed",
      "pod seccompProfile Unconfined is not RuntimeDefault or Localhost",
      "pod runAsUser must not be 0",
      "container init: allowPrivilegeEscalation must be false",
      "container init: runAsNonRoot must be true (pod or container)",
      "container init: seccompProfile must be RuntimeDefault or Localhost (pod or container)",
      "container init: capabilities must drop ALL",
      "container app: privileged must not be true",
      "container app: allowPrivilegeEscalation must be false",
      "container app: capability NET_ADMIN may not be added",
    ]);
  });
});
