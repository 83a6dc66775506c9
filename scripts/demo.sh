#!/usr/bin/env bash
# npm run demo [-- --keep]
# One node namespace with an uplink to a fabric namespace, two pod namespaces
# attached through the real `tern` CNI binary (as a runtime runs it), their
# addresses and routes, pings between them, then DEL and cleanup.
# Nothing touches the root network namespace; everything is removed on exit
# (also on Ctrl-C or failure) unless --keep is given.
set -euo pipefail
cd "$(dirname "$0")/.."
KEEP=0
for a in "$@"; do [ "$a" = "--keep" ] && KEEP=1; done

bash scripts/setup.sh

P="demo$(head -c2 /dev/urandom | od -An -tx1 | tr -d ' \n')"
NODE="$P-node"; FAB="$P-fabric"; PODS=("$P-pod-a" "$P-pod-b")
WORK=$(mktemp -d "/tmp/$P.XXXX")
CONF="$WORK/10-tern.conf"
BIN="$PWD/dist/bin"
bold() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

cleanup() {
  [ "$KEEP" = 1 ] && return
  for ns in "${PODS[@]}" "$NODE" "$FAB"; do
    for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -9 "$pid" 2>/dev/null || true; done
    ip netns del "$ns" 2>/dev/null || true
  done
  rm -rf "$WORK"
}
trap cleanup EXIT INT TERM

bold "Node $NODE with an uplink to $FAB (no change in the root namespace)"
for ns in "$NODE" "$FAB" "${PODS[@]}"; do ip netns add "$ns"; ip -n "$ns" link set lo up; done
ip -n "$NODE" link add uplink0 type veth peer name down0 netns "$FAB"
ip -n "$NODE" addr add 192.0.2.11/24 dev uplink0; ip -n "$NODE" link set uplink0 up
ip -n "$FAB" addr add 192.0.2.1/24 dev down0; ip -n "$FAB" link set down0 up
ip -n "$NODE" route add default via 192.0.2.1
ip netns exec "$NODE" sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1

cat > "$CONF" <<JSON
{"cniVersion": "1.0.0", "name": "tern-net", "type": "tern",
 "ipam": {"type": "tern-ipam", "pools": ["10.244.0.0/16", "fd00:10:244::/48"]},
 "datastore": {"type": "sqlite", "path": "$WORK/tern.db"},
 "mtu": 0, "log_file": "$WORK/cni.log", "log_level": "info"}
JSON
echo "network config ($CONF):"; jq . "$CONF"

cni() { # cni COMMAND POD
  CNI_COMMAND=$1 CNI_CONTAINERID="demo-$2" CNI_NETNS="/run/netns/$2" CNI_IFNAME=eth0 CNI_PATH="$BIN" \
    nsenter --net="/run/netns/$NODE" "$BIN/tern" < "$CONF"
}

declare -A IP4 IP6
for pod in "${PODS[@]}"; do
  bold "CNI ADD $pod"
  start=$(date +%s%N)
  res=$(cni ADD "$pod")
  echo "$res" | jq -c '{interfaces, ips: [.ips[].address]}'
  echo "ADD took $(( ($(date +%s%N) - start) / 1000000 )) ms"
  IP4[$pod]=$(echo "$res" | jq -r '.ips[] | select(.address | contains(".")) | .address' | cut -d/ -f1)
  IP6[$pod]=$(echo "$res" | jq -r '.ips[] | select(.address | contains(":")) | .address' | cut -d/ -f1)
done

for pod in "${PODS[@]}"; do
  bold "Inside $pod"
  ip -n "$pod" -br addr show eth0
  ip -n "$pod" route; ip -n "$pod" -6 route | grep -v '^fe80'
done
bold "Node routes installed by tern (proto 84)"
ip -n "$NODE" route show proto 84; ip -n "$NODE" -6 route show proto 84

A=${PODS[0]}; B=${PODS[1]}
bold "Ping pod-a -> pod-b (IPv4 and IPv6), and pod-a -> node"
ip netns exec "$A" ping -c 3 -i 0.2 -W 2 "${IP4[$B]}" | tail -2
ip netns exec "$A" ping -6 -c 3 -i 0.2 -W 2 "${IP6[$B]}" | tail -2
ip netns exec "$A" ping -c 1 -W 2 192.0.2.11 | tail -1

if [ "$KEEP" = 1 ]; then
  bold "Kept: namespaces $NODE $FAB ${PODS[*]}; config $CONF"
  echo "Remove with: for n in ${PODS[*]} $NODE $FAB; do ip netns del \$n; done; rm -rf $WORK"
  exit 0
fi
for pod in "${PODS[@]}"; do
  bold "CNI DEL $pod"; cni DEL "$pod" && echo ok
done
bold "Done: cleaning up"
