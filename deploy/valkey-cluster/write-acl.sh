#!/bin/sh
# Writes the Valkey ACL file from the passwords of the valkey-users Secret (mounted at
# $SECRETS, one file per user). Only SHA-256 hashes reach the file.
#   default  administration, replication and the cluster-create Job
#   gcra     the rate-limiting agent: its keys and the commands it runs
set -eu
: "${SECRETS:=/secrets}" "${ACL_FILE:=/acl/users.acl}"
: "${GCRA_PERMISSIONS:?the agent user's ACL rules}"

password_hash() {
  printf '%s' "$(cat "$SECRETS/$1")" | sha256sum | cut -d ' ' -f 1
}

umask 077
{
  printf 'user default on #%s ~* &* +@all\n' "$(password_hash default)"
  printf 'user gcra on #%s %s\n' "$(password_hash gcra)" "$GCRA_PERMISSIONS"
} >"$ACL_FILE.tmp"
mv "$ACL_FILE.tmp" "$ACL_FILE"
