/**
 * A client that sends requests at a fixed pace and what GCRA must answer it, with the timing
 * slack made explicit: the test knows each request's send and answer time, not the instant the
 * store decided it, which lies between the two.
 */
import { sleep } from "@spoekit/harness";
import type { HttpReply } from "./stack.ts";

/** Sends `count` requests, the i-th at `start + i × periodMs`, without waiting for answers. */
export async function paced(
  count: number,
  periodMs: number,
  send: (i: number) => Promise<HttpReply>,
): Promise<HttpReply[]> {
  const start = performance.now() + 20;
  const pending: Promise<HttpReply>[] = [];
  for (let i = 0; i < count; i++) {
    const wait = start + i * periodMs - performance.now();
    if (wait > 0) await sleep(wait);
    pending.push(send(i));
  }
  return Promise.all(pending);
}

/** Every integer from `Math.floor(low)` to `Math.floor(high)`. */
function floors(low: number, high: number): number[] {
  const values: number[] = [];
  for (let v = Math.floor(low); v <= Math.floor(high); v++) values.push(v);
  return values;
}

/**
 * The number of requests GCRA admits from a client that keeps sending faster than the rate
 * (every gap between requests below τ − T): the bucket never drains, so the TAT after the k-th
 * admitted request is `t₁ + k·T` and the (k+1)-th is the first request at or after
 * `t₁ + (k+1)·T − τ` — hence exactly `floor((W + τ) / T)` admitted, W being the time between
 * the first and the last decision on the store's clock. Each decision happened between its
 * request's send and answer, so W lies within [latest send − earliest answer, latest answer −
 * earliest send], and the admitted count is one of the values this returns (in practice one;
 * two when that window straddles a multiple of T).
 */
export function admittedCounts(replies: readonly HttpReply[], intervalUs: number, burstUs: number): number[] {
  if (replies.length === 0) return [0];
  const sent = replies.map((r) => r.sentAt);
  const done = replies.map((r) => r.doneAt);
  const wMin = (Math.max(...sent) - Math.min(...done)) * 1000;
  const wMax = (Math.max(...done) - Math.min(...sent)) * 1000;
  return floors((Math.max(0, wMin) + burstUs) / intervalUs, (wMax + burstUs) / intervalUs);
}

/**
 * The Retry-After values (whole seconds, rounded up) GCRA may give the `index`-th request when
 * `admittedBefore` requests were admitted before it: the same request passes from
 * `t₁ + (k+1)·T − τ` on, so `retryAfter = t₁ + (k+1)·T − τ − t`, with t₁ and t known within
 * their send and answer times. The agent's deny cache may answer a denial from a TAT it learnt
 * one store round trip late, so the lower end also gives way by the longest request seen.
 */
export function retryAfterSeconds(
  replies: readonly HttpReply[],
  index: number,
  admittedBefore: number,
  intervalUs: number,
  burstUs: number,
): number[] {
  const first = replies[0];
  const request = replies[index];
  if (!first || !request) return [];
  const opensUs = (admittedBefore + 1) * intervalUs - burstUs;
  const longestUs = Math.max(...replies.map((r) => r.doneAt - r.sentAt)) * 1000;
  const low = opensUs + (first.sentAt - request.doneAt) * 1000 - longestUs;
  const high = opensUs + (first.doneAt - request.sentAt) * 1000;
  // ceil(x) = -floor(-x); a denial waits at least 1 µs, hence at least 1 s.
  return floors(-high / 1e6, -low / 1e6)
    .map((v) => Math.max(1, -v))
    .filter((v, i, all) => all.indexOf(v) === i)
    .sort((a, b) => a - b);
}
