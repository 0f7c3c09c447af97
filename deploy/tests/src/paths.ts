import { fileURLToPath } from "node:url";

/** The repository root (deploy/tests/src → ../../..). */
export const repoRoot = fileURLToPath(new URL("../../../", import.meta.url));

/** An absolute path from a path relative to the repository root. */
export function fromRoot(relative: string): string {
  return fileURLToPath(new URL(relative, `file://${repoRoot}`));
}
