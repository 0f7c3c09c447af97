import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { publint } from "publint";
import { formatMessage } from "publint/utils";
import { describe, expect, it } from "vitest";

const root = join(import.meta.dirname, "..", "..", "..");
const publishable = readdirSync(join(root, "packages")).map((name) => join(root, "packages", name));
const workspaces = ["packages", "apps", "tools"]
  .flatMap((dir) => readdirSync(join(root, dir)).map((name) => join(root, dir, name)))
  .concat(join(root, "deploy", "tests"))
  .filter((dir) => existsSync(join(dir, "tsconfig.json")));

function run(command: string, args: string[], cwd = root) {
  const result = spawnSync(command, args, {
    cwd,
    encoding: "utf8",
    env: { ...process.env, FORCE_COLOR: "0" },
  });
  return { status: result.status, output: `${result.stdout}${result.stderr}` };
}

describe("repository", () => {
  // Whole-tree tool runs: seconds when the machine is idle, more while the suite loads it.
  const toolTimeoutMs = 60_000;

  it(
    "passes the linter and formatter (biome ci)",
    () => {
      const result = run("pnpm", ["exec", "biome", "ci", "."]);
      expect(result.status, result.output).toBe(0);
    },
    toolTimeoutMs,
  );

  it.each(workspaces.map((dir) => [dir.slice(root.length + 1), dir]))(
    "typechecks %s strictly",
    (_name, dir) => {
      const result = run("pnpm", ["exec", "tsc", "-p", "tsconfig.json", "--noEmit"], dir);
      expect(result.status, result.output).toBe(0);
    },
    toolTimeoutMs,
  );
});

describe.each(
  publishable.map((dir) => [JSON.parse(readFileSync(join(dir, "package.json"), "utf8")).name, dir]),
)("publishing %s", (name: string, dir: string) => {
  it("is built (dist/index.js and dist/index.d.ts exist)", () => {
    expect(existsSync(join(dir, "dist", "index.js")), `${name}: run \`pnpm build\` first`).toBe(true);
    expect(existsSync(join(dir, "dist", "index.d.ts"))).toBe(true);
  });

  it("has no publint errors or warnings", async () => {
    const { messages, pkg } = await publint({ pkgDir: dir, level: "warning", pack: "pnpm" });
    const text = messages.map((m) => `${m.type}: ${formatMessage(m, pkg)}`);
    expect(text).toEqual([]);
  });

  it("packs a tarball with the build, the README, the licence and no tests (dry run of pnpm publish)", () => {
    const out = mkdtempSync(join(tmpdir(), "spoekit-pack-"));
    try {
      const pack = run("pnpm", ["pack", "--pack-destination", out], dir);
      expect(pack.status, pack.output).toBe(0);
      const tarball = readdirSync(out).find((file) => file.endsWith(".tgz"));
      expect(tarball).toBeDefined();
      const listing = run("tar", ["-tzf", join(out, tarball ?? "")]).output.split("\n");
      expect(listing).toEqual(
        expect.arrayContaining([
          "package/package.json",
          "package/README.md",
          "package/LICENSE",
          "package/dist/index.js",
          "package/dist/index.d.ts",
        ]),
      );
      expect(listing.filter((file) => /\.test\.ts$|\.bench\.ts$/.test(file))).toEqual([]);
      const manifest = JSON.parse(
        run("tar", ["-xzOf", join(out, tarball ?? ""), "package/package.json"]).output,
      );
      const dependencyRanges = Object.values({
        ...manifest.dependencies,
        ...manifest.peerDependencies,
      }) as string[];
      expect(dependencyRanges.filter((range) => range.startsWith("workspace:"))).toEqual([]);
    } finally {
      rmSync(out, { recursive: true, force: true });
    }
  });
});
