/**
 * Rate limit for the lines a peer can make the agent log: at most one line per peer per window,
 * the next allowed line telling how many were suppressed. A flood of bad frames from one
 * address costs one line per window, not one per frame.
 */
import type { AgentClock } from "./clock.ts";

/** How long a peer's window lasts. */
export const PEER_LOG_WINDOW_MS = 10_000;
/** Peers remembered at most; beyond it, peers whose window ended are forgotten. */
const MAX_PEERS = 10_000;

interface Window {
  start: number;
  suppressed: number;
}

/** @internal One per agent. */
export class PeerLog {
  readonly #clock: AgentClock;
  readonly #peers = new Map<string, Window>();

  constructor(clock: AgentClock) {
    this.#clock = clock;
  }

  /**
   * Whether a line about `peer` may be logged now: `-1` when it is suppressed, otherwise how
   * many lines about it were suppressed since the last one logged.
   */
  allow(peer: string): number {
    const now = this.#clock.now();
    const window = this.#peers.get(peer);
    if (window !== undefined && now - window.start < PEER_LOG_WINDOW_MS) {
      window.suppressed++;
      return -1;
    }
    const suppressed = window?.suppressed ?? 0;
    if (window === undefined) {
      if (this.#peers.size >= MAX_PEERS) this.#forget(now);
      this.#peers.set(peer, { start: now, suppressed: 0 });
    } else {
      window.start = now;
      window.suppressed = 0;
    }
    return suppressed;
  }

  #forget(now: number): void {
    for (const [peer, window] of this.#peers) {
      if (now - window.start >= PEER_LOG_WINDOW_MS) this.#peers.delete(peer);
    }
    // Every window still open: drop the oldest half rather than grow.
    if (this.#peers.size >= MAX_PEERS) {
      let drop = this.#peers.size >> 1;
      for (const peer of this.#peers.keys()) {
        if (drop-- <= 0) break;
        this.#peers.delete(peer);
      }
    }
  }
}
