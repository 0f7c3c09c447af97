import { spawnSync } from "node:child_process";

const debianPackage: Record<string, string> = {
  haproxy: "haproxy",
  "redis-server": "redis-server",
  "redis-cli": "redis-tools",
  openssl: "openssl",
  kubectl: "kubectl (https://kubernetes.io/docs/tasks/tools/)",
};

/**
 * Returns the absolute path of `name`, or throws an error saying what is missing and how to
 * get it. Tests of real components call this first, so a missing server fails loudly instead of
 * letting a test pass without having run.
 */
export function requireBinary(name: string): string {
  const found = spawnSync("sh", ["-c", `command -v ${name}`], { encoding: "utf8" });
  const path = found.stdout.trim();
  if (found.status === 0 && path) return path;
  const pkg = debianPackage[name] ?? name;
  throw new Error(
    `${name} is not installed: this test drives a real ${name}. Install ${pkg} (\`npm test\` does it with apt-get on Debian).`,
  );
}
