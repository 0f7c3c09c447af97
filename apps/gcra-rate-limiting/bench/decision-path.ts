/**
 * The agent's own cost of a rules file against the single per-IP rule, without HAProxy: the
 * `check-rate` handler of each (`checkRateHandler`, `rulesHandler` with the deployment's rules
 * file) fed the same messages — the arguments HAProxy sends (deploy/base/haproxy), a client of
 * BENCH_CLIENTS (10 000) in `ip_xff`, a tenant of 1000, `GET /` — in the same process, round after
 * round, in alternating order. Run with `pnpm bench:path` in this package (it takes the
 * machine-wide benchmark lock).
 *
 * - `embedded`: the memory store on a clock that moves 50 µs per decision (20 000 requests/s:
 *   every request allowed, as in the end-to-end benchmark); CPU time per message.
 * - `valkey`: a local valkey-server (pinned to the other CPU), 64 messages in flight; the
 *   agent's CPU per message (`process.cpuUsage()`), the server's (`/proc/<pid>/stat`), and the
 *   server's own time per script call (`INFO commandstats`, `usec_per_call` of `evalsha`).
 * - JS heap allocated per message by each handler, embedded and on valkey-server, in a child
 *   process with `--expose-gc` and a young generation no sample fills (as
 *   `packages/gcra/bench/bench.ts` measures it).
 * - `--heap-sampling perIp|rules` (instead of the above): where one handler's bytes go on
 *   valkey-server, by allocating function (V8's sampling heap profiler, collected objects
 *   included), per message.
 *
 * Every figure is printed with its ratio, rules file over per-IP rule, per round and as the
 * median of the rounds. Knobs: BENCH_ROUNDS (7), BENCH_MESSAGES (embedded messages per sample,
 * 200 000), BENCH_VALKEY_MESSAGES (40 000), BENCH_ONLY (`allocation,embedded,valkey`: a subset).
 */
import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { GcraLimit, MemoryStore } from "@spoekit/gcra";
import { heapSampler, startRedis } from "@spoekit/harness";
import { type MessageContext, type MessageHandler, TypedValue } from "@spoekit/spoe-agent";
import type { Message } from "@spoekit/spop-codec";
import { pino } from "pino";
import { parseAddress } from "../src/client-ip.ts";
import { loadConfig } from "../src/config.ts";
import { checkRateHandler } from "../src/handler.ts";
import { type AppLimiter, createLimiter, embeddedLimiter } from "../src/limiter.ts";
import { createMetrics } from "../src/metrics.ts";
import { rulesHandler } from "../src/rules/handler.ts";
import { createRuleMetrics } from "../src/rules/metrics.ts";
import { loadRules } from "../src/rules/source.ts";
import { median } from "./measure.ts";

const env = process.env;
const ROUNDS = Number(env.BENCH_ROUNDS ?? 7);
const MESSAGES = Number(env.BENCH_MESSAGES ?? 200_000);
const VALKEY_MESSAGES = Number(env.BENCH_VALKEY_MESSAGES ?? 40_000);
const CLIENTS = Number(env.BENCH_CLIENTS ?? 10_000);
const ONLY = (env.BENCH_ONLY ?? "allocation,embedded,valkey").split(",");
const IN_FLIGHT = 64;
const RULES_FILE = join(import.meta.dirname, "../../../deploy/base/agent/rules.yaml");
/** The per-IP rule of the rules file, as SPOA_RATE_INTERVAL / SPOA_RATE_BURST. */
const PER_IP = { SPOA_RATE_INTERVAL: "10000", SPOA_RATE_BURST: "190000" };
/** A deadline no load reaches: Valkey answers every call (no failure policy's answer counts). */
const DEADLINE = { VALKEY_TIMEOUT: "10s" };

/** Messages as the handler sees them: the arguments of deploy/base/haproxy's `check-rate`. */
function messages(count: number): MessageContext[] {
  const log = pino({ level: "info" });
  const source = TypedValue.ipv4(parseAddress("127.0.0.1") as Uint8Array);
  return Array.from({ length: count }, (_, i) => {
    const n = (i * 7919) % CLIENTS;
    const network = Math.floor(n / 254);
    const xff = `10.${Math.floor(network / 256)}.${network % 256}.${(n % 254) + 1}`;
    const message: Message = {
      name: "check-rate",
      args: [
        { name: "ip_fwd", value: TypedValue.null },
        { name: "ip_xff", value: TypedValue.ipv4(parseAddress(xff) as Uint8Array) },
        { name: "ip_src", value: source },
        { name: "path", value: TypedValue.string("/") },
        { name: "method", value: TypedValue.string("GET") },
        { name: "host", value: TypedValue.string("127.0.0.1:8080") },
        { name: "tenant", value: TypedValue.string(`tenant-${(i % 1000) + 1}`) },
      ],
    };
    const args = message.args;
    return {
      arg(name: string) {
        for (let a = 0; a < args.length; a++) if (args[a]?.name === name) return args[a]?.value;
        return undefined;
      },
      setVar() {
        return this;
      },
      log,
      streamId: 1,
      frameId: i,
    } as unknown as MessageContext;
  });
}

/** The two handlers over one limiter. */
function handlers(limiter: AppLimiter): { perIp: MessageHandler; rules: MessageHandler } {
  const set = loadRules(RULES_FILE);
  const metrics = createMetrics(limiter.kind);
  return {
    perIp: checkRateHandler({ limiter, metrics, ipv6Prefix: 64 }),
    rules: rulesHandler({
      limiter,
      metrics,
      ruleMetrics: createRuleMetrics(metrics.registry),
      ipv6Prefix: 64,
      rules: () => set,
    }),
  };
}

/** An embedded limiter whose clock moves 50 µs per decision. */
function clockedLimiter(): AppLimiter {
  let now = 1_000_000;
  return embeddedLimiter(
    new GcraLimit({ emissionIntervalUs: 10_000, burstToleranceUs: 190_000 }),
    new MemoryStore({ clock: () => (now += 50), maxKeys: 100_000 }),
  );
}

const cpuUs = (): number => {
  const { user, system } = process.cpuUsage();
  return user + system;
};

/** The CPU time of process `pid` (utime + stime), µs. */
function processCpuUs(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]?.split(" ") ?? [];
  return ((Number(fields[11]) + Number(fields[12])) * 1_000_000) / 100;
}

/** Runs `count` messages through `handler`, `inFlight` at a time. */
async function drive(handler: MessageHandler, pool: MessageContext[], count: number, inFlight: number) {
  let next = 0;
  const caller = async () => {
    while (next < count) {
      const result = handler(pool[next++ % pool.length] as MessageContext);
      if (result instanceof Promise) await result;
    }
  };
  await Promise.all(Array.from({ length: inFlight }, caller));
}

/** Runs `count` messages synchronously (the embedded store answers at once). */
function driveSync(handler: MessageHandler, pool: MessageContext[], count: number): void {
  for (let i = 0; i < count; i++) handler(pool[i % pool.length] as MessageContext);
}

const fmt = (n: number, digits = 2) => n.toFixed(digits);

async function embedded(pool: MessageContext[]): Promise<number[]> {
  const { perIp, rules } = handlers(clockedLimiter());
  driveSync(perIp, pool, MESSAGES);
  driveSync(rules, pool, MESSAGES);
  const ratios: number[] = [];
  for (let round = 1; round <= ROUNDS; round++) {
    const cost: Record<string, number> = {};
    const order = round % 2 === 1 ? ["perIp", "rules"] : ["rules", "perIp"];
    for (const name of order) {
      const t0 = cpuUs();
      driveSync(name === "perIp" ? perIp : rules, pool, MESSAGES);
      cost[name] = (cpuUs() - t0) / MESSAGES;
    }
    const ratio = (cost.rules as number) / (cost.perIp as number);
    ratios.push(ratio);
    console.log(
      `  embedded round ${round}: per-IP ${fmt(cost.perIp as number)} µs, rules ${fmt(cost.rules as number)} µs per message (ratio ${fmt(ratio)})`,
    );
  }
  return ratios;
}

async function valkey(
  pool: MessageContext[],
): Promise<{ agent: number[]; server: number[]; script: number[] }> {
  const server = await startRedis();
  const pid = server.process().pid as number;
  spawnSync("taskset", ["-pc", "1", String(pid)], { stdio: "ignore" });
  const limiter = createLimiter(loadConfig({ ...PER_IP, VALKEY_NODES: server.url, ...DEADLINE }));
  try {
    if (!(await limiter.warmUp(10_000))) throw new Error("valkey-server did not answer the warm-up");
    const { perIp, rules } = handlers(limiter);
    // Warm-up: the JIT's, and every client's key stored once.
    for (let i = 0; i < 3; i++) {
      await drive(perIp, pool, VALKEY_MESSAGES, IN_FLIGHT);
      await drive(rules, pool, VALKEY_MESSAGES, IN_FLIGHT);
    }
    const out = { agent: [] as number[], server: [] as number[], script: [] as number[] };
    for (let round = 1; round <= ROUNDS; round++) {
      const cost: Record<string, { agent: number; server: number; script: number; rps: number }> = {};
      const order = round % 2 === 1 ? ["perIp", "rules"] : ["rules", "perIp"];
      for (const name of order) {
        await server.command("CONFIG", "RESETSTAT");
        const t0 = cpuUs();
        const s0 = processCpuUs(pid);
        const w0 = performance.now();
        await drive(name === "perIp" ? perIp : rules, pool, VALKEY_MESSAGES, IN_FLIGHT);
        const wall = performance.now() - w0;
        const agentUs = (cpuUs() - t0) / VALKEY_MESSAGES;
        const serverUs = (processCpuUs(pid) - s0) / VALKEY_MESSAGES;
        const stats = String(await server.command("INFO", "commandstats"));
        const usec = Number(/cmdstat_evalsha:.*usec_per_call=([\d.]+)/.exec(stats)?.[1] ?? Number.NaN);
        cost[name] = { agent: agentUs, server: serverUs, script: usec, rps: (VALKEY_MESSAGES * 1000) / wall };
      }
      const p = cost.perIp as { agent: number; server: number; script: number; rps: number };
      const r = cost.rules as { agent: number; server: number; script: number; rps: number };
      out.agent.push(r.agent / p.agent);
      out.server.push(r.server / p.server);
      out.script.push(r.script / p.script);
      console.log(
        `  valkey round ${round}: agent ${fmt(p.agent)} / ${fmt(r.agent)} µs (ratio ${fmt(r.agent / p.agent)}), ` +
          `server ${fmt(p.server)} / ${fmt(r.server)} µs (${fmt(r.server / p.server)}), ` +
          `evalsha ${fmt(p.script)} / ${fmt(r.script)} µs per call (${fmt(r.script / p.script)}), ` +
          `${Math.round(p.rps)} / ${Math.round(r.rps)} messages/s — per-IP / rules`,
      );
    }
    return out;
  } finally {
    await limiter.close();
    await server.stop();
  }
}

/**
 * In a child with `--expose-gc`: the JS heap each handler allocates per message, on the embedded
 * store (synchronously) and on valkey-server (64 in flight; the callers' own promises count in
 * both handlers' figures alike).
 */
async function allocation(pool: MessageContext[]): Promise<void> {
  const heap = heapSampler();
  const count = 20_000;
  const bytes: Record<string, number> = {};
  const measure = async (name: string, run: () => Promise<void> | void): Promise<void> => {
    for (let i = 0; i < 5; i++) await run();
    const samples: number[] = [];
    for (let i = 0; i < 5; i++) samples.push(await heap.perOperation(run, count));
    bytes[name] = Math.round(median(samples));
  };
  const embeddedHandlers = handlers(clockedLimiter());
  await measure("embedded perIp", () => driveSync(embeddedHandlers.perIp, pool, count));
  await measure("embedded rules", () => driveSync(embeddedHandlers.rules, pool, count));
  const server = await startRedis();
  const limiter = createLimiter(loadConfig({ ...PER_IP, VALKEY_NODES: server.url, ...DEADLINE }));
  try {
    if (!(await limiter.warmUp(10_000))) throw new Error("valkey-server did not answer the warm-up");
    const { perIp, rules } = handlers(limiter);
    await measure("valkey perIp", () => drive(perIp, pool, count, IN_FLIGHT));
    await measure("valkey rules", () => drive(rules, pool, count, IN_FLIGHT));
  } finally {
    await limiter.close();
    await server.stop();
  }
  heap.stop();
  console.log(JSON.stringify(bytes));
}

async function heapSampling(pool: MessageContext[]): Promise<void> {
  const { Session } = await import("node:inspector/promises");
  const session = new Session();
  session.connect();
  const server = await startRedis();
  const limiter = createLimiter(loadConfig({ ...PER_IP, VALKEY_NODES: server.url, ...DEADLINE }));
  await limiter.warmUp(10_000);
  const h = handlers(limiter);
  const handler = process.argv.includes("perIp") ? h.perIp : h.rules;
  await drive(handler, pool, 40_000, IN_FLIGHT);
  await session.post("HeapProfiler.startSampling", {
    samplingInterval: 64,
    includeObjectsCollectedByMajorGC: true,
    includeObjectsCollectedByMinorGC: true,
  });
  await drive(handler, pool, 40_000, IN_FLIGHT);
  const { profile } = await session.post("HeapProfiler.stopSampling");
  const bySite = new Map<string, number>();
  const walk = (node: typeof profile.head): void => {
    const frame = `${node.callFrame.functionName || "(anon)"} ${node.callFrame.url.split("/").slice(-2).join("/")}:${node.callFrame.lineNumber + 1}`;
    if (node.selfSize > 0) bySite.set(frame, (bySite.get(frame) ?? 0) + node.selfSize);
    for (const child of node.children) walk(child);
  };
  walk(profile.head);
  for (const [site, size] of [...bySite].sort((a, b) => b[1] - a[1]).slice(0, 40)) {
    console.log(String(Math.round(size / 40_000)).padStart(6), site);
  }
  await limiter.close();
  await server.stop();
}

async function main(): Promise<void> {
  const pool = messages(CLIENTS);
  if (process.argv.includes("--allocation")) return allocation(pool);
  if (process.argv.includes("--heap-sampling")) return heapSampling(pool);
  const started = (await import("node:os")).loadavg()[0] ?? 0;
  console.log(`decision path: rules file (${RULES_FILE}) against the per-IP rule; load ${fmt(started)}`);
  if (ONLY.includes("allocation")) {
    const child = spawnSync(
      process.execPath,
      [
        "--expose-gc",
        "--max-semi-space-size=256",
        "--min-semi-space-size=256",
        "--conditions=@spoekit/source",
        import.meta.filename,
        "--allocation",
      ],
      { encoding: "utf8", stdio: ["ignore", "pipe", "inherit"] },
    );
    const bytes = JSON.parse(child.stdout.trim().split("\n").at(-1) ?? "{}") as Record<string, number>;
    for (const store of ["embedded", "valkey"]) {
      console.log(
        `  JS heap per message, ${store}: per-IP ${bytes[`${store} perIp`]} B, rules ${bytes[`${store} rules`]} B`,
      );
    }
  }
  const e = ONLY.includes("embedded") ? await embedded(pool) : [];
  const v = ONLY.includes("valkey") ? await valkey(pool) : { agent: [], server: [], script: [] };
  const load = (await import("node:os")).loadavg()[0] ?? 0;
  console.log(`load ${fmt(started)} at the start, ${fmt(load)} at the end`);
  console.log(`rules / per-IP, median of ${ROUNDS} rounds:`);
  console.log(`  embedded, agent CPU per message: ${fmt(median(e))}`);
  console.log(`  valkey, agent CPU per message:   ${fmt(median(v.agent))}`);
  console.log(`  valkey, server CPU per message:  ${fmt(median(v.server))}`);
  console.log(`  valkey, evalsha usec_per_call:   ${fmt(median(v.script))}`);
}

await main();
