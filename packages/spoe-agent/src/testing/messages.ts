/** SPOE messages to send from a client that plays HAProxy. */
import { type KVItem, type Message, TypedValue } from "@spoekit/spop-codec";

/**
 * A message with these arguments, in the given order: a record (`{ ip_src: TypedValue.ipv4(…) }`)
 * or a KV-list (for repeated or empty names).
 */
export function spoeMessage(
  name: string,
  args: Readonly<Record<string, TypedValue>> | readonly KVItem[],
): Message {
  const list = Array.isArray(args)
    ? (args as readonly KVItem[])
    : Object.entries(args as Record<string, TypedValue>).map(([argName, value]) => ({
        name: argName,
        value,
      }));
  return { name, args: list };
}

/** Arguments of {@link checkRateMessage}; each absent one is sent as NULL, as HAProxy does. */
export interface CheckRateArgs {
  /** The `Forwarded` header (HAProxy 2.6 sends it raw) or its converted address (≥ 2.8). */
  ipFwd?: TypedValue;
  /** The first `X-Forwarded-For` address. */
  ipXff?: TypedValue;
}

/**
 * The `check-rate` message of the rate limiter's SPOE configuration
 * (`args ip_fwd=… ip_xff=… ip_src=src`), as HAProxy sends it for a client at `ipSrc`
 * (IPv4 or IPv6 text) without forwarding headers unless given.
 */
export function checkRateMessage(ipSrc = "127.0.0.1", args: CheckRateArgs = {}): Message {
  return spoeMessage("check-rate", {
    ip_fwd: args.ipFwd ?? TypedValue.null,
    ip_xff: args.ipXff ?? TypedValue.null,
    ip_src: ipSrc.includes(":") ? TypedValue.ipv6(ipSrc) : TypedValue.ipv4(ipSrc),
  });
}
