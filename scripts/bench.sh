#!/usr/bin/env bash
# npm run bench [-- NAME...]: the benchmarks, each Tern side by side with its
# reference in one run (see BENCHMARKS.md). Benchmarks print; they never fail
# on a timing. Names: cni ipam bgp acl acl-admit acl-resync acl-iperf overlay scale idle (default: all;
# idle compares against the checkout in TERN_BENCH_REF when set).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
declare -A CMD=(
  [cni]="node bench/cni/add-del.mjs --pods 50 --concurrent 20"
  [ipam]="node bench/ipam/ipam.mjs"
  [bgp]="node bench/bgp/receive-announce.mjs"
  [acl]="node bench/acl/compile-apply.mjs"
  [acl-admit]="node bench/acl/admit.mjs"
  [acl-resync]="node bench/acl/resync.mjs"
  [acl-iperf]="node bench/acl/iperf.mjs"
  [overlay]="node bench/overlay/iperf.mjs --seconds 5 --rounds 3"
  [scale]="node bench/cluster/scale.mjs --nodes 30"
  [idle]="node bench/datastore/idle-cpu.mjs --cycles 2000 ${TERN_BENCH_REF:+--ref $TERN_BENCH_REF}"
)
names=("$@")
[ ${#names[@]} -eq 0 ] && names=(cni ipam bgp acl acl-admit acl-resync acl-iperf overlay scale idle)
for n in "${names[@]}"; do
  [ -n "${CMD[$n]:-}" ] || { echo "unknown benchmark $n (cni ipam bgp acl acl-admit acl-resync acl-iperf overlay scale idle)" >&2; exit 2; }
  printf '\n== %s: %s\n' "$n" "${CMD[$n]}"
  ${CMD[$n]}
done
