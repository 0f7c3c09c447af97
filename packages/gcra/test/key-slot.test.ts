import { type RedisServer, startRedis } from "@spoekit/harness";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { keySlot } from "../src/key-slot.ts";

// A cluster-enabled node answers CLUSTER KEYSLOT before it joins a cluster: the server's own hash.
let node: RedisServer;
beforeAll(async () => {
  node = await startRedis({ cluster: true });
});
afterAll(async () => {
  await node?.stop();
});

const serverSlot = (key: string) => node.command("CLUSTER", "KEYSLOT", key);

describe("keySlot", () => {
  it("gives the slot Valkey gives, hash tags included", async () => {
    for (const key of [
      "",
      "foo",
      "123456789",
      "{user1000}.following",
      "a{}b",
      "{}{x}",
      "x{y",
      "x}y{z}",
      "{{a}}",
    ]) {
      expect(keySlot(key), key).toBe(await serverSlot(key));
    }
    expect(keySlot("{user1000}.following")).toBe(keySlot("user1000"));
  });

  it("agrees with Valkey on any key: tags, empty tags, non-ASCII", async () => {
    const part = fc.oneof(
      fc.string({ unit: "grapheme", maxLength: 6 }),
      fc.constantFrom("{", "}", "{}", "é", "😀", "\u0000"),
    );
    await fc.assert(
      fc.asyncProperty(fc.array(part, { maxLength: 8 }), async (parts) => {
        const key = parts.join("");
        expect(keySlot(key)).toBe(await serverSlot(key));
      }),
      { numRuns: 500 },
    );
  });

  it("hashes keys longer than its scratch buffer", async () => {
    const long = `${"k".repeat(10_000)}{tag}`;
    expect(keySlot(long)).toBe(keySlot("tag"));
    const plain = "é".repeat(5000);
    expect(keySlot(plain)).toBe(await serverSlot(plain));
  });
});
