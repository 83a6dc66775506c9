#!/usr/bin/env bash
# Runs podman 4 with the CNI network backend and Tern as the network plugin.
# Called as: nsenter --net=<node netns> unshare --mount --propagation private podman-run.sh WORKDIR BINDIR
# so podman's netns, state and storage live on tmpfs in a private mount
# namespace inside the test's node namespace: nothing reaches the root
# network namespace or the machine's podman state.
set -euo pipefail
W=$1; BIN=$2
for d in /run/containers /var/lib/containers /var/lib/cni /run/netns /run/libpod; do mkdir -p "$d"; mount -t tmpfs tmpfs "$d"; done
mkdir -p "$W/net.d" "$W/rootfs/bin"
cp /bin/busybox "$W/rootfs/bin/busybox"
for c in sh sleep ping ip cat nc echo; do ln -sf busybox "$W/rootfs/bin/$c"; done
tar -C "$W/rootfs" -cf "$W/rootfs.tar" .
cat > "$W/containers.conf" <<CONF
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
[network]
network_backend = "cni"
cni_plugin_dirs = ["$BIN", "/usr/lib/cni"]
network_config_dir = "$W/net.d"
CONF
cat > "$W/net.d/tern.conflist" <<CONF
{"cniVersion": "1.0.0", "name": "tern-net", "plugins": [{"type": "tern",
  "ipam": {"type": "tern-ipam", "pools": ["10.244.0.0/16"]},
  "datastore": {"type": "sqlite", "path": "$W/tern.db"}, "log_file": "$W/cni.log"}]}
CONF
export CONTAINERS_CONF="$W/containers.conf"
P=(podman --storage-driver vfs --root /var/lib/containers/storage --runroot /run/containers/storage)
RUN=(--network tern-net --ulimit nofile=1024:1024 --ulimit nproc=1024:1024)
"${P[@]}" import -q "$W/rootfs.tar" localhost/tern-busybox:latest >/dev/null
"${P[@]}" run -d --name srv "${RUN[@]}" localhost/tern-busybox nc -ll -p 80 -e echo tern-hello >/dev/null
SRV=$("${P[@]}" inspect srv --format '{{(index .NetworkSettings.Networks "tern-net").IPAddress}}')
echo "SERVER_IP=$SRV"
"${P[@]}" run --rm --name cli "${RUN[@]}" localhost/tern-busybox sh -c \
  "echo CLIENT_ADDR=\$(ip -4 -o addr show eth0 | awk '{print \$4}'); ip route | sed 's/^/CLIENT_ROUTE=/'; ping -c 2 -W 2 $SRV >/dev/null && echo PING=ok; echo FETCH=\$(nc -w 5 $SRV 80 </dev/null)"
"${P[@]}" rm -f -t 0 srv >/dev/null
echo "LEFT_CONTAINERS=$("${P[@]}" ps -aq | wc -l)"
