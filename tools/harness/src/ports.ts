import { createServer } from "node:net";

function listenOnce(port: number, host: string): Promise<number | undefined> {
  return new Promise((resolve) => {
    const server = createServer();
    server.unref();
    server.once("error", () => resolve(undefined));
    server.listen({ port, host, exclusive: true }, () => {
      const address = server.address();
      const bound = typeof address === "object" && address ? address.port : undefined;
      server.close(() => resolve(bound));
    });
  });
}

const handedOut = new Set<number>();

/**
 * A TCP port on 127.0.0.1 that is free now. `alsoFree` lists offsets that must be free too
 * (e.g. 10000 for a Redis Cluster bus port). Ports are never handed out twice per process.
 */
export async function freePort({ host = "127.0.0.1", alsoFree = [] as number[] } = {}): Promise<number> {
  for (let attempt = 0; attempt < 200; attempt++) {
    // Stay below 55535 so that port + 10000 (cluster bus) is still a valid port.
    const candidate = alsoFree.length > 0 ? 20000 + Math.floor(Math.random() * 35000) : 0;
    const port = await listenOnce(candidate, host);
    if (port === undefined || handedOut.has(port)) continue;
    let othersFree = true;
    for (const offset of alsoFree) {
      if ((await listenOnce(port + offset, host)) === undefined) othersFree = false;
    }
    if (!othersFree) continue;
    handedOut.add(port);
    return port;
  }
  throw new Error("could not find a free TCP port on 127.0.0.1");
}
