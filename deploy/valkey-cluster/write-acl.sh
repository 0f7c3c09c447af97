#!/bin/sh
# Writes the Valkey ACL file from the passwords of the valkey-users Secret (mounted at
# $SECRETS, one file per user). Only SHA-256 hashes reach the ACL file.
#   default  administration, replication and the cluster-create Job
#   gcra     the rate-limiting agent: its keys and the commands it runs
# A replica authenticates to its primary as "default": that needs the password itself,
# which goes to $REPLICATION_FILE (included by valkey.conf), readable by the server only.
set -eu
: "${SECRETS:=/secrets}" "${ACL_FILE:=/acl/users.acl}" "${REPLICATION_FILE:=/acl/replication.conf}"
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
{
  printf 'masteruser default\n'
  printf 'masterauth "%s"\n' "$(cat "$SECRETS/default")"
} >"$REPLICATION_FILE.tmp"
mv "$REPLICATION_FILE.tmp" "$REPLICATION_FILE"
