import { execFileSync } from "node:child_process";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { requireBinary } from "@spoekit/harness";
import { fromRoot } from "./paths.ts";

/**
 * Runs deploy/valkey-cluster/write-acl.sh as the Valkey pods' init container does, with the
 * Secret's two passwords as files in `dir`: writes `dir`/users.acl and `dir`/replication.conf.
 */
export function writeAcl(dir: string, passwords: { default: string; gcra: string }, gcraRules: string): void {
  writeFileSync(join(dir, "default"), passwords.default);
  writeFileSync(join(dir, "gcra"), passwords.gcra);
  execFileSync(requireBinary("sh"), [fromRoot("deploy/valkey-cluster/write-acl.sh")], {
    env: {
      PATH: process.env.PATH ?? "",
      SECRETS: dir,
      ACL_FILE: join(dir, "users.acl"),
      REPLICATION_FILE: join(dir, "replication.conf"),
      GCRA_PERMISSIONS: gcraRules,
    },
  });
}
