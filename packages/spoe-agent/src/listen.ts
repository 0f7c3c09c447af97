/**
 * Where an agent listens: TCP `host:port`, a unix socket path, either with TLS — the three
 * transports HAProxy's SPOE backends speak.
 */
import { createServer as createNetServer, type Server, type Socket } from "node:net";
import { createServer as createTlsServer, type TlsOptions } from "node:tls";
import { InvalidOptionError } from "./errors.ts";

/** Listening on TCP. */
export interface TcpListenOptions {
  /** The port; `0` picks a free one (read it from the returned address). */
  port: number;
  /** The address to bind; default: every address (Node's default). */
  host?: string;
  backlog?: number;
  /**
   * Let several processes bind the same port (SO_REUSEPORT); the kernel spreads connections
   * among them. Linux and the BSDs; Node ≥ 22.12.
   */
  reusePort?: boolean;
  ipv6Only?: boolean;
  /** Serve TLS with these `node:tls` options (certificate, key, CA for client certificates, …). */
  tls?: TlsOptions;
}

/** Listening on a unix socket. */
export interface UnixListenOptions {
  /** The socket's path; it must not exist yet (it is removed when the server closes). */
  path: string;
  backlog?: number;
  readableAll?: boolean;
  writableAll?: boolean;
  /** Serve TLS over the unix socket with these `node:tls` options. */
  tls?: TlsOptions;
}

/** Where to listen: options, or text — `host:port`, `[v6]:port`, `:port`, `port` or `unix:/path`. */
export type ListenOptions = TcpListenOptions | UnixListenOptions;

/** Where a server listens. */
export interface ListenAddress {
  /** The bound address (TCP). */
  readonly host?: string;
  /** The bound port (TCP), also when `0` was asked for. */
  readonly port?: number;
  /** The socket path (unix). */
  readonly path?: string;
  readonly tls: boolean;
  /** `tcp://host:port`, `tls://host:port`, `unix:/path` or `unix+tls:/path`. */
  readonly url: string;
}

/**
 * Reads a listen address given as text: `host:port`, `[v6]:port`, `:port` or `port` (every
 * address), or `unix:/path`. Throws {@link InvalidOptionError}.
 */
export function parseListenAddress(text: string): ListenOptions {
  if (text.startsWith("unix:")) {
    const path = text.slice("unix:".length);
    if (path === "") throw new InvalidOptionError(`listen address ${JSON.stringify(text)} has no path`);
    return { path };
  }
  const match = /^(?:\[([^\]]+)\]|([^:[\]]*)):(\d+)$|^(\d+)$/.exec(text);
  const portText = match?.[3] ?? match?.[4];
  const port = Number(portText);
  if (match === null || portText === undefined || port > 65535) {
    throw new InvalidOptionError(
      `listen address ${JSON.stringify(text)} is not host:port, [v6]:port, :port, port or unix:/path`,
    );
  }
  const host = match[1] ?? match[2];
  return host === undefined || host === "" ? { port } : { host, port };
}

/** A server for `options`: plain or TLS; `onSocket` gets each connection ready for SPOP. */
export function createServer(
  options: ListenOptions,
  handshakeTimeout: number,
  onSocket: (socket: Socket, tls: boolean) => void,
  onTlsError: (error: Error, socket: Socket) => void,
): Server {
  if (options.tls === undefined) {
    return createNetServer({ noDelay: true }, (socket) => onSocket(socket, false));
  }
  const server = createTlsServer({ ...options.tls, handshakeTimeout }, (socket) => onSocket(socket, true));
  server.on("tlsClientError", onTlsError);
  return server;
}

/** Starts `server` listening; resolves with where, rejects on a bind error. */
export function startListening(server: Server, options: ListenOptions): Promise<ListenAddress> {
  const tls = options.tls !== undefined;
  return new Promise((resolve, reject) => {
    const onError = (error: Error) => reject(error);
    server.once("error", onError);
    const done = () => {
      server.off("error", onError);
      const bound = server.address();
      if (typeof bound === "string" || bound === null) {
        const path = typeof bound === "string" ? bound : (options as UnixListenOptions).path;
        resolve({ path, tls, url: `${tls ? "unix+tls" : "unix"}:${path}` });
        return;
      }
      const host = bound.family === "IPv6" ? `[${bound.address}]` : bound.address;
      resolve({
        host: bound.address,
        port: bound.port,
        tls,
        url: `${tls ? "tls" : "tcp"}://${host}:${bound.port}`,
      });
    };
    if ("path" in options) {
      server.listen(
        {
          path: options.path,
          ...(options.backlog === undefined ? {} : { backlog: options.backlog }),
          ...(options.readableAll === undefined ? {} : { readableAll: options.readableAll }),
          ...(options.writableAll === undefined ? {} : { writableAll: options.writableAll }),
        },
        done,
      );
    } else {
      if (!Number.isInteger(options.port) || options.port < 0 || options.port > 65535) {
        server.off("error", onError);
        reject(new InvalidOptionError(`port must be an integer in 0..65535, got ${String(options.port)}`));
        return;
      }
      server.listen(
        {
          port: options.port,
          ...(options.host === undefined ? {} : { host: options.host }),
          ...(options.backlog === undefined ? {} : { backlog: options.backlog }),
          ...(options.reusePort === undefined ? {} : { reusePort: options.reusePort }),
          ...(options.ipv6Only === undefined ? {} : { ipv6Only: options.ipv6Only }),
        },
        done,
      );
    }
  });
}
