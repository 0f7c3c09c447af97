import { createServer, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import type { ListenOptions } from "@spoekit/spoe-agent";
import type { Logger } from "pino";
import { adminPaths } from "./settings.ts";

/** A probe's verdict and the one-line reason it gives in the body. */
export interface ProbeResult {
  readonly ok: boolean;
  readonly reason: string;
}

/** What the admin server asks the process (or, in a cluster, the primary) on each request. */
export interface AdminSource {
  /** `/startz`: whether start-up is complete (the SPOP port is listening). */
  started(): ProbeResult;
  /** `/readyz`: whether the agent should receive traffic. */
  ready(): ProbeResult;
  /** `/metrics`: the Prometheus exposition. */
  metrics(): Promise<{ contentType: string; body: string }>;
}

/** The admin HTTP server on ADMIN_ADDR. */
export interface AdminServer {
  /** Where it listens: `host:port` or a socket path. */
  readonly address: string;
  close(): Promise<void>;
}

function text(res: ServerResponse, status: number, body: string): void {
  res.writeHead(status, { "content-type": "text/plain; charset=utf-8", "cache-control": "no-store" });
  res.end(`${body}\n`);
}

/**
 * Starts the admin server: `/startz` (200 once listening, 503 before), `/healthz` (200 while the
 * process runs), `/readyz` (200 when serving, 503 while draining or while the store is unusable
 * under policy `closed`), `/metrics` (Prometheus text). GET and HEAD only.
 */
export async function startAdmin(
  address: ListenOptions,
  source: AdminSource,
  log: Logger,
): Promise<AdminServer> {
  const probe = (res: ServerResponse, result: ProbeResult) => text(res, result.ok ? 200 : 503, result.reason);
  const server: Server = createServer((req, res) => {
    if (req.method !== "GET" && req.method !== "HEAD") {
      res.setHeader("allow", "GET, HEAD");
      text(res, 405, "method not allowed");
      return;
    }
    const path = (req.url ?? "/").split("?")[0];
    switch (path) {
      case adminPaths.startup:
        probe(res, source.started());
        return;
      case adminPaths.liveness:
        text(res, 200, "alive");
        return;
      case adminPaths.readiness:
        probe(res, source.ready());
        return;
      case adminPaths.metrics:
        source.metrics().then(
          ({ contentType, body }) => {
            res.writeHead(200, { "content-type": contentType });
            res.end(body);
          },
          (error: unknown) => {
            log.error({ err: error }, "metrics collection failed");
            text(res, 500, "metrics collection failed");
          },
        );
        return;
      default:
        text(res, 404, `not found; try ${Object.values(adminPaths).join(" ")}`);
    }
  });
  server.keepAliveTimeout = 5000;
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    const done = () => {
      server.off("error", reject);
      resolve();
    };
    if ("path" in address) server.listen({ path: address.path }, done);
    else server.listen({ host: address.host, port: address.port }, done);
  });
  server.on("error", (error) => log.error({ err: error }, "admin server error"));
  const bound = server.address() as AddressInfo | string;
  const where =
    typeof bound === "string"
      ? bound
      : `${bound.family === "IPv6" ? `[${bound.address}]` : bound.address}:${bound.port}`;
  return {
    address: where,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
