#!/bin/bash
# vlan-vm.sh - run Tern's VLAN tests inside a throw-away VM whose kernel has 8021q.
#
# The CI kernel has no 8021q (and cannot load modules), so the 802.1Q data path
# is tested in a Debian kernel booted as a VM. Two backends, both with the
# host's / as the guest's root, READ-ONLY, so the host's node, ip, tcpdump and
# this project's node_modules run unchanged inside; the VM has no NIC and
# everything happens between network namespaces inside the guest kernel:
#
#   uml   Debian's user-mode-linux (a Linux kernel run as an ordinary process,
#         root over hostfs). Fast (boot ~4 s) but it panics at boot on some
#         CPUs (seen on CPUs with AMX: fatal_sigsegv while it executes init).
#   qemu  qemu-system-x86_64 with TCG (KVM only where the CPU shows vmx/svm and
#         /dev/kvm is writable), Debian's linux-image-amd64 kernel unpacked
#         (never installed) into $TERN_VLANVM_CACHE, root over 9p. Works on
#         every CPU; slower (node starts in ~2 s under TCG).
#
# Backend choice: TERN_VLANVM_BACKEND=uml|qemu forces one. Otherwise a quick UML
# boot probe (bash + node as the guest's init) decides: UML where it boots,
# QEMU where it does not. What each backend needs is installed from Debian,
# idempotently.
#
# Usage (as root, from anywhere):
#   scripts/vlan-vm.sh                 run test/vlan/*.test.ts with vitest in the VM
#   scripts/vlan-vm.sh -- CMD ARGS...  run another command in the VM (cwd = project dir)
# Options: --timeout S (default 900), --mem MB (default: uml 1024, qemu 2048),
#          --keep-log FILE, --probe (only report which backend boots; exit 0 if one does)
#
# Output: the command's output, then one line "N passed, N failed" (for the
# default command: vitest's counts; a VM that gives no result counts as
# "0 passed, 1 failed"). Exit status: 0 all passed, 1 failures, 2 setup
# problem, 3 no backend booted or the VM gave no result (crash or timeout; the
# console tail is shown). Never a silent skip.
#
# Inside the VM: VLANVM=1 and VLANVM_BACKEND=uml|qemu are set (test/vlan skips
# without VLANVM); use iptables-legacy there (UML's kernel has no nf_tables
# ip/ip6/inet families; QEMU's has both).
set -u

SELF=$(readlink -f "${BASH_SOURCE[0]}")
PRELOAD="8021q veth bridge overlay"
PASS_ENV="PATH CI NO_COLOR FORCE_COLOR NODE_OPTIONS TERN_TEST_PREFIX"
CACHE=${TERN_VLANVM_CACHE:-/var/cache/tern-vlanvm}

# ---------------------------------------------------------------- guest side
# The kernel runs this file as PID 1 (QEMU: after the initramfs switched to the
# 9p root); it calls itself back as the modprobe helper.

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
  MODDIR=$(cat /run/vlanvm/moddir 2>/dev/null) || exit 1
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
  local arg RUN="" MODP="" PROBE=""
  for arg in $(cat /proc/cmdline); do
    case $arg in vlanvm.run=*) RUN=${arg#*=};; vlanvm.moddir=*) MODP=${arg#*=};; vlanvm.probe=*) PROBE=1;; esac
  done
  if [ -n "$PROBE" ]; then   # the backend probe: can this kernel run our init and node at all?
    node -e 'process.stdout.write("VLANVM-PROBE: ok\n")'
    busybox poweroff -f
  fi
  mkdir -p /run/vlanvm/upper /run/vlanvm/work /run/vlanvm/wd /run/netns
  cp "$RUN/params.sh" "$RUN/env.sh" /run/vlanvm/ || { echo "VLANVM-RC: 2"; busybox poweroff -f; }
  . /run/vlanvm/params.sh
  MODDIR=${MODP:-/usr/lib/uml/modules/$(uname -r)}
  echo "$MODDIR" > /run/vlanvm/moddir
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
  echo "VLANVM-GUEST: $P_BACKEND kernel $(uname -r), booted in $(cut -d' ' -f1 /proc/uptime)s"
  local rc
  ( set -a; . /run/vlanvm/env.sh; set +a; export HOME=/root VLANVM=1 VLANVM_BACKEND=$P_BACKEND
    cd "$P_WORKDIR" && exec "${P_CMD[@]}" ) </dev/null
  rc=$?
  echo "VLANVM-RC: $rc (uptime $(cut -d' ' -f1 /proc/uptime)s)"
  sync
  busybox poweroff -f
}

# ----------------------------------------------------------------- host side

die() { echo "vlan-vm: $*" >&2; echo "0 passed, 1 failed"; exit 2; }
say() { echo "vlan-vm: $*" >&2; }

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

apt_install() {            # idempotent: only what is missing, one 'apt-get update' retry for stale lists
  local missing=() p
  for p in "$@"; do dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p"); done
  [ ${#missing[@]} -eq 0 ] && return 0
  say "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get -o DPkg::Lock::Timeout=300 install -y -q --no-install-recommends "${missing[@]}" >/dev/null 2>&1 \
    || { apt-get -q update >/dev/null 2>&1 && apt-get -o DPkg::Lock::Timeout=300 install -y -q --no-install-recommends "${missing[@]}" >/dev/null; } \
    || die "apt-get install ${missing[*]} failed"
}

prepare_uml() { apt_install user-mode-linux busybox-static; }

# QEMU needs a kernel with 9p, virtio and 8021q modules: Debian's generic one,
# downloaded as a .deb and unpacked into the cache (never installed), with
# modules.dep written by busybox depmod and a small busybox initramfs.
prepare_qemu() {
  apt_install qemu-system-x86 busybox-static
  [ -f "$CACHE/ready" ] && [ -f "$CACHE/vmlinuz" ] && [ -f "$CACHE/initrd.cpio" ] && return 0
  local dl pkg deb ver root mdir
  mkdir -p "$CACHE" || die "cannot create $CACHE"
  dl=$(mktemp -d "$CACHE/dl.XXXXXX")
  pkg=$(apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/{print $2; exit}')
  if [ -z "$pkg" ] || ! (cd "$dl" && apt-get download -q "$pkg" >/dev/null 2>&1); then
    apt-get -q update >/dev/null 2>&1
    pkg=$(apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/{print $2; exit}')
    [ -n "$pkg" ] && (cd "$dl" && apt-get download -q "$pkg" >/dev/null 2>&1) || { rm -rf "$dl"; die "cannot download linux-image-amd64's kernel package"; }
  fi
  say "unpacking $pkg into $CACHE (not installed)"
  deb=$(ls "$dl"/*.deb)
  root=$CACHE/root; rm -rf "$root"; mkdir -p "$root"
  dpkg-deb --fsys-tarfile "$deb" | tar -x -C "$root" --wildcards \
      '*/boot/vmlinuz-*' '*/modules/*/modules.builtin' '*/modules/*/modules.order' \
      '*/modules/*/kernel/net/*' '*/modules/*/kernel/drivers/net/*' '*/modules/*/kernel/drivers/virtio/*' \
      '*/modules/*/kernel/fs/9p/*' '*/modules/*/kernel/fs/netfs/*' '*/modules/*/kernel/fs/fscache/*' \
      '*/modules/*/kernel/fs/overlayfs/*' '*/modules/*/kernel/lib/*' '*/modules/*/kernel/crypto/*' \
    || { rm -rf "$dl"; die "unpacking $deb failed"; }
  rm -rf "$dl"
  mdir=$(ls -d "$root"/lib/modules/* "$root"/usr/lib/modules/* 2>/dev/null | head -1)
  [ -n "$mdir" ] || die "no modules in $pkg"
  ver=${mdir##*/}
  if [ "$mdir" != "$root/lib/modules/$ver" ]; then mkdir -p "$root/lib/modules"; mv "$mdir" "$root/lib/modules/"; fi
  rm -rf "$root"/lib/modules/*/kernel/drivers/net/{wireless,ethernet,usb,can,wwan,ieee802154} 2>/dev/null
  cp "$root"/boot/vmlinuz-* "$CACHE/vmlinuz" || die "no vmlinuz in $pkg"
  busybox depmod -b "$root" "$ver" || die "depmod failed"
  echo "$ver" > "$CACHE/kver"
  build_initrd "$root/lib/modules/$ver" "$CACHE/initrd.cpio" virtio_pci 9pnet_virtio 9p || die "initramfs build failed"
  touch "$CACHE/ready"
}

build_initrd() {           # busybox + the modules that mount the host's / over 9p, then switch_root to our init
  local moddir=$1 out=$2; shift 2
  local r m line deps i f
  r=$(mktemp -d) || return 1
  mkdir -p "$r"/{bin,proc,sys,dev,newroot,mods}
  cp /bin/busybox "$r/bin/busybox"; ln -s busybox "$r/bin/sh"
  : > "$r/mods/order"
  for m in "$@"; do
    line=$(grep -E "(^|/)$m\.ko:" "$moddir/modules.dep") || { echo "no module $m" >&2; rm -rf "$r"; return 1; }
    deps=(${line#*:})
    for ((i=${#deps[@]}-1; i>=-1; i--)); do
      if [ $i -ge 0 ]; then f=${deps[$i]}; else f=${line%%:*}; fi
      grep -qxF "$f" "$r/mods/order" || { cp "$moddir/$f" "$r/mods/"; echo "$f" >> "$r/mods/order"; }
    done
  done
  cat > "$r/init" <<'EOF'
#!/bin/sh
B=/bin/busybox
$B mount -t proc proc /proc; $B mount -t sysfs sys /sys; $B mount -t devtmpfs dev /dev
for m in $($B cat /mods/order); do $B insmod /mods/$($B basename $m) || echo "initramfs: insmod $m failed"; done
GI=/bin/sh; for a in $($B cat /proc/cmdline); do case $a in vlanvm.init=*) GI=${a#vlanvm.init=};; esac; done
$B mount -t 9p -o trans=virtio,version=9p2000.L,msize=512000,cache=loose,ro hostroot /newroot \
  || { echo "initramfs: 9p mount of the host root failed"; $B poweroff -f; }
$B umount /proc /sys; $B mount --move /dev /newroot/dev
exec $B switch_root /newroot $GI
EOF
  chmod +x "$r/init"
  (cd "$r" && find . | busybox cpio -o -H newc 2>/dev/null) > "$out.tmp" && mv "$out.tmp" "$out"
  local st=$?; rm -rf "$r"; return $st
}

VM_PID=""
stop_vm() {                # end the VM we started, by its recorded PID tree (UML calls setsid())
  [ -n "$VM_PID" ] || return 0
  local p tree=("$VM_PID") i
  tree+=($(ps -o pid= --ppid "$VM_PID" 2>/dev/null))
  for p in "${tree[@]:1}"; do tree+=($(ps -o pid= --ppid "$p" 2>/dev/null)); done
  kill -TERM "$VM_PID" 2>/dev/null
  for ((i=0; i<50; i++)); do kill -0 "$VM_PID" 2>/dev/null || break; sleep 0.2; done
  for p in "${tree[@]}"; do kill -KILL "$p" 2>/dev/null; done
  VM_PID=""
}

# vm_argv BACKEND MEM EXTRA-CMDLINE...: the command that boots the VM with this file as init.
vm_argv() {
  local backend=$1 mem=$2; shift 2
  if [ "$backend" = uml ]; then
    # UML backs guest RAM with a file in TMPDIR: tmpfs if it has room.
    local tmp=/dev/shm
    [ "$(df -Pk /dev/shm 2>/dev/null | awk 'NR==2{print $4}')" -gt $((mem*1024)) ] 2>/dev/null || tmp=/var/tmp
    VM=(env TMPDIR=$tmp linux.uml mem=${mem}M root=/dev/root rootfstype=hostfs rootflags=/ ro
        init="$RUN/vlan-vm.sh" con=null con0=null,fd:1 quiet "$@")
  else
    local accel=${TERN_VLANVM_QEMU_ACCEL:-tcg} cpu=max
    if [ -z "${TERN_VLANVM_QEMU_ACCEL:-}" ] && [ -w /dev/kvm ] && grep -qwE 'vmx|svm' /proc/cpuinfo; then accel=kvm; fi
    [ "$accel" = kvm ] && cpu=host
    QEMU_ACCEL=$accel
    VM=(qemu-system-x86_64 -accel "$accel" -cpu "$cpu" -m "$mem" -smp 2 -nodefaults -no-user-config
        -display none -serial stdio -monitor none -no-reboot -net none
        -kernel "$CACHE/vmlinuz" -initrd "$CACHE/initrd.cpio"
        -virtfs local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap
        -append "console=ttyS0 panic=-1 quiet vlanvm.init=$RUN/vlan-vm.sh vlanvm.moddir=$CACHE/root/lib/modules/$(cat "$CACHE/kver") $*")
  fi
}

# probe_uml: boot UML with a trivial init (bash, then node). 0 if it printed the probe line.
probe_uml() {
  prepare_uml
  local log=$RUN/probe.log t0=$SECONDS
  vm_argv uml 512 vlanvm.probe=1
  timeout -k 5 60 "${VM[@]}" </dev/null > "$log" 2>&1 &
  VM_PID=$!
  wait $VM_PID; VM_PID=""
  if tr -d '\r' < "$log" | grep -q '^VLANVM-PROBE: ok'; then
    say "UML boot probe: ok in $((SECONDS - t0))s"
    return 0
  fi
  say "UML boot probe: no result after $((SECONDS - t0))s; console tail:"
  tr -d '\r' < "$log" | grep -av '^\s*$' | tail -8 | sed 's/^/    /' >&2
  return 1
}

host_main() {
  local TIMEOUT=900 MEM="" KEEPLOG="" CMD=() PROBE_ONLY=0
  while [ $# -gt 0 ]; do
    case $1 in
      --timeout) TIMEOUT=$2; shift 2;;
      --mem) MEM=$2; shift 2;;
      --keep-log) KEEPLOG=$2; shift 2;;
      --probe) PROBE_ONLY=1; shift;;
      --) shift; CMD=("$@"); break;;
      -h|--help) sed -n '2,/^set -u/p' "$SELF" | sed 's/^# \{0,1\}//;/^set -u/d'; exit 0;;
      *) die "unknown option $1";;
    esac
  done
  [ "$(id -u)" = 0 ] || die "must run as root (the VM's root is the host's /, read-only)"
  local WORKDIR; WORKDIR=$(cd "$(dirname "$SELF")/.." && pwd)
  [ ${#CMD[@]} -gt 0 ] || CMD=(bash -c "$(default_cmd)")

  RUN=$(mktemp -d /var/tmp/vlan-vm.XXXXXX) || die "mktemp failed"
  trap 'stop_vm; rm -rf "$RUN"' EXIT
  trap 'exit 130' INT TERM HUP
  cp "$SELF" "$RUN/vlan-vm.sh"; chmod 755 "$RUN" "$RUN/vlan-vm.sh"

  local BACKEND=${TERN_VLANVM_BACKEND:-} why
  case $BACKEND in
    uml|qemu) why="forced by TERN_VLANVM_BACKEND";;
    "") if probe_uml; then BACKEND=uml; why="UML boots here"; else BACKEND=qemu; why="UML does not boot here"; fi;;
    *) die "TERN_VLANVM_BACKEND must be uml or qemu, not '$BACKEND'";;
  esac
  if [ "$BACKEND" = uml ]; then prepare_uml; else prepare_qemu; fi
  [ -n "$MEM" ] || { [ "$BACKEND" = uml ] && MEM=1024 || MEM=2048; }
  QEMU_ACCEL=""
  vm_argv "$BACKEND" "$MEM" "vlanvm.run=$RUN"
  say "backend $BACKEND${QEMU_ACCEL:+ ($QEMU_ACCEL)}: $why"
  if [ "$PROBE_ONLY" = 1 ]; then echo "VLANVM-BACKEND: $BACKEND"; exit 0; fi

  { printf 'P_BACKEND=%q\nP_WORKDIR=%q\n' "$BACKEND" "$WORKDIR"; printf 'P_CMD=('; printf '%q ' "${CMD[@]}"; printf ')\n'; } > "$RUN/params.sh"
  : > "$RUN/env.sh"
  local v; for v in $PASS_ENV; do [ -n "${!v+x}" ] && printf '%s=%q\n' "$v" "${!v}" >> "$RUN/env.sh"; done

  local LOG=$RUN/console.log t0=$SECONDS
  timeout -k 10 "$TIMEOUT" "${VM[@]}" </dev/null > "$LOG" 2>&1 &
  VM_PID=$!
  # Show the guest's userspace output as it comes (the kernel's boot log stays in the log file).
  tail -n +1 -f --pid=$VM_PID "$LOG" 2>/dev/null | sed -un -e 's/\r//g' -e '/^VLANVM-GUEST/,$p' | grep --line-buffered -avE '^\[ *[0-9]+\.[0-9]+\] |VLANVM-COUNTS|^reboot: ' &
  local tailer=$!
  wait $VM_PID; local vmrc=$?
  VM_PID=""
  wait $tailer 2>/dev/null
  [ -n "$KEEPLOG" ] && cp "$LOG" "$KEEPLOG"
  local rc counts secs=$((SECONDS - t0))
  rc=$(tr -d '\r' < "$LOG" | sed -n 's/^VLANVM-RC: \([0-9]*\).*/\1/p' | tail -1)
  counts=$(tr -d '\r' < "$LOG" | sed -n 's/.*VLANVM-COUNTS: //p' | tail -1)
  if [ -z "$rc" ]; then
    say "the $BACKEND VM gave no result (exit $vmrc after ${secs}s; 124/137 = timeout). Console tail:"
    tr -d '\r' < "$LOG" | tail -30 >&2
    echo "0 passed, 1 failed"
    exit 3
  fi
  say "backend $BACKEND${QEMU_ACCEL:+ ($QEMU_ACCEL)}: VM finished in ${secs}s, command exit $rc"
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
