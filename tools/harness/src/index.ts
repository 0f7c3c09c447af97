/**
 * Real components for tests: valkey-server 8 or redis-server 7 (standalone, cluster and sentinel
 * topologies) and HAProxy 2.6 or 3.0, started on loopback ports and torn down afterwards. Private
 * to this repository.
 */
export {
  type AgentStartOptions,
  agentEnvironment,
  type StartedAgent,
  spawnAgent,
  startAgent,
} from "./agent.ts";
export { requireBinary } from "./binaries.ts";
export {
  type CanonicalHaproxy,
  canonicalHaproxy,
  withProcessingTimeout,
} from "./canonical.ts";
export {
  type ClusterNodeInfo,
  type ClusterOptions,
  parseClusterNodes,
  type RedisCluster,
  startCluster,
} from "./cluster.ts";
export { type DnsServer, startDnsServer } from "./dns.ts";
export {
  checkHaproxyConfig,
  type HaproxyCheckResult,
  type HaproxyOptions,
  type HaproxyProcess,
  startHaproxy,
} from "./haproxy.ts";
export { type HeapSampler, heapSampler } from "./heap.ts";
export { type HttpGetOptions, type HttpReply, httpGet } from "./http.ts";
export { parseMetrics, type Sample, total } from "./metrics.ts";
export { freePort } from "./ports.ts";
export { type ManagedProcess, type SpawnOptions, spawnManaged, waitFor } from "./process.ts";
export { isRunning, type RedisOptions, type RedisServer, startRedis } from "./redis.ts";
export { type RawCommandOptions, type RespReply, rawCommand, rawCommands } from "./resp.ts";
export { type SentinelOptions, type SentinelTopology, startSentinel } from "./sentinel.ts";
export { sleep } from "./time.ts";
export { createTlsMaterial, type TlsMaterial } from "./tls.ts";
export {
  type DataServerKind,
  dataServers,
  haproxy3Path,
  haproxyBinaries,
  type ServerBinary,
} from "./versions.ts";
