/**
 * A node:http server rate-limited per client address with @spoekit/gcra.
 *
 *   node --conditions=@spoekit/source examples/http-server.ts               # in-memory store
 *   VALKEY_NODES=redis://127.0.0.1:6379 node --conditions=@spoekit/source examples/http-server.ts
 *   VALKEY_NODES=rediss://valkey:6380 VALKEY_CA_FILE=/etc/valkey/ca.crt node …  # TLS, private CA
 *
 * (A `rediss://` node whose CA is a public one, or one in NODE_EXTRA_CA_CERTS, needs no CA file.
 * VALKEY_TIMEOUT_MS sets the deadline of each decision, 10 ms by default.)
 *
 * Then: `for i in $(seq 25); do curl -s -o /dev/null -w '%{http_code} ' localhost:8080; done`
 * prints about twenty 200s (the burst, plus what refilled meanwhile) and then 429s (100
 * requests/s, bursts of 20). With EXAMPLE_SELF_TEST=1 the script sends 40 requests at once itself,
 * prints the status codes and how long they took (µs) as JSON, and exits: the burst of 20 gets
 * 200, plus one for every 10 ms the 40 requests took.
 */
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { createValkeyLimiter, GcraLimit, type GcraStore, MemoryStore, toSeconds } from "@spoekit/gcra";

const limit = new GcraLimit({ rate: 100, burst: 20 });
const nodes = process.env.VALKEY_NODES
  ? process.env.VALKEY_NODES.split(",").map((node) => node.trim())
  : undefined;
const caFile = process.env.VALKEY_CA_FILE;
const timeoutMs = process.env.VALKEY_TIMEOUT_MS;
const store: GcraStore = nodes
  ? createValkeyLimiter({
      nodes,
      failurePolicy: "fallback",
      ...(caFile ? { tlsCaFile: caFile } : {}),
      ...(timeoutMs ? { timeoutMs: Number(timeoutMs) } : {}),
    })
  : new MemoryStore({ maxKeys: 100_000 });

const server = createServer(async (request, response) => {
  const decision = await store.check(request.socket.remoteAddress ?? "unknown", limit);
  response.setHeader("RateLimit-Limit", decision.limit);
  response.setHeader("RateLimit-Remaining", decision.remaining);
  response.setHeader("RateLimit-Reset", toSeconds(decision.resetAfter));
  if (!decision.allowed) {
    response.setHeader("Retry-After", toSeconds(decision.retryAfter));
    response.writeHead(429).end("Too Many Requests\n");
    return;
  }
  response.writeHead(200).end("hello\n");
});

// Connect and load the script before taking traffic, so that the first requests do not miss their
// deadline (the in-memory store has nothing to warm up).
if (!(await (store.warmUp?.(5000) ?? true))) console.warn("Valkey does not answer yet: the policy will");

server.listen(Number(process.env.PORT ?? 8080), "127.0.0.1", async () => {
  const { port } = server.address() as AddressInfo;
  console.log(`listening on http://127.0.0.1:${port} (${nodes ? "Valkey" : "in-memory"} store)`);
  if (process.env.EXAMPLE_SELF_TEST !== "1") return;
  const started = performance.now();
  const responses = await Promise.all(Array.from({ length: 40 }, () => fetch(`http://127.0.0.1:${port}/`)));
  const tookUs = Math.ceil((performance.now() - started) * 1000);
  console.log(JSON.stringify({ statuses: responses.map((response) => response.status), tookUs }));
  server.close();
  await store.close();
});
