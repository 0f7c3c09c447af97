import type { GcraDecision } from "@spoekit/gcra";
import type { MessageContext, MessageHandler } from "@spoekit/spoe-agent";
import { DataType, Scope, TypedValue } from "@spoekit/spop-codec";
import {
  type AddressBytes,
  addressFromForwarded,
  addressFromXForwardedFor,
  clientKey,
  parseAddress,
} from "./client-ip.ts";
import type { AppLimiter } from "./limiter.ts";
import type { AppMetrics } from "./metrics.ts";

/** The SPOE message the agent answers (`spoe-message check-rate` in the SPOE configuration). */
export const MESSAGE = "check-rate";

/** A textual address as it stands (an `ip_src` sent as a string). */
const plainAddress = (text: string): string => text.trim();

/**
 * An address from one argument: typed IPV4/IPV6 as is (HAProxy's `src`, `req.hdr_ip`, and from
 * 2.8 `rfc7239_n2nn`), or text parsed by `parseText` (the raw `Forwarded` header of HAProxy 2.6,
 * an X-Forwarded-For list sent as a string). Anything else — NULL, an empty string, text without
 * an address — yields nothing, and the next argument is tried.
 */
function addressOf(
  value: TypedValue | undefined,
  parseText: (text: string) => string | undefined,
): AddressBytes | undefined {
  if (value === undefined) return undefined;
  if (value.type === DataType.IPV4 || value.type === DataType.IPV6) return value.value;
  if (value.type !== DataType.STRING) return undefined;
  const text = parseText(value.value);
  return text === undefined ? undefined : parseAddress(text);
}

/**
 * The client address of a `check-rate` message: the first of `ip_fwd` (RFC 7239 Forwarded),
 * `ip_xff` (X-Forwarded-For) and `ip_src` (the TCP source) that yields an address.
 */
export function clientAddress(message: Pick<MessageContext, "arg">): AddressBytes | undefined {
  return (
    addressOf(message.arg("ip_fwd"), addressFromForwarded) ??
    addressOf(message.arg("ip_xff"), addressFromXForwardedFor) ??
    addressOf(message.arg("ip_src"), plainAddress)
  );
}

const ALLOWED = TypedValue.int32(0);
const DENIED = TypedValue.int32(100);

/**
 * Integer values for the ACK, made once for 0 … `size - 1` (the values `remaining` and
 * `retry_after` take in practice): an ACK on the request path then allocates no value.
 */
export function integers(size: number): (n: number) => TypedValue {
  const cache = Array.from({ length: size }, (_, n) => TypedValue.int64(n));
  return (n) => cache[n] ?? TypedValue.int64(n);
}

/**
 * The `check-rate` handler: resolves the client, asks the limiter, and sets in scope `sess`
 * (`sess.rl.*` with `option var-prefix rl`): `ip_score` 0 (allowed) or 100 (denied) — the
 * contract HAProxy's `deny if { var(sess.rl.ip_score) -m int ge 80 }` reads — `retry_after`
 * (whole seconds until the request would pass, rounded up; 0 when allowed), `remaining` and
 * `limit`. A message without a usable address gets no variables (and no decision is made).
 */
export function checkRateHandler(options: {
  limiter: AppLimiter;
  metrics: AppMetrics;
  ipv6Prefix: number;
}): MessageHandler {
  const { limiter, metrics, ipv6Prefix } = options;
  const limit = TypedValue.int64(limiter.limit.burst);
  const remaining = integers(Math.min(limiter.limit.burst + 1, 4096));
  const seconds = integers(3600);

  const answer = (message: MessageContext, key: string, decision: GcraDecision): void => {
    metrics.decided(decision.source, decision.allowed);
    message.setVar(Scope.SESS, "ip_score", decision.allowed ? ALLOWED : DENIED);
    message.setVar(Scope.SESS, "retry_after", seconds(Math.ceil(decision.retryAfter / 1_000_000)));
    message.setVar(Scope.SESS, "remaining", remaining(decision.remaining));
    message.setVar(
      Scope.SESS,
      "limit",
      decision.limit === limiter.limit.burst ? limit : TypedValue.int64(decision.limit),
    );
    if (message.log.isLevelEnabled("debug")) {
      message.log.debug(
        {
          stream: message.streamId,
          frame: message.frameId,
          key,
          outcome: decision.allowed ? "allowed" : "denied",
          source: decision.source,
          remaining: decision.remaining,
          retryAfterMs: decision.retryAfter / 1000,
        },
        "decision",
      );
    }
  };

  return (message) => {
    const address = clientAddress(message);
    if (address === undefined) {
      metrics.unresolved();
      if (message.log.isLevelEnabled("debug")) {
        message.log.debug({ stream: message.streamId, frame: message.frameId }, "no client address");
      }
      return;
    }
    const key = clientKey(address, ipv6Prefix);
    const decision = limiter.decide(key);
    if (decision instanceof Promise) return decision.then((result) => answer(message, key, result));
    answer(message, key, decision);
    return undefined;
  };
}
