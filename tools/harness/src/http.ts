import { type Agent, request } from "node:http";

/** What {@link httpGet} got back. */
export interface HttpReply {
  readonly status: number;
  readonly headers: Record<string, string | string[] | undefined>;
  readonly body: string;
  /** Whether the request went over a kept-alive connection (with an `agent`). */
  readonly reusedSocket: boolean;
  /** When the request was sent and its answer complete, `performance.now()` ms. */
  readonly sentAt: number;
  readonly doneAt: number;
}

export interface HttpGetOptions {
  path?: string;
  /** Request headers; an array sends the header once per value. */
  headers?: Record<string, string | string[]>;
  /** A keep-alive agent to reuse connections; default: a connection of its own. */
  agent?: Agent;
  /** Rejects when no complete answer came within this many ms. Default 5000. */
  timeoutMs?: number;
}

/** One GET to 127.0.0.1:`port`; rejects on a socket error or a timeout. */
export function httpGet(port: number, options: HttpGetOptions = {}): Promise<HttpReply> {
  const { path = "/", headers = {}, agent, timeoutMs = 5000 } = options;
  return new Promise((resolve, reject) => {
    const sentAt = performance.now();
    const req = request(
      { host: "127.0.0.1", port, path, headers, agent: agent ?? false, timeout: timeoutMs },
      (res) => {
        let body = "";
        res.setEncoding("utf8");
        res.on("data", (chunk: string) => {
          body += chunk;
        });
        res.on("end", () =>
          resolve({
            status: res.statusCode ?? 0,
            headers: res.headers,
            body,
            reusedSocket: req.reusedSocket,
            sentAt,
            doneAt: performance.now(),
          }),
        );
        res.on("error", reject);
      },
    );
    req.on("timeout", () =>
      req.destroy(new Error(`no answer from 127.0.0.1:${port}${path} in ${timeoutMs} ms`)),
    );
    req.on("error", reject);
    req.end();
  });
}
