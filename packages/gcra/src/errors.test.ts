import { ReplyError } from "iovalkey";
import { describe, expect, it } from "vitest";
import { Incidents } from "./events.ts";
import {
  FAILURE_KINDS,
  failureKind,
  GCRA_ERROR_CODES,
  GcraError,
  GcraStoreError,
  replyCode,
  type StoreEvent,
  toStoreError,
} from "./index.ts";

/** An error reply as iovalkey hands it over. */
const reply = (text: string): Error => new ReplyError(text) as Error;

/** A socket's error, with Node's code. */
const socketError = (code: string, message: string): Error => Object.assign(new Error(message), { code });

describe("failure classification", () => {
  it.each([
    ["WRONGPASS invalid username-password pair or user is disabled.", "auth", "WRONGPASS"],
    ["NOAUTH Authentication required.", "auth", "NOAUTH"],
    ["NOPERM No permissions to access a key", "auth", "NOPERM"],
    ["READONLY You can't write against a read only replica.", "readonly", "READONLY"],
    ["CLUSTERDOWN The cluster is down", "cluster", "CLUSTERDOWN"],
    ["MOVED 3999 127.0.0.1:6381", "cluster", "MOVED"],
    ["TRYAGAIN Multiple keys request during rehashing of slot", "cluster", "TRYAGAIN"],
    ["NOSCRIPT No matching script. Please use EVAL.", "script", "NOSCRIPT"],
    ["WRONGTYPE Operation against a key holding the wrong kind of value", "script", "WRONGTYPE"],
    ["ERR user_script:1: Script attempted to access nonexistent global variable", "script", "ERR"],
    ["LOADING Redis is loading the dataset in memory", "connection", "LOADING"],
    ["SOMETHINGNEW the server invented a code", "other", "SOMETHINGNEW"],
  ])("classifies the reply %j by its code", (text, kind, code) => {
    const error = toStoreError(reply(text));
    expect(error).toMatchObject({ kind, reply: code, code: GCRA_ERROR_CODES[kind as never], message: text });
    expect(error.cause).toBeInstanceOf(Error);
    expect(error).toBeInstanceOf(GcraError);
  });

  it("reads no code from text that is not a reply, however it reads", () => {
    // The same words in an error that is not Valkey's reply are not its code.
    expect(replyCode(new Error("WRONGPASS invalid username-password pair"))).toBeUndefined();
    expect(failureKind(new Error("WRONGPASS invalid username-password pair"))).toBe("connection");
    expect(replyCode(reply("lowercase words first"))).toBeUndefined();
  });

  it("classifies socket and TLS failures by Node's error code", () => {
    expect(failureKind(socketError("ECONNREFUSED", "connect ECONNREFUSED 127.0.0.1:1"))).toBe("connection");
    expect(failureKind(socketError("ECONNRESET", "read ECONNRESET"))).toBe("connection");
    expect(
      failureKind(socketError("SELF_SIGNED_CERT_IN_CHAIN", "self-signed certificate in certificate chain")),
    ).toBe("tls");
    expect(failureKind(socketError("ERR_TLS_CERT_ALTNAME_INVALID", "Hostname/IP does not match"))).toBe(
      "tls",
    );
    expect(
      failureKind(socketError("ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED", "certificate required")),
    ).toBe("tls");
  });

  it("keeps a store error as it is, and calls anything that is no connection's problem other", () => {
    const timeout = new GcraStoreError("timeout", "no answer");
    expect(toStoreError(timeout)).toBe(timeout);
    expect(timeout.code).toBe("GCRA_STORE_TIMEOUT");
    expect(failureKind(new TypeError("x is not a function"))).toBe("other");
    expect(toStoreError("a string")).toMatchObject({ kind: "other", message: "a string" });
  });

  it("has a code for every kind", () => {
    for (const kind of FAILURE_KINDS)
      expect(new GcraStoreError(kind, "m").code).toBe(`GCRA_STORE_${kind.toUpperCase()}`);
  });
});

describe("incidents", () => {
  let now = 0;
  const clock = () => now;

  it("reports each transition of a node once, and its recovery with how long it lasted", () => {
    const events: StoreEvent[] = [];
    const incidents = new Incidents((event) => events.push(event), clock, 10_000);
    const refused = toStoreError(socketError("ECONNREFUSED", "connect ECONNREFUSED"));
    now = 1_000_000;
    for (let i = 0; i < 50; i++) incidents.connectionFailed("v:6379", refused);
    incidents.lost("v:6379", new GcraStoreError("connection", "closed"));
    now = 3_000_000;
    incidents.ready("v:6379");
    incidents.ready("v:6379");
    expect(events).toEqual([
      { type: "unreachable", node: "v:6379", error: refused },
      { type: "recovered", node: "v:6379", downForUs: 2_000_000 },
    ]);
  });

  it("ends a refused login only with an answered call, not with a connection that looks ready", () => {
    const events: StoreEvent[] = [];
    const incidents = new Incidents((event) => events.push(event), clock, 10_000);
    const wrongpass = toStoreError(reply("WRONGPASS invalid username-password pair or user is disabled."));
    for (let i = 0; i < 5; i++) {
      incidents.connectionFailed("v:6379", wrongpass);
      incidents.ready("v:6379");
      incidents.lost("v:6379", new GcraStoreError("connection", "closed"));
    }
    expect(events.map((event) => event.type)).toEqual(["auth-failure"]);
    incidents.answered("v:6379");
    expect(events.map((event) => event.type)).toEqual(["auth-failure", "recovered"]);
  });

  it("reports identical call failures at most once per interval, with the count left out", () => {
    const events: StoreEvent[] = [];
    const incidents = new Incidents((event) => events.push(event), clock, 10_000);
    now = 0;
    const timeout = () => new GcraStoreError("timeout", "no answer from Valkey within 10 ms");
    for (let i = 0; i < 100; i++) incidents.callFailed(timeout());
    incidents.callFailed(new GcraStoreError("auth", "NOPERM No permissions"));
    now = 9_999_999;
    incidents.callFailed(timeout());
    now = 10_000_000;
    incidents.callFailed(timeout());
    expect(events.map((event) => [event.type, "repeated" in event ? event.repeated : -1])).toEqual([
      ["error", 0],
      ["error", 0],
      ["error", 100],
    ]);
  });

  it("reports a NOSCRIPT reload once while it lasts, and not the script's first load", () => {
    const events: StoreEvent[] = [];
    const incidents = new Incidents((event) => events.push(event), clock, 10_000);
    incidents.reloading("v:6379", true);
    incidents.reloaded("v:6379");
    for (let i = 0; i < 20; i++) incidents.reloading("v:6379", false);
    incidents.reloaded("v:6379");
    expect(events).toEqual([{ type: "script-reload", node: "v:6379" }]);
    // A node that answered NOSCRIPT before: its next one is a reload, whatever the caller knows.
    incidents.reloading("v:6379", true);
    expect(events).toHaveLength(2);
  });

  it("survives a listener that throws", () => {
    const incidents = new Incidents(
      () => {
        throw new Error("a logging mistake");
      },
      clock,
      10_000,
    );
    expect(() => incidents.callFailed(new GcraStoreError("timeout", "late"))).not.toThrow();
  });
});
