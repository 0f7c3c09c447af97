import type { Redis } from "iovalkey";
import type { Resolved, ValkeyNode } from "./valkey-types.ts";

/** How a probe connection logs in. */
export interface ProbeOptions {
  readonly resolved: Resolved;
  readonly connectTimeoutMs: number;
  /** Log in with the data nodes' credentials (sentinels often have none). Default true. */
  readonly credentials?: boolean;
}

/**
 * Opens a one-off connection to `node` (no retries, no ready check), runs `ask` on it and closes
 * it. Rejects with the socket's own error when there was one (a refused TLS certificate, say: it
 * says more than the rejected command), else with the command's.
 */
export async function withProbe<T>(
  iovalkey: typeof import("iovalkey"),
  node: ValkeyNode,
  options: ProbeOptions,
  ask: (probe: Redis) => Promise<T>,
): Promise<T> {
  const { resolved } = options;
  const credentials = options.credentials ?? true;
  const probe = new iovalkey.Redis({
    host: node.host,
    port: node.port,
    ...(resolved.tls !== undefined ? { tls: resolved.tls } : {}),
    ...(credentials && resolved.username !== undefined ? { username: resolved.username } : {}),
    ...(credentials && resolved.password !== undefined ? { password: resolved.password } : {}),
    connectTimeout: options.connectTimeoutMs,
    lazyConnect: true,
    maxRetriesPerRequest: 0,
    retryStrategy: () => null,
    enableReadyCheck: false,
  });
  let socketError: unknown;
  probe.on("error", (error) => {
    socketError ??= error;
  });
  try {
    await probe.connect();
    return await ask(probe);
  } catch (error) {
    throw socketError ?? error;
  } finally {
    probe.disconnect();
  }
}
