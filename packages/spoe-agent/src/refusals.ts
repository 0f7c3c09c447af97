/**
 * Connections beyond `maxConnections`. The first {@link ANSWERED_REFUSALS_PER_SECOND} refusals of
 * each second are answered: AGENT-DISCONNECT status 13 with its message (`refuse`), which HAProxy
 * logs. Beyond them, until that second ends, each server closes new connections at accept while
 * it holds `maxConnections` sockets (Node's `server.maxConnections` and its `drop` event), and
 * each is reported and logged (rate-limited per peer) like a refusal: a peer that reconnects as
 * soon as it is refused then costs the agent an accept and a close, not a socket object, a frame,
 * a timer and an error each time.
 */
import type { Server, Socket } from "node:net";
import type { TimerHandle } from "./clock.ts";
import { ResourceLimitError } from "./errors.ts";
import type { Runtime } from "./runtime.ts";
import { refuse } from "./teardown.ts";

/** Refusals answered with AGENT-DISCONNECT per second; the others are closed at accept. */
export const ANSWERED_REFUSALS_PER_SECOND = 20;
const WINDOW_MS = 1000;

/** What Node's `drop` event tells of the connection it closed (nothing for a unix socket). */
interface DropData {
  remoteAddress?: string;
  remotePort?: number;
}

/** @internal One per agent. */
export class Refusals {
  readonly #runtime: Runtime;
  readonly #servers: ReadonlySet<Server>;
  #windowStart = Number.NEGATIVE_INFINITY;
  #answered = 0;
  #timer: TimerHandle | undefined = undefined;
  /** One error for every refusal closed at accept (made at the first). */
  #error: ResourceLimitError | undefined = undefined;

  constructor(runtime: Runtime, servers: ReadonlySet<Server>) {
    this.#runtime = runtime;
    this.#servers = servers;
  }

  /** A new server: its connections closed at accept are reported. */
  watch(server: Server): void {
    // In a cluster worker, closed there rather than handed back to the primary (Node ≥ 22.12).
    (server as Server & { dropMaxConnection: boolean }).dropMaxConnection = true;
    server.on("drop", (data?: DropData) => this.#report(data?.remoteAddress, data?.remotePort));
  }

  /** A socket accepted beyond the cap (`handshaking`: a TCP socket still before its TLS handshake). */
  refuse(socket: Socket, handshaking: boolean): void {
    const { clock } = this.#runtime.options;
    const now = clock.now();
    if (now - this.#windowStart >= WINDOW_MS) {
      this.#windowStart = now;
      this.#answered = 0;
    }
    if (this.#answered < ANSWERED_REFUSALS_PER_SECOND) {
      this.#answered++;
      refuse(this.#runtime, socket, handshaking);
      return;
    }
    this.#report(socket.remoteAddress, socket.remotePort);
    socket.on("error", () => {}); // the peer may reset it first: nothing left to do
    socket.destroy();
    if (this.#timer !== undefined) return;
    const { maxConnections } = this.#runtime.options;
    for (const server of this.#servers) server.maxConnections = maxConnections;
    this.#timer = clock.setTimer(this.#answerAgain, Math.max(1, this.#windowStart + WINDOW_MS - now));
  }

  /** The second is over: refusals are answered again. */
  readonly #answerAgain = (): void => {
    this.#timer = undefined;
    for (const server of this.#servers) server.maxConnections = Number.POSITIVE_INFINITY;
  };

  #report(address: string | undefined, port: number | undefined): void {
    const runtime = this.#runtime;
    const { maxConnections } = runtime.options;
    this.#error ??= new ResourceLimitError(
      `connection refused: the agent holds its maximum of ${maxConnections} connections`,
    );
    const remote = address === undefined ? "unix" : `${address}:${port}`;
    runtime.peerWarn(
      runtime.log,
      address ?? "unix",
      { remote, maxConnections, closedAtAccept: true },
      this.#error,
      "connection refused",
    );
    runtime.reportError("limit", this.#error);
  }
}
