/**
 * Observability through `node:diagnostics_channel`: subscribe to these channels to count
 * connections, frames, handler latency, errors and disconnects (e.g. as Prometheus metrics)
 * without this package depending on a metrics library. Nothing is built or published while a
 * channel has no subscriber. Subscribers run synchronously on the agent's hot path: keep them
 * cheap, and do not keep the message objects.
 *
 * @example
 * ```ts
 * import { subscribe } from "node:diagnostics_channel";
 * import { channels, type NotifyMessage } from "@spoekit/spoe-agent";
 *
 * subscribe(channels.notify, (message) => {
 *   const { duration, outcome } = message as NotifyMessage;
 *   handlerSeconds.labels(outcome).observe(duration / 1000);
 * });
 * ```
 */
import { channel } from "node:diagnostics_channel";

/** The names of the channels this package publishes on. */
export const channels = {
  /** {@link ListenMessage}: a server started listening. */
  listen: "spoe-agent:listen",
  /** {@link ConnectionMessage}: a connection was accepted (TLS: once its handshake is done). */
  connectionOpen: "spoe-agent:connection:open",
  /** {@link HelloMessage}: a HELLO handshake succeeded. */
  hello: "spoe-agent:connection:hello",
  /** {@link ConnectionCloseMessage}: a connection closed, whatever the reason. */
  connectionClose: "spoe-agent:connection:close",
  /** {@link FrameMessage}: a frame was received (`count` is 1). */
  frameIn: "spoe-agent:frame:in",
  /** {@link FrameMessage}: frames of one type were written in one socket write. */
  frameOut: "spoe-agent:frame:out",
  /** {@link NotifyMessage}: a NOTIFY was answered, or dropped because its connection closed. */
  notify: "spoe-agent:notify",
  /** {@link ErrorMessage}: something failed (a handler, a peer, an ACK, a socket, a hook). */
  error: "spoe-agent:error",
  /** {@link DisconnectMessage}: a DISCONNECT frame was sent or received. */
  disconnect: "spoe-agent:disconnect",
} as const;

/** The channel objects, created once. Internal. */
export const dc = {
  listen: channel(channels.listen),
  connectionOpen: channel(channels.connectionOpen),
  hello: channel(channels.hello),
  connectionClose: channel(channels.connectionClose),
  frameIn: channel(channels.frameIn),
  frameOut: channel(channels.frameOut),
  notify: channel(channels.notify),
  error: channel(channels.error),
  disconnect: channel(channels.disconnect),
};
