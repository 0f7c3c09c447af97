#!/bin/sh
# Creates the Valkey Cluster from $CLUSTER_NODES (space-separated host:port) once.
# Run it again whenever you like: when any node already reports cluster_state:ok or
# knows other nodes, the cluster exists and nothing is changed.
set -eu
: "${CLUSTER_NODES:?space-separated host:port of every node}"
cli="${VALKEY_CLI:-valkey-cli}"
user="${VALKEY_USER:-default}"
tries="${WAIT_TRIES:-90}"
# With TLS (deploy/components/valkey-tls): e.g. "--tls --cacert /tls/ca.crt".
tls="${VALKEY_CLI_TLS:-}"

ask() {
  node="$1"
  shift
  # shellcheck disable=SC2086 # $tls: one argument per word
  "$cli" $tls --no-auth-warning --user "$user" -h "${node%:*}" -p "${node##*:}" "$@"
}

for node in $CLUSTER_NODES; do
  attempt=0
  until [ "$(ask "$node" ping 2>/dev/null | tr -d '\r')" = "PONG" ]; do
    attempt=$((attempt + 1))
    if [ "$attempt" -ge "$tries" ]; then
      echo "node $node does not answer PING" >&2
      exit 1
    fi
    sleep 2
  done
done

for node in $CLUSTER_NODES; do
  info="$(ask "$node" cluster info | tr -d '\r')"
  state="$(printf '%s\n' "$info" | sed -n 's/^cluster_state://p')"
  known="$(printf '%s\n' "$info" | sed -n 's/^cluster_known_nodes://p')"
  if [ "$state" = "ok" ] || [ "${known:-1}" -gt 1 ]; then
    echo "cluster exists (node $node: cluster_state:$state, $known known nodes): nothing to do"
    exit 0
  fi
done

# CLUSTER MEET wants addresses: resolve the pod names once, here.
addresses=""
for node in $CLUSTER_NODES; do
  address="$(getent hosts "${node%:*}" | awk '{ print $1; exit }')"
  addresses="$addresses ${address:-${node%:*}}:${node##*:}"
done
# shellcheck disable=SC2086 # one argument per node
ask "${CLUSTER_NODES%% *}" --cluster create $addresses --cluster-replicas "${CLUSTER_REPLICAS:-0}" --cluster-yes
echo "cluster created:$addresses"
