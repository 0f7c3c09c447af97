import { defineProject, type ViteUserConfig } from "vitest/config";

/**
 * Workspace packages export `./src/*.ts` under the `@spoekit/source` condition, so tests
 * (and `node --conditions=@spoekit/source`) run against source without a build step.
 */
const sourceConditions = ["@spoekit/source", "node", "import", "default"];

/** The vitest project settings every workspace shares; `test` overrides are merged in. */
export function spoekitProject(name: string, test: NonNullable<ViteUserConfig["test"]> = {}): ViteUserConfig {
  return defineProject({
    resolve: { conditions: sourceConditions },
    ssr: { resolve: { conditions: sourceConditions, externalConditions: ["@spoekit/source"] } },
    test: {
      name,
      include: ["src/**/*.test.ts", "test/**/*.test.ts"],
      // A guard against hangs, not a speed requirement: with every core busy, starting real
      // servers and fuzzing take many times what they take on a quiet machine. What a test
      // asserts about time, it asserts on its own clocks.
      testTimeout: 60_000,
      hookTimeout: 120_000,
      ...test,
    },
  });
}
