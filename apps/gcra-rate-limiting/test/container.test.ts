/**
 * The Containerfile, read as text (container-image.test.ts builds and runs it with podman): two
 * stages on Node 24 slim, what it copies exists and is not ignored, the ports are the app's, it
 * does not run as root, and its ENTRYPOINT is a file the build produces.
 */
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { dirname, join, relative } from "node:path";
import { describe, expect, it } from "vitest";
import { defaultPorts } from "../src/config.ts";
import { V8_FLAG, workerExecArgv } from "../src/lifecycle.ts";
import { appDir } from "./stack.ts";

const repoRoot = join(appDir, "..", "..");
const containerfile = readFileSync(join(appDir, "Containerfile"), "utf8");
const manifest = JSON.parse(readFileSync(join(appDir, "package.json"), "utf8")) as {
  bin: Record<string, string>;
  scripts: Record<string, string>;
  files: string[];
};

/** Instructions with continuation lines joined and comments dropped: [keyword, arguments]. */
const instructions = containerfile
  .replace(/\\\n/g, " ")
  .split("\n")
  .map((line) => line.trim())
  .filter((line) => line !== "" && !line.startsWith("#"))
  .map((line) => {
    const [keyword = "", ...rest] = line.split(/\s+/);
    return [keyword.toUpperCase(), rest.join(" ")] as const;
  });
const all = (keyword: string) => instructions.filter(([k]) => k === keyword).map(([, args]) => args);
const args = Object.fromEntries(all("ARG").map((arg) => arg.split("=") as [string, string]));
const expand = (text: string) => text.replace(/\$\{(\w+)\}/g, (_, name: string) => args[name] ?? "");
const stages = all("FROM").map((from) => expand(from));
const runtime = instructions.slice(instructions.findLastIndex(([k]) => k === "FROM"));

/**
 * Whether `.containerignore` (the rules engines apply to the build context) keeps `path`:
 * the last matching pattern decides, `!` re-includes; `*` spans one path segment, `**` any.
 */
function sentToEngine(path: string): boolean {
  const rules = readFileSync(join(repoRoot, ".containerignore"), "utf8")
    .split("\n")
    .map((line) => line.trim())
    .filter((line) => line !== "" && !line.startsWith("#"));
  let kept = true;
  for (const rule of rules) {
    const negated = rule.startsWith("!");
    const pattern = (negated ? rule.slice(1) : rule).replace(/\/$/, "");
    const source = pattern
      .split("/")
      .map((part) =>
        part === "**" ? ".*" : part.replace(/[.+^${}()|[\]\\]/g, "\\$&").replace(/\*/g, "[^/]*"),
      )
      .join("/")
      .replace(/\.\*\//g, "(?:.*/)?");
    // A pattern matches the path itself or any directory above it.
    if (new RegExp(`^${source}(?:/.*)?$`).test(path)) kept = negated;
  }
  return kept;
}

describe("apps/gcra-rate-limiting/Containerfile", () => {
  it("builds in one stage and runs on Node.js 24 slim in a second one", () => {
    expect(stages).toHaveLength(2);
    expect(stages[0]).toMatch(/^\S*node:24[\w.-]*slim\S* AS build$/i);
    expect(stages[1]).toMatch(/^\S*node:24[\w.-]*slim\S*$/);
    expect(runtime.filter(([k]) => k === "COPY").map(([, a]) => a)).toEqual(["--from=build /out/ /app/"]);
  });

  it("installs production dependencies only into the runtime stage", () => {
    const build = all("RUN").join("\n");
    expect(build).toMatch(/pnpm install --frozen-lockfile/);
    expect(build).toMatch(/deploy --prod\b.* \/out/);
    expect(manifest.files).toEqual(["dist"]);
  });

  it("copies only files that exist and that .containerignore sends to the engine", () => {
    const sources = all("COPY")
      .filter((copy) => !copy.startsWith("--from"))
      .flatMap((copy) => copy.split(/\s+/).slice(0, -1));
    expect(sources.length).toBeGreaterThan(5);
    for (const source of sources) {
      expect(existsSync(join(repoRoot, source)), source).toBe(true);
      expect(sentToEngine(source.replace(/\/$/, "")), source).toBe(true);
    }
    for (const ignored of [
      "node_modules",
      "apps/gcra-rate-limiting/node_modules",
      "packages/gcra/dist",
      ".git",
    ]) {
      expect(sentToEngine(ignored), ignored).toBe(false);
    }
  });

  it("exposes the SPOP and admin ports and runs as a non-root user", () => {
    expect(all("EXPOSE").join(" ").split(/\s+/).map(Number).sort()).toEqual(
      [defaultPorts.spop, defaultPorts.admin].sort(),
    );
    for (const user of runtime.filter(([k]) => k === "USER").map(([, a]) => a)) {
      expect(user).not.toMatch(/^(root|0)(:|$)/);
    }
    expect(all("VOLUME")).toEqual([]);
  });

  it("starts the app as its ENTRYPOINT: the file the build makes of src/main.ts", () => {
    const entrypoint = JSON.parse(all("ENTRYPOINT").at(-1) ?? "[]") as string[];
    expect(entrypoint[0]).toBe("node");
    const script = entrypoint.at(-1) ?? "";
    const workdir = runtime.filter(([k]) => k === "WORKDIR").at(-1)?.[1] ?? "";
    expect(script.startsWith(`${workdir}/`), script).toBe(true);
    const inPackage = relative(workdir, script);
    expect(`./${inPackage}`).toBe(manifest.bin["gcra-rate-limiting"]);
    expect(manifest.scripts.start).toContain(inPackage);
    expect(entrypoint.slice(1, -1)).toEqual([V8_FLAG]);

    // The build (tsc -p tsconfig.build.json) into a scratch directory: the file is there.
    const outDir = mkdtempSync(join(tmpdir(), "gcra-build-"));
    try {
      const typescript = createRequire(join(repoRoot, "package.json")).resolve("typescript/package.json");
      const tsc = join(dirname(typescript), "bin", "tsc");
      const build = spawnSync(process.execPath, [tsc, "-p", "tsconfig.build.json", "--outDir", outDir], {
        cwd: appDir,
        encoding: "utf8",
      });
      expect(build.status, `${build.stdout}${build.stderr}`).toBe(0);
      const built = join(outDir, relative("dist", inPackage));
      expect(existsSync(built), built).toBe(true);
      expect(readFileSync(built, "utf8").startsWith("#!/usr/bin/env node")).toBe(true);
    } finally {
      rmSync(outDir, { recursive: true, force: true });
    }
  }, 60_000);
});

describe("the V8 flag the app runs with", () => {
  it("is the same in pnpm start, the Containerfile and the systemd unit", () => {
    const unit = readFileSync(join(repoRoot, "deploy", "systemd", "gcra-rate-limiting.service"), "utf8");
    const execStart = /^ExecStart=(.*)$/m.exec(unit)?.[1] ?? "";
    expect(execStart.split(/\s+/).slice(1, -1)).toEqual([V8_FLAG]);
    expect((manifest.scripts.start ?? "").split(/\s+/).slice(1, -1)).toEqual([V8_FLAG]);
  });

  it("reaches the worker processes unless the operator sized the semi-spaces", () => {
    expect(workerExecArgv(["--enable-source-maps"])).toEqual(["--enable-source-maps", V8_FLAG]);
    expect(workerExecArgv(["--max-semi-space-size=16"])).toEqual(["--max-semi-space-size=16"]);
    expect(workerExecArgv([], "--trace-gc --max-semi-space-size=2")).toEqual([]);
  });
});
