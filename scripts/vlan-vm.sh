#!/bin/bash
# vlan-vm.sh - run Tern's VLAN tests inside a throw-away user-mode-linux VM.
#
# The CI kernel has no 8021q (and cannot load modules), so the 802.1Q data path
# is tested in Debian's user-mode-linux kernel (package user-mode-linux), which
# runs as an ordinary process: no KVM, no NIC, the host's / mounted read-only
# through hostfs, so the host's node, ip, tcpdump and this project's
# node_modules run unchanged inside it. Everything happens between network
# namespaces inside the guest kernel; the host's network is never touched.
#
# Usage (as root, from anywhere):
#   scripts/vlan-vm.sh                 run test/vlan/*.test.ts with vitest in the VM
#   scripts/vlan-vm.sh -- CMD ARGS...  run another command in the VM (cwd = project dir)
# Options: --timeout S (default 900), --mem MB (default 1024), --keep-log FILE
#
# Output: the command's output, then one line "N passed, N failed" (for the
# default command: vitest's counts; a VM that gives no result counts as
# "0 passed, 1 failed"). Exit status: 0 all passed, 1 failures, 2 setup
# problem, 3 the VM gave no result (crash or timeout; the console tail is shown).
#
# Inside the VM: VLANVM=1 is set (test/vlan skips without it); use
# iptables-legacy there (the UML kernel has no nf_tables ip/ip6/inet families).
set -u

SELF=$(readlink -f "${BASH_SOURCE[0]}")
PRELOAD="8021q veth bridge overlay"
PASS_ENV="PATH CI NO_COLOR FORCE_COLOR NODE_OPTIONS TERN_TEST_PREFIX"

# ---------------------------------------------------------------- guest side
# The kernel runs this file as PID 1; it calls itself back as the modprobe helper.

guest_insmod() {           # load a module and its dependencies (modules.dep order: deps last-to-first)
  local name=${1//-/_} line deps i f m
  [ -d "/sys/module/$name" ] && return 0
  line=$(grep -m1 -E "(^|/)(${name}|${name//_/-})\.ko(\.[a-z]+)?:" "$MODDIR/modules.dep") || return 1
  deps=(${line#*:})
  for ((i=${#deps[@]}-1; i>=-1; i--)); do
    if [ $i -ge 0 ]; then f=${deps[$i]}; else f=${line%%:*}; fi
    m=${f##*/}; m=${m%%.ko*}; m=${m//-/_}
    [ -d "/sys/module/$m" ] || busybox insmod "$MODDIR/$f" 2>/dev/null
  done
  [ -d "/sys/module/$name" ]
}

guest_modprobe() {         # the kernel calls: modprobe -q -- NAME (NAME may be an alias)
  MODDIR=/usr/lib/uml/modules/$(uname -r)
  local name=${!#} m ok=""
  for m in $(awk -v n="$name" '$1=="alias" && $2==n {print $3}' "$MODDIR/modules.alias" 2>/dev/null); do
    guest_insmod "$m" && ok=1
  done
  [ -n "$ok" ] || guest_insmod "$name"
}

guest_main() {
  export PATH=/usr/sbin:/usr/bin:/sbin:/bin
  # With the host's / as root, /proc and /sys show the host's until fresh ones are mounted.
  mount -t proc proc /proc
  mount -t sysfs sys /sys
  mountpoint -q /dev || mount -t devtmpfs dev /dev
  ln -sfn /proc/self/fd /dev/fd
  mkdir -p /dev/pts /dev/shm
  mount -t devpts -o newinstance,ptmxmode=0666 devpts /dev/pts
  mount -t tmpfs -o mode=1777 shm /dev/shm
  mount -t tmpfs -o mode=755 run /run
  local arg RUN=""
  for arg in $(cat /proc/cmdline); do case $arg in vlanvm.run=*) RUN=${arg#*=};; esac; done
  mkdir -p /run/vlanvm/upper /run/vlanvm/work /run/vlanvm/wd /run/netns
  cp "$RUN/params.sh" "$RUN/env.sh" /run/vlanvm/ || { echo "VLANVM-RC: 2"; busybox poweroff -f; }
  . /run/vlanvm/params.sh
  MODDIR=/usr/lib/uml/modules/$(uname -r)
  # The kernel's module helper must outlive the tmpfs mounted over /var/tmp below: copy it to /run.
  cp "$RUN/vlan-vm.sh" /run/vlanvm/vlan-vm.sh
  printf '#!/bin/bash\nexec /run/vlanvm/vlan-vm.sh --guest-modprobe "$@"\n' > /run/vlanvm/modprobe
  chmod +x /run/vlanvm/modprobe
  echo /run/vlanvm/modprobe > /proc/sys/kernel/modprobe
  local m; for m in $PRELOAD; do guest_insmod "$m" || echo "vlan-vm: cannot load $m"; done
  # The project dir gets a copy-on-write overlay (vitest writes caches); writes stay in the VM.
  mount -t overlay overlay -o "lowerdir=$P_WORKDIR,upperdir=/run/vlanvm/upper,workdir=/run/vlanvm/work" /run/vlanvm/wd \
    || { echo "vlan-vm: overlay mount failed"; echo "VLANVM-RC: 2"; busybox poweroff -f; }
  for d in /tmp /var/tmp /root; do mount -t tmpfs -o mode=1777 tmp "$d"; done
  # The project may live under one of those (CI clones anywhere): recreate its mount point.
  mkdir -p "$P_WORKDIR"
  mount --move /run/vlanvm/wd "$P_WORKDIR"
  hostname vlanvm
  ip link set lo up
  echo "VLANVM-GUEST: kernel $(uname -r), booted in $(cut -d' ' -f1 /proc/uptime)s"
  local rc
  ( set -a; . /run/vlanvm/env.sh; set +a; export HOME=/root VLANVM=1; cd "$P_WORKDIR" && exec "${P_CMD[@]}" ) </dev/null
  rc=$?
  echo "VLANVM-RC: $rc (uptime $(cut -d' ' -f1 /proc/uptime)s)"
  sync
  busybox poweroff -f
}

# ----------------------------------------------------------------- host side

die() { echo "vlan-vm: $*" >&2; echo "0 passed, 1 failed"; exit 2; }

# The default command: vitest on test/vlan, then the counts as one line.
default_cmd() {
  cat <<'EOF'
# Piped, so vitest sees no TTY (the console is one) and prints plain lines.
node node_modules/vitest/vitest.mjs run test/vlan --no-file-parallelism --testTimeout=300000 --hookTimeout=300000 --reporter=default --reporter=json --outputFile.json=/tmp/vlan-vm.json 2>&1 | cat
rc=${PIPESTATUS[0]}
node -e '
  let p = 0, f = 1;
  try { const r = require("/tmp/vlan-vm.json"); p = r.numPassedTests; f = r.numFailedTests + (r.numTotalTestSuites && r.success === false && r.numFailedTests === 0 ? 1 : 0); } catch {}
  console.log(`VLANVM-COUNTS: ${p} passed, ${f} failed`);'
exit $rc
EOF
}

UML_PID=""
stop_vm() {                # end the VM we started, by its recorded PID tree (UML calls setsid())
  [ -n "$UML_PID" ] || return 0
  local p tree=("$UML_PID") i
  tree+=($(ps -o pid= --ppid "$UML_PID" 2>/dev/null))
  kill -TERM "$UML_PID" 2>/dev/null
  for ((i=0; i<50; i++)); do kill -0 "$UML_PID" 2>/dev/null || break; sleep 0.2; done
  for p in "${tree[@]}"; do kill -KILL "$p" 2>/dev/null; done
  UML_PID=""
}

host_main() {
  local TIMEOUT=900 MEM=1024 KEEPLOG="" CMD=()
  while [ $# -gt 0 ]; do
    case $1 in
      --timeout) TIMEOUT=$2; shift 2;;
      --mem) MEM=$2; shift 2;;
      --keep-log) KEEPLOG=$2; shift 2;;
      --) shift; CMD=("$@"); break;;
      -h|--help) sed -n '2,/^set -u/p' "$SELF" | sed 's/^# \{0,1\}//;/^set -u/d'; exit 0;;
      *) die "unknown option $1";;
    esac
  done
  [ "$(id -u)" = 0 ] || die "must run as root (the VM's root is the host's /, read-only)"
  command -v linux.uml >/dev/null || die "linux.uml missing: apt-get install --no-install-recommends user-mode-linux"
  [ -x /bin/busybox ] || die "busybox missing: apt-get install --no-install-recommends busybox-static"
  local WORKDIR; WORKDIR=$(cd "$(dirname "$SELF")/.." && pwd)
  [ ${#CMD[@]} -gt 0 ] || CMD=(bash -c "$(default_cmd)")

  RUN=$(mktemp -d /var/tmp/vlan-vm.XXXXXX) || die "mktemp failed"
  trap 'stop_vm; rm -rf "$RUN"' EXIT
  trap 'exit 130' INT TERM HUP
  cp "$SELF" "$RUN/vlan-vm.sh"; chmod 755 "$RUN" "$RUN/vlan-vm.sh"
  { printf 'P_WORKDIR=%q\n' "$WORKDIR"; printf 'P_CMD=('; printf '%q ' "${CMD[@]}"; printf ')\n'; } > "$RUN/params.sh"
  : > "$RUN/env.sh"
  local v; for v in $PASS_ENV; do [ -n "${!v+x}" ] && printf '%s=%q\n' "$v" "${!v}" >> "$RUN/env.sh"; done

  # UML backs guest RAM with a file in TMPDIR: tmpfs if it has room.
  local tmp=/dev/shm
  [ "$(df -Pk /dev/shm 2>/dev/null | awk 'NR==2{print $4}')" -gt $((MEM*1024)) ] 2>/dev/null || tmp=/var/tmp
  local LOG=$RUN/console.log t0=$SECONDS
  env TMPDIR=$tmp timeout -k 10 "$TIMEOUT" linux.uml mem=${MEM}M root=/dev/root rootfstype=hostfs rootflags=/ ro \
    init="$RUN/vlan-vm.sh" "vlanvm.run=$RUN" con=null con0=null,fd:1 quiet </dev/null > "$LOG" 2>&1 &
  UML_PID=$!
  # Show the guest's userspace output as it comes (the kernel's boot log stays in the log file).
  tail -n +1 -f --pid=$UML_PID "$LOG" 2>/dev/null | tr -d '\r' | sed -un '/^VLANVM-GUEST/,$p' | grep --line-buffered -avE '^\[ *[0-9]+\.[0-9]+\] |VLANVM-COUNTS|^reboot: ' &
  local tailer=$!
  wait $UML_PID; local vmrc=$?
  UML_PID=""
  wait $tailer 2>/dev/null
  [ -n "$KEEPLOG" ] && cp "$LOG" "$KEEPLOG"
  local rc counts secs=$((SECONDS - t0))
  rc=$(tr -d '\r' < "$LOG" | sed -n 's/^VLANVM-RC: \([0-9]*\).*/\1/p' | tail -1)
  counts=$(tr -d '\r' < "$LOG" | sed -n 's/.*VLANVM-COUNTS: //p' | tail -1)
  if [ -z "$rc" ]; then
    echo "vlan-vm: the VM gave no result (exit $vmrc after ${secs}s; 124/137 = timeout). Console tail:" >&2
    tr -d '\r' < "$LOG" | tail -30 >&2
    echo "0 passed, 1 failed"
    exit 3
  fi
  echo "vlan-vm: VM finished in ${secs}s, command exit $rc" >&2
  if [ -n "$counts" ]; then echo "$counts"
  elif [ "$rc" = 0 ]; then echo "1 passed, 0 failed"
  else echo "0 passed, 1 failed"; fi
  [ "$rc" = 0 ] && exit 0 || exit 1
}

case ${1:-} in
  --guest-modprobe) shift; guest_modprobe "$@"; exit $?;;
esac
if [ $$ = 1 ]; then guest_main; exit 0; fi
host_main "$@"
