/**
 * The frames captured from HAProxy 2.6.12 and 3.5-dev5 (the codec's captures) that this
 * package's tests send, by name.
 */
import { capturedFrame } from "@spoekit/spop-codec/testing";

const traffic = "opened for traffic";
const healthcheck = "health check";
const direct = "no forwarding headers, IPv4";
const xff = "X-Forwarded-For: 203.0.113.7, 10.0.0.1";

export const captured = {
  /** 2.6.12 HAPROXY-HELLO: connection opened for traffic. */
  hello26: capturedFrame("2.6.12", "HAPROXY-HELLO", traffic),
  /** 2.6.12 HAPROXY-HELLO: option spop-check health check (agent answers AGENT-HELLO then closes). */
  healthcheck26: capturedFrame("2.6.12", "HAPROXY-HELLO", healthcheck),
  /** 2.6.12 NOTIFY: no forwarding headers, IPv4 client 127.0.0.1. */
  notify26: capturedFrame("2.6.12", "NOTIFY", direct),
  /** 2.6.12 NOTIFY: X-Forwarded-For: 203.0.113.7, 10.0.0.1. */
  notifyXff26: capturedFrame("2.6.12", "NOTIFY", xff),
  /** 2.6.12 HAPROXY-DISCONNECT: HAProxy soft-stop (SIGUSR1). */
  disconnect26: capturedFrame("2.6.12", "HAPROXY-DISCONNECT"),
  /** 3.5-dev5 HAPROXY-HELLO: connection opened for traffic. */
  hello35: capturedFrame("3.5-dev5", "HAPROXY-HELLO", traffic),
  /** 3.5-dev5 HAPROXY-HELLO: option spop-check health check (agent answers AGENT-HELLO then closes). */
  healthcheck35: capturedFrame("3.5-dev5", "HAPROXY-HELLO", healthcheck),
  /** 3.5-dev5 NOTIFY: no forwarding headers, IPv4 client 127.0.0.1. */
  notify35: capturedFrame("3.5-dev5", "NOTIFY", direct),
  /** 3.5-dev5 NOTIFY: X-Forwarded-For: 203.0.113.7, 10.0.0.1. */
  notifyXff35: capturedFrame("3.5-dev5", "NOTIFY", xff),
};
