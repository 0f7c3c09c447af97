import type { ConnectionOptions as TlsOptions } from "node:tls";

/**
 * How the Valkey deployment is organised: one server; a cluster; a primary and replicas behind
 * sentinels; or a primary and replicas without them (`replication`: the store finds the primary
 * itself).
 */
export type ValkeyMode = "standalone" | "cluster" | "sentinel" | "replication";

/** A parsed node address. */
export interface ValkeyNode {
  readonly host: string;
  readonly port: number;
  readonly tls: boolean;
  readonly username: string | undefined;
  readonly password: string | undefined;
}

/** Connection options resolved: parsed nodes, the credentials in effect, TLS on or off. */
export interface Resolved {
  readonly nodes: readonly ValkeyNode[];
  readonly username: string | undefined;
  readonly password: string | undefined;
  readonly tls: TlsOptions | undefined;
}
