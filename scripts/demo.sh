#!/usr/bin/env bash
# npm run demo [-- --keep]
# A three-node Tern cluster in network namespaces on the embedded datastore:
# a node daemon per node (BGP full mesh from the node registry, a blackhole per
# owned block, the CNI fast path), pods of two tenants attached through the real
# `tern` CNI binary, a tenant-isolation policy file dropped into the daemons'
# watched policy directory, then the nodes, the routes
# BGP installed and a reachability matrix (tenant A<->A allowed, A<->B denied).
# Nothing touches the root network namespace; everything is removed on exit
# (also on Ctrl-C or failure) unless --keep is given.
set -euo pipefail
cd "$(dirname "$0")/.."
KEEP=0
for a in "$@"; do [ "$a" = "--keep" ] && KEEP=1; done

bash scripts/setup.sh

P="demo$(head -c2 /dev/urandom | od -An -tx1 | tr -d ' \n')"
WORK=$(mktemp -d "/tmp/$P.XXXX")
REPO="$PWD"
BIN="$PWD/dist/bin"
DB="$WORK/tern.db"
mkdir -p "$WORK/policies.d"
NODES=(n1 n2 n3)
declare -A POD_NODE=([a1]=n1 [a2]=n2 [b1]=n2 [b2]=n3)
declare -A POD_TENANT=([a1]=alpha [a2]=alpha [b1]=beta [b2]=beta)
PODS=(a1 a2 b1 b2)
NSES=("$P-sw")
for n in "${NODES[@]}"; do NSES+=("$P-$n"); done
for p in "${PODS[@]}"; do NSES+=("$P-$p"); done
declare -A DAEMON
bold() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

cleanup() {
  [ "$KEEP" = 1 ] && return
  for pid in "${DAEMON[@]:-}"; do [ -n "$pid" ] && kill "$pid" 2>/dev/null || true; done
  sleep 0.5
  for ns in "${NSES[@]}"; do
    for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -9 "$pid" 2>/dev/null || true; done
    ip netns del "$ns" 2>/dev/null || true
  done
  rm -rf "$WORK"
}
trap cleanup EXIT INT TERM

bold "Three nodes on one segment (namespaces $P-*; the root namespace is untouched)"
ip netns add "$P-sw"
ip -n "$P-sw" link add br0 type bridge
ip -n "$P-sw" addr add 192.0.2.1/24 dev br0
ip -n "$P-sw" link set br0 up
for i in 0 1 2; do
  n=${NODES[$i]}; ns="$P-$n"; ip=192.0.2.$((11 + i))
  ip netns add "$ns"; ip -n "$ns" link set lo up
  ip -n "$ns" link add uplink0 type veth peer name "p$i" netns "$P-sw"
  ip -n "$P-sw" link set "p$i" master br0 up
  ip -n "$ns" addr add "$ip/24" dev uplink0; ip -n "$ns" link set uplink0 up
  ip -n "$ns" route add default via 192.0.2.1
  ip netns exec "$ns" sysctl -qw net.ipv4.ip_forward=1
  cat > "$WORK/$n.yaml" <<YAML
nodename: $n
nodenameFile: $WORK/$n.nodename
addresses: [$ip/24]
asn: 64512
cniSocket: $WORK/$n.sock
healthListen: 127.0.0.1:9099
policyDir: $WORK/policies.d
datastore: {type: sqlite, path: $DB}
bgp: {mesh: true, holdTime: 9, restartTime: 0}
logLevel: info
YAML
  nsenter --net="/run/netns/$ns" "$BIN/ternctl" node run --config "$WORK/$n.yaml" > "$WORK/$n.log" 2>&1 &
  DAEMON[$n]=$!
  printf '%s  %s  daemon pid %s\n' "$n" "$ip" "${DAEMON[$n]}"
done
for n in "${NODES[@]}"; do
  for _ in $(seq 100); do [ -S "$WORK/$n.sock" ] && break; sleep 0.1; done
  [ -S "$WORK/$n.sock" ] || { echo "daemon $n did not start:"; cat "$WORK/$n.log"; exit 1; }
done
"$BIN/ternctl" --datastore "$DB" node list

bold "Pods of tenants alpha and beta, attached through the real tern CNI binary (fast path via each node's daemon)"
declare -A IP
for p in "${PODS[@]}"; do
  n=${POD_NODE[$p]}; ns="$P-$p"; t=${POD_TENANT[$p]}
  ip netns add "$ns"
  conf=$(printf '{"cniVersion":"1.0.0","name":"tern-net","type":"tern","nodename":"%s","cni_socket":"%s","ipam":{"type":"tern-ipam","pools":["10.244.0.0/16"]},"datastore":{"type":"sqlite","path":"%s"},"log_file":"%s"}' "$n" "$WORK/$n.sock" "$DB" "$WORK/cni.log")
  start=$(date +%s%N)
  res=$(echo "$conf" | CNI_COMMAND=ADD CNI_CONTAINERID="demo-$p" CNI_NETNS="/run/netns/$ns" CNI_IFNAME=eth0 CNI_PATH="$BIN" \
        CNI_ARGS="K8S_POD_NAMESPACE=$t;K8S_POD_NAME=$p" nsenter --net="/run/netns/$P-$n" "$BIN/tern")
  IP[$p]=$(echo "$res" | jq -r '.ips[0].address' | cut -d/ -f1)
  printf '%-3s tenant %-6s on %s  %-12s (ADD %d ms)\n' "$p" "$t" "$n" "${IP[$p]}" $(( ($(date +%s%N) - start) / 1000000 ))
done

bold "BGP sessions and the routes each node learned (proto 86 via the owning node)"
for n in "${NODES[@]}"; do
  # Each node should learn one block from every other node that has pods.
  want=0
  for m in "${NODES[@]}"; do
    [ "$m" = "$n" ] && continue
    for p in "${PODS[@]}"; do [ "${POD_NODE[$p]}" = "$m" ] && { want=$((want + 1)); break; }; done
  done
  for _ in $(seq 150); do
    got=$(ip -n "$P-$n" route show proto 86 | grep -c ' via ' || true)
    [ "$got" -ge "$want" ] && break; sleep 0.2
  done
  nsenter --net="/run/netns/$P-$n" "$BIN/ternctl" status || true
  ip -n "$P-$n" route show proto 86 | sed 's/^/   /'
  echo
done

bold "Tenant isolation policy (dropped into the daemons' watched policy directory; each daemon programs its node)"
cat "$REPO/docs/examples/tenant-isolation.yaml"
cp "$REPO/docs/examples/tenant-isolation.yaml" "$WORK/policies.d/10-tenants.yaml"
for n in "${NODES[@]}"; do
  for _ in $(seq 1 100); do
    nsenter --net="/run/netns/$P-$n" "$BIN/ternctl" -o json status 2>/dev/null | jq -e '.acl.active and .acl.lastSync != null and .acl.policyDir.resources == 3' >/dev/null && break
    sleep 0.2
  done
  echo "$n: $(nsenter --net="/run/netns/$P-$n" "$BIN/ternctl" status | grep -E '^(ACL|Policy directory):' | paste -sd ';' | sed 's/;/; /')"
done

bold "Reachability (ping): green = allowed, red = denied; expected: same tenant allowed, other tenant denied"
printf '%8s' "from\\to"; for d in "${PODS[@]}"; do printf '%6s' "$d"; done; echo
bad=0
for s in "${PODS[@]}"; do
  printf '%8s' "$s"
  for d in "${PODS[@]}"; do
    if [ "$s" = "$d" ]; then printf '%6s' "-"; continue; fi
    if ip netns exec "$P-$s" ping -c1 -W1 -q "${IP[$d]}" >/dev/null 2>&1; then ok=1; else ok=0; fi
    [ "${POD_TENANT[$s]}" = "${POD_TENANT[$d]}" ] && want=1 || want=0
    [ "$ok" = "$want" ] || bad=$((bad + 1))
    if [ "$ok" = 1 ]; then printf '\033[32m%6s\033[0m' "ok"; else printf '\033[31m%6s\033[0m' "deny"; fi
  done
  echo
done
[ "$bad" = 0 ] && echo "matrix as expected" || echo "UNEXPECTED: $bad cells differ from the expectation"

if [ "$KEEP" = 1 ]; then
  bold "Kept: namespaces ${NSES[*]}; daemons ${DAEMON[*]}; datastore $DB"
  echo "Explore: ternctl --datastore $DB node list | ipam show | policy show; ip -n $P-n1 route"
  echo "Remove: kill ${DAEMON[*]}; for n in ${NSES[*]}; do ip netns del \$n; done; rm -rf $WORK"
  exit 0
fi
bold "Tearing down"
for p in "${PODS[@]}"; do
  n=${POD_NODE[$p]}
  echo '{"cniVersion":"1.0.0","name":"tern-net","type":"tern","nodename":"'"$n"'","cni_socket":"'"$WORK/$n.sock"'","ipam":{"type":"tern-ipam","pools":["10.244.0.0/16"]},"datastore":{"type":"sqlite","path":"'"$DB"'"},"log_file":"'"$WORK/cni.log"'"}' \
    | CNI_COMMAND=DEL CNI_CONTAINERID="demo-$p" CNI_NETNS="/run/netns/$P-$p" CNI_IFNAME=eth0 CNI_PATH="$BIN" CNI_ARGS="K8S_POD_NAMESPACE=${POD_TENANT[$p]};K8S_POD_NAME=$p" \
      nsenter --net="/run/netns/$P-$n" "$BIN/tern" && echo "DEL $p ok"
done
[ "$bad" = 0 ]
