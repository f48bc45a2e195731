#!/usr/bin/env bash
# Starts a 3-master Redis Cluster on loopback (no replicas, no persistence) unless one already
# answers on these ports, and prints the seed URLs for TWOFACTOR_TEST_REDIS_CLUSTER_URLS.
# Ports: TWOFACTOR_CLUSTER_PORTS (default "7101 7102 7103"); files under
# ${TMPDIR:-/tmp}/twofactor-redis-cluster/<port>.
set -euo pipefail
ports=(${TWOFACTOR_CLUSTER_PORTS:-7101 7102 7103})
urls=$(printf 'redis://127.0.0.1:%s,' "${ports[@]}"); urls=${urls%,}
if redis-cli -p "${ports[0]}" cluster info 2>/dev/null | grep -q '^cluster_state:ok'; then
    echo "$urls"; exit 0
fi
base="${TMPDIR:-/tmp}/twofactor-redis-cluster"
for port in "${ports[@]}"; do
    if ! redis-cli -p "$port" ping >/dev/null 2>&1; then
        mkdir -p "$base/$port"
        rm -f "$base/$port/nodes.conf"
        redis-server --port "$port" --bind 127.0.0.1 --daemonize yes --dir "$base/$port" \
            --cluster-enabled yes --cluster-config-file nodes.conf --cluster-node-timeout 5000 \
            --save "" --appendonly no --logfile "$base/$port/redis.log" >/dev/null
    fi
done
for port in "${ports[@]}"; do
    for _ in $(seq 1 50); do redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.1; done
done
redis-cli --cluster create $(printf '127.0.0.1:%s ' "${ports[@]}") \
    --cluster-replicas 0 --cluster-yes >/dev/null
for _ in $(seq 1 100); do
    redis-cli -p "${ports[0]}" cluster info | grep -q '^cluster_state:ok' && break
    sleep 0.1
done
redis-cli -p "${ports[0]}" cluster info | grep -q '^cluster_state:ok'
echo "$urls"
