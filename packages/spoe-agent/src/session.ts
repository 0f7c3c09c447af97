/**
 * The states of a connection's SPOP session and the HELLO handshake that moves it from the first
 * to the second: HAPROXY-HELLO read and negotiated against the agent's options, or the frame
 * that breaks the protocol named.
 */
import {
  agentHelloFrame,
  DisconnectStatus,
  FrameType,
  type FrameWriter,
  frameTypeNames,
  type HaproxyHello,
  type HaproxyHelloFrame,
  negotiateHello,
  parseHaproxyHello,
  SpopError,
} from "@spoekit/spop-codec";
import { dc } from "./channels.ts";
import type { ResolvedOptions } from "./options.ts";
import { publishFramesOut } from "./outbox.ts";
import type { Runtime } from "./runtime.ts";
import type { ConnectionInfo } from "./types.ts";

/** Where a connection's session stands; only ever moves forward. */
export const State = {
  /** Waiting for HAPROXY-HELLO. */
  HANDSHAKE: 0,
  OPEN: 1,
  /** Answering what is in flight (and, on `close()`, what is buffered), then AGENT-DISCONNECT. */
  DRAINING: 2,
  /** AGENT-DISCONNECT (or a health check's AGENT-HELLO) sent; waiting for the socket to close. */
  CLOSING: 3,
  CLOSED: 4,
} as const;
export type State = (typeof State)[keyof typeof State];

/** A HAPROXY-HELLO accepted: what it said and what the agent answers. */
export interface Handshake {
  readonly hello: HaproxyHello;
  readonly agreed: ReturnType<typeof negotiateHello>;
}

/** Reads and negotiates a HAPROXY-HELLO; throws the codec's `SpopError` to disconnect with. */
export function acceptHello(frame: HaproxyHelloFrame, options: ResolvedOptions): Handshake {
  const hello = parseHaproxyHello(frame);
  const agreed = negotiateHello(hello, {
    maxFrameSize: options.maxFrameSize,
    capabilities: options.capabilities,
  });
  return { hello, agreed };
}

/** Writes the AGENT-HELLO of `agreed` into `writer` and publishes it; returns its bytes. */
export function answerHello(
  runtime: Runtime,
  connection: ConnectionInfo,
  writer: FrameWriter,
  agreed: Handshake["agreed"],
): Buffer {
  writer.write(agentHelloFrame(agreed));
  const bytes = writer.flush();
  publishFramesOut(runtime, connection, FrameType.AGENT_HELLO, 1);
  if (dc.hello.hasSubscribers) {
    dc.hello.publish({ agent: runtime.agent, connection, healthcheck: connection.healthcheck });
  }
  return bytes;
}

/** The error for a frame that does not belong where it came (status 4, invalid frame). */
export function outOfOrder(type: FrameType, state: State): SpopError {
  const detail =
    type === FrameType.NOTIFY && state === State.HANDSHAKE
      ? "NOTIFY before HAPROXY-HELLO"
      : type === FrameType.HAPROXY_HELLO
        ? "a second HAPROXY-HELLO"
        : `${frameTypeNames[type]} is not a frame HAProxy sends`;
  return new SpopError(DisconnectStatus.INVALID_FRAME, detail, { field: "frame type" });
}
