import { spawnSync } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { requireBinary } from "./binaries.ts";

/** A throwaway certificate authority and the certificates it signed, as files and PEM text. */
export interface TlsMaterial {
  /** The CA's certificate (PEM file), to trust. */
  readonly caFile: string;
  /** The CA's certificate as PEM text. */
  readonly ca: string;
  /** A certificate for `127.0.0.1` and `localhost`, signed by the CA, for a server. */
  readonly certFile: string;
  /** The server certificate's private key. */
  readonly keyFile: string;
  /** A client certificate signed by the CA, for mutual TLS. */
  readonly clientCertFile: string;
  /** The client certificate's private key. */
  readonly clientKeyFile: string;
}

function openssl(binary: string, args: readonly string[], cwd: string): void {
  const run = spawnSync(binary, args, { cwd, encoding: "utf8" });
  if (run.status !== 0) {
    throw new Error(`openssl ${args.join(" ")} failed (${run.status}):\n${run.stdout}${run.stderr}`);
  }
}

const EC_KEY = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];

/**
 * Makes a fresh CA in `dir` (valid for two days) and has it sign a server certificate for
 * `127.0.0.1`/`localhost` and a client certificate — with the `openssl` command line, at test
 * time, so no key ever lives in the repository. Each call makes a CA of its own: another call's
 * material is the "wrong CA" a client must refuse.
 */
export function createTlsMaterial(dir: string): TlsMaterial {
  const binary = requireBinary("openssl");
  openssl(
    binary,
    [
      "req",
      "-x509",
      ...EC_KEY,
      "-keyout",
      "ca.key",
      "-out",
      "ca.crt",
      "-days",
      "2",
      "-subj",
      "/CN=spoekit test CA",
      "-addext",
      "basicConstraints=critical,CA:TRUE",
      "-addext",
      "keyUsage=critical,keyCertSign,cRLSign",
    ],
    dir,
  );
  const sign = (name: string, subject: string, extensions: string) => {
    writeFileSync(join(dir, `${name}.ext`), extensions);
    openssl(
      binary,
      ["req", "-new", ...EC_KEY, "-keyout", `${name}.key`, "-out", `${name}.csr`, "-subj", subject],
      dir,
    );
    openssl(
      binary,
      [
        "x509",
        "-req",
        "-in",
        `${name}.csr`,
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-set_serial",
        String(Date.now()),
        "-days",
        "2",
        "-out",
        `${name}.crt`,
        "-extfile",
        `${name}.ext`,
      ],
      dir,
    );
  };
  sign("server", "/CN=localhost", "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n");
  sign("client", "/CN=spoekit test client", "extendedKeyUsage=clientAuth\n");
  return {
    caFile: join(dir, "ca.crt"),
    ca: readFileSync(join(dir, "ca.crt"), "utf8"),
    certFile: join(dir, "server.crt"),
    keyFile: join(dir, "server.key"),
    clientCertFile: join(dir, "client.crt"),
    clientKeyFile: join(dir, "client.key"),
  };
}
