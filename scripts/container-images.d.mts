// Types of scripts/container-images.mjs for the TypeScript tests that import it.

/** A failure of the image preparation, with a stable `code`. */
export declare class ContainerImagesError extends Error {
  readonly code: string;
  constructor(code: string, message: string, options?: { cause?: unknown });
}

/** Private podman state under the repository's git-ignored `.cache/containers/`. */
export declare const containersRoot: string;
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
/** The base image name the app's Containerfile uses. */
export declare const containerfileNodeImage: string;

/** The names of missing tools (podman, podman-compose, …); empty when all are installed. */
export declare function missingTools(): string[];
/** Throws a `ContainerImagesError` naming each missing tool. */
export declare function requireTools(): void;
/** Installs the missing tools with apt-get. */
export declare function installTools(): void;
/** Writes the private configuration; returns the variables that point podman at it. */
export declare function podmanEnvironment(): { CONTAINERS_CONF: string; CONTAINERS_STORAGE_CONF: string };
/** Builds the base and stand-in images whose inputs changed. */
export declare function prepareImages(): void;
/** Builds the app's image. */
export declare function buildAppImage(): void;
/** An image's size in bytes. */
export declare function imageSize(image: string): number;
/** Runs podman (or `command`) with the private configuration. */
export declare function runPodman(
  args: readonly string[],
  options?: { command?: string; cwd?: string; env?: Record<string, string>; timeoutMs?: number },
): Promise<{ status: number | null; stdout: string; stderr: string }>;
/** Fails naming missing tools, then prepares every image a container test needs. */
export declare function prepareForTests(timeoutMs?: number): Promise<void>;
