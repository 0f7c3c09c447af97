// Types of what the TypeScript tests import from scripts/container-images.mjs.

/** The app's image, as `pnpm container:build` tags it. */
export declare const appImage: string;

/** Local stand-ins for registry images, by role. */
export declare const standInImages: {
  readonly debianBookworm: string;
  readonly debianTrixie: string;
  readonly node: string;
  readonly haproxy: string;
  readonly valkey: string;
  readonly backend: string;
};

/**
 * Runs podman (or `command`, e.g. podman-compose) with the private configuration; resolves
 * with its exit status (null when it was killed or could not start) and output.
 */
export declare function runPodman(
  args: readonly string[],
  options?: { command?: string; cwd?: string; env?: Record<string, string>; timeoutMs?: number },
): Promise<{ status: number | null; stdout: string; stderr: string }>;

/**
 * Fails with an error (code `ENOTOOLS`) naming each missing tool (podman, podman-compose, …),
 * then builds whichever base, stand-in and app images changed, in a child process.
 */
export declare function prepareForTests(timeoutMs?: number): Promise<void>;
