import { spawnSync } from "node:child_process";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { wireFrame, wireSetVar } from "./wire.ts";

const packageDir = join(import.meta.dirname, "..");

function runExample(file: string): string {
  const result = spawnSync(process.execPath, ["--conditions=@spoekit/source", join("examples", file)], {
    cwd: packageDir,
    encoding: "utf8",
  });
  expect(result.stderr).toBe("");
  expect(result.status).toBe(0);
  return result.stdout;
}

describe("examples", () => {
  it("quick-start (the README's example) reads the NOTIFY and prints its ACK", () => {
    const ack = wireFrame({ type: 103, streamId: 0, frameId: 1, payload: wireSetVar(1, "ip_score", "0200") });
    expect(runExample("quick-start.ts").split("\n")).toEqual([
      "check-rate for 127.0.0.1 (stream 0, frame 1)",
      `ACK: ${ack.toString("hex")}`,
      "",
    ]);
  });

  it("captured-frames (pnpm example:captured) decodes every captured frame and answers", () => {
    const output = runExample("captured-frames.ts");
    expect(output.match(/^ {2}\[(2\.6\.12|3\.5-dev5)\] /gm)).toHaveLength(15);
    expect(output).toContain(
      "NOTIFY stream 2 frame 1: check-rate(ip_fwd=NULL, ip_xff=IPV4 203.0.113.7, ip_src=IPV4 127.0.0.1)",
    );
    expect(output).toContain('capabilities=STRING "pipelining"');
    expect(output).toContain("ACK stream 2 frame 1: set sess.ip_score = INT32 100");
  });
});
