import { join } from "node:path";
import { freePort, spawnManaged, waitFor } from "@spoekit/harness";
import { Scope, setVar, TypedValue } from "@spoekit/spop-codec";
import { afterEach, describe, expect, it } from "vitest";
import { checkRateMessage } from "../src/testing/index.ts";
import { cleanup, clientTo, onCleanup } from "./helpers.ts";

afterEach(cleanup);

describe("examples", () => {
  it("quick-start (the README's agent) scores clients and closes on SIGTERM", async () => {
    const port = await freePort();
    const agent = spawnManaged(
      process.execPath,
      ["--conditions=@spoekit/source", "examples/quick-start.ts"],
      {
        cwd: join(import.meta.dirname, ".."),
        env: { ...process.env, SPOE_ADDR: `127.0.0.1:${port}` },
      },
    );
    onCleanup(() => agent.stop("SIGKILL"));
    await waitFor(
      () => agent.output().includes('"msg":"listening"'),
      { what: "the example" },
      () => agent.output(),
    );
    const haproxy = await clientTo(port);
    await haproxy.hello();
    const [denied, allowed] = await Promise.all([
      haproxy.notify([checkRateMessage("127.0.0.1", { ipXff: TypedValue.ipv4("203.0.113.7") })]),
      haproxy.notify([checkRateMessage("192.0.2.1")]),
    ]);
    expect(denied.actions).toEqual([setVar(Scope.SESS, "ip_score", TypedValue.int32(100))]);
    expect(allowed.actions).toEqual([setVar(Scope.SESS, "ip_score", TypedValue.int32(0))]);
    expect(await agent.stop("SIGTERM")).toBe(0);
    expect((await haproxy.closed).disconnect).toEqual({ status: 0, message: "normal" });
  });
});
