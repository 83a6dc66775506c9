#!/usr/bin/env bash
# Idempotent setup for a fresh Debian 12 machine as root: Debian packages,
# npm dependencies (with the native addon), and the build. Quiet when
# everything is already in place.
set -euo pipefail
cd "$(dirname "$0")/.."
# For repeated local runs: TERN_SKIP_SETUP=1 skips installs and the build.
[ "${TERN_SKIP_SETUP:-}" = 1 ] && exit 0

PKGS=(iproute2 iptables ipset iputils-ping jq python3 procps util-linux conntrack ethtool tcpdump iperf3
      containernetworking-plugins bird2 gobgpd frr etcd-server etcd-client
      golang-go golang-github-appc-cni-dev podman runc busybox-static
      prometheus libc6-dev)  # promtool: test/cli checks /metrics; libc.a: the CNI shim is linked statically
# The VLAN VM (scripts/vlan-vm.sh) installs what its backend needs (UML or QEMU) itself.

missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  # Keep package scripts from starting daemons (bird, frr, etcd) in the root namespace.
  policy=/usr/sbin/policy-rc.d
  created_policy=0
  if [ ! -e "$policy" ]; then printf '#!/bin/sh\nexit 101\n' > "$policy"; chmod +x "$policy"; created_policy=1; fi
  apt-get update -q >/dev/null
  apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
  [ "$created_policy" = 1 ] && rm -f "$policy"
fi

# npm ci when the lock file changed since the last install (or nothing is installed).
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ] \
   || [ ! -f native/build/Release/tern_netns.node ] || [ ! -f native/build/Release/tern-cni-shim ] \
   || [ native/cni-shim.c -nt native/build/Release/tern-cni-shim ] || [ native/netns.c -nt native/build/Release/tern_netns.node ]; then
  npm ci --no-audit --no-fund >&2
fi

npm run -s build >&2
