/**
 * A node:http server rate-limited per client address with @spoekit/gcra.
 *
 *   pnpm example                                  # in this package: the in-memory store
 *   RATE=1 BURST=5 pnpm example                   # 1 request/s, bursts of 5 (default 100 and 20)
 *   VALKEY_NODES=redis://127.0.0.1:6379 pnpm example
 *   VALKEY_NODES=rediss://valkey:6380 VALKEY_CA_FILE=/etc/valkey/ca.crt pnpm example  # TLS, private CA
 *
 * (A `rediss://` node whose CA is a public one, or one in NODE_EXTRA_CA_CERTS, needs no CA file.
 * VALKEY_TIMEOUT_MS sets the deadline of each decision, 10 ms by default; PORT the port, 8080.)
 *
 * Then, with RATE=1 BURST=5: `for i in $(seq 8); do curl -s -o /dev/null -w '%{http_code} '
 * localhost:8080; done` prints five 200s (the burst) and then 429s. With EXAMPLE_SELF_TEST=1
 * the script sends 40 requests at once itself, prints the status codes and how long they took
 * (µs) as JSON, and exits: the burst gets 200, plus one for every emission interval the 40
 * requests took.
 */
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { createValkeyLimiter, GcraLimit, type GcraStore, MemoryStore, toSeconds } from "@spoekit/gcra";

const limit = new GcraLimit({
  rate: Number(process.env.RATE ?? 100),
  burst: Number(process.env.BURST ?? 20),
});
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
  console.log(
    `listening on http://127.0.0.1:${port} (${nodes ? "Valkey" : "in-memory"} store): ` +
      `${limit.burst} requests at once per client, then one every ${limit.emissionIntervalUs / 1000} ms`,
  );
  if (process.env.EXAMPLE_SELF_TEST !== "1") return;
  const started = performance.now();
  const responses = await Promise.all(Array.from({ length: 40 }, () => fetch(`http://127.0.0.1:${port}/`)));
  const tookUs = Math.ceil((performance.now() - started) * 1000);
  console.log(JSON.stringify({ statuses: responses.map((response) => response.status), tookUs }));
  server.close();
  await store.close();
});
