#!/usr/bin/env bash
# Starts, checks and stops the HPTHammer lab host (built by Guests/lab/build.sh): an emulated
# POWER9 (QEMU >= 8.1, -M powernv9, TCG) running Debian's kernel with kvm-hv, libvirtd and ssh.
#
#   run.sh boot [--host-kernel VMLINUX --host-modules DIR]
#                    build (cached), start L0, wait until ssh answers; prints the access lines.
#                    With --host-kernel/--host-modules (or HPTHAMMER_LAB_HOST_KERNEL/_MODULES) the
#                    lab boots that kernel (see build.sh). A lab already running the image asked
#                    for is kept; one running another image (kernel, initramfs, QEMU, -m/-smp/-M)
#                    is stopped and booted again
#   run.sh check     over ssh: kvm-hv loaded, /dev/kvm, libvirtd; from here: virsh capabilities
#                    over both URIs list domain type kvm for ppc64(le)
#   run.sh l2test [N] boot an HPT guest (L2) through libvirt (type kvm) in the lab, do N rounds of
#                    resizes 22/23/24/23 through its agent, and count the kvm-hv resize ioctls
#                    with kprobes in the lab's kernel (default N=3; HPTHAMMER_LAB_L2_URI=ssh
#                    drives libvirt over qemu+ssh instead of qemu+tcp; HPTHAMMER_LAB_L2_VOF=1
#                    boots L2 with x-vof=on instead of SLOF; HPTHAMMER_LAB_L2_VCPUS=2 gives L2
#                    two vCPUs: with one, the vCPU thread that makes the resize hcalls is the
#                    only one, so no page fault of that guest can overlap a commit)
#   run.sh ssh [CMD] a shell (or CMD) on the lab host
#   run.sh reset     QMP system_reset (the power switch); then `run.sh wait`
#   run.sh wait      wait until ssh answers (after a reset)
#   run.sh stop      QMP quit (then SIGTERM after 20 s); idempotent
#   run.sh status    running or not, and the access lines
#   run.sh env       the access lines only (KEY=value, for the harness)
# State: $HPTHAMMER_LAB_CACHE/run/ (console.log from the first byte, console.sock, qmp.sock,
# qemu.pid, ssh_config, known_hosts, boot.times, image: the running image's key and kernel
# release). Ports (127.0.0.1 on this machine):
# HPTHAMMER_LAB_SSH_PORT (10022 -> lab:22), HPTHAMMER_LAB_LIBVIRT_PORT (10509 -> lab:16509).
# Other knobs: HPTHAMMER_LAB_MEM (4G), HPTHAMMER_LAB_SMP (2), HPTHAMMER_LAB_MACHINE (powernv9),
# HPTHAMMER_LAB_BOOT_TIMEOUT (900 s).
# Exit codes: 0 ok, 1 a check failed, 125 something is missing (the message says what to do).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
cache=${HPTHAMMER_LAB_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/hpthammer/lab}
run="$cache/run"
sshport=${HPTHAMMER_LAB_SSH_PORT:-10022}
lvport=${HPTHAMMER_LAB_LIBVIRT_PORT:-10509}
log() { echo "lab/run.sh: $*" >&2; }
die() { echo "lab/run.sh: error: $1" >&2; exit "${2:-1}"; }
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN{printf "%.1f", b-a}'; }
mkdir -p "$run"

tcp_uri="qemu+tcp://127.0.0.1:$lvport/system"
key="$cache/keys/id_ed25519"
ssh_uri="qemu+ssh://root@127.0.0.1:$sshport/system?keyfile=$key&no_verify=1&no_tty=1"
sshcmd=(ssh -F "$run/ssh_config" hpthammer-lab)

running() { [ -s "$run/qemu.pid" ] && kill -0 "$(cat "$run/qemu.pid")" 2>/dev/null; }

qmp() { # qmp COMMAND: one QMP command on qmp.sock; prints the answer
  python3 - "$run/qmp.sock" "$1" <<'PY'
import json, socket, sys
s = socket.socket(socket.AF_UNIX)
s.settimeout(10)
s.connect(sys.argv[1])
f = s.makefile("rw")
json.loads(f.readline())  # greeting
for cmd in ("qmp_capabilities", sys.argv[2]):
    f.write(json.dumps({"execute": cmd}) + "\n"); f.flush()
    while True:
        line = f.readline()
        if not line:
            break
        m = json.loads(line)
        if "return" in m or "error" in m:
            break
print(json.dumps(m))
PY
}

image_key() { # image_key QEMU KERNEL INITRD MACHINE SMP MEM
  printf '%s\n' "$@" | sha256sum | cut -c1-16
}
running_args() { # the running L0's QEMU, -kernel, -initrd, -M, -smp, -m (from /proc/PID/cmdline)
  python3 - "/proc/$(cat "$run/qemu.pid")/cmdline" <<'PY' 2>/dev/null
import sys
a = open(sys.argv[1], "rb").read().decode(errors="replace").split("\0")
opt = lambda o: a[a.index(o) + 1] if o in a[:-1] else ""
print("\n".join([a[0], opt("-kernel"), opt("-initrd"), opt("-M"), opt("-smp"), opt("-m")]))
PY
}
running_key() { # the running L0's image key: from its command line, else from run/image
  local args
  if args=$(running_args) && [ -n "$args" ]; then
    # shellcheck disable=SC2046
    (IFS=$'\n'; image_key $args)
  else sed -n 's/^key=//p' "$run/image" 2>/dev/null || true; fi
}
running_desc() { # what the running L0 boots, for messages
  local k i r
  k=$(running_args | sed -n 2p); i=$(running_args | sed -n 3p)
  r=$(sed -n 's/^release=//p' "$run/image" 2>/dev/null || true)
  echo "kernel ${r:-?} ${k:-?}, initrd ${i##*/}"
}

envlines() {
  echo "HPTHAMMER_LAB_CONSOLE_LOG=$run/console.log"
  echo "HPTHAMMER_LAB_CONSOLE_SOCK=$run/console.sock"
  echo "HPTHAMMER_LAB_QMP=$run/qmp.sock"
  echo "HPTHAMMER_LAB_SSH=ssh -F $run/ssh_config hpthammer-lab"
  echo "HPTHAMMER_LAB_SSH_PORT=$sshport"
  echo "HPTHAMMER_LAB_KEY=$key"
  echo "HPTHAMMER_LAB_URI=$tcp_uri"
  echo "HPTHAMMER_LAB_SSH_URI=$ssh_uri"
  echo "HPTHAMMER_LAB_GUEST_KERNEL=/var/lib/hpthammer/guest/vmlinux"
  echo "HPTHAMMER_LAB_GUEST_INITRD=/var/lib/hpthammer/guest/initrd.cpio.gz"
  sed -n 's/^release=/HPTHAMMER_LAB_KERNEL_RELEASE=/p' "$run/image" 2>/dev/null || true
}

wait_ssh() { # wait_ssh START: until ssh answers; prints the seconds since START
  local start=$1 limit=${HPTHAMMER_LAB_BOOT_TIMEOUT:-900} stall=${HPTHAMMER_LAB_BOOT_STALL:-180}
  local size=0 grew=$start
  while :; do
    running || die "L0 QEMU exited during boot; see $run/console.log and $run/qemu.err"
    if timeout 20 "${sshcmd[@]}" true 2>/dev/null; then break; fi
    grep -q 'Kernel panic' "$run/console.log" 2>/dev/null && die "the lab kernel panicked; see $run/console.log"
    [ "$(since "$start" | cut -d. -f1)" -lt "$limit" ] ||
      die "no ssh answer within $limit s; see $run/console.log (HPTHAMMER_LAB_BOOT_TIMEOUT)"
    # A boot whose console says nothing for $stall s has hung (seen: TCG's powernv9 stopping
    # after usb-storage, QEMU idle): stop it rather than wait out the whole limit.
    local now_size
    now_size=$(stat -c %s "$run/console.log" 2>/dev/null || echo 0)
    if [ "$now_size" != "$size" ]; then size=$now_size; grew=$(now); fi
    if [ "$(since "$grew" | cut -d. -f1)" -ge "$stall" ]; then
      log "the boot stalled (no console output for $stall s) at: $(tail -1 "$run/console.log" | tr -d '\r')"
      die "the lab's boot stalled for $stall s (HPTHAMMER_LAB_BOOT_STALL); run.sh boot again"
    fi
    sleep 2
  done
  since "$start"
}

cmd_boot() {
  local out ikey
  out=$("$here/build.sh" "$@") || exit $?
  eval "$(grep '^HPTHAMMER_LAB_[A-Z_]*=' <<<"$out" | sed 's/=\(.*\)/="\1"/')"
  # The image's key: what L0 runs (QEMU binary, -kernel, -initrd, -M, -smp, -m). Recorded in
  # run/image at boot; for a running lab it is read back from its QEMU's command line
  # (/proc/PID/cmdline: right even for a lab another tool or an older run.sh started), else from
  # run/image. A lab running another image is stopped and booted again.
  ikey=$(image_key "$HPTHAMMER_LAB_QEMU" "$HPTHAMMER_LAB_KERNEL" "$HPTHAMMER_LAB_INITRD" \
    "${HPTHAMMER_LAB_MACHINE:-powernv9}" "${HPTHAMMER_LAB_SMP:-2}" "${HPTHAMMER_LAB_MEM:-4G}")
  if running; then
    local have
    have=$(running_key)
    # A kernel that already reported something is no clean host for the next run: a WARNING
    # taints it, and lockdep turns itself off after its first report (seen in the bug
    # benchmark: B8 found in the run that booted the lab, missed in the two that reused it).
    local dirty=
    if [ "$have" = "$ikey" ]; then
      dirty=$(timeout 30 "${sshcmd[@]}" 'echo "tainted=$(cat /proc/sys/kernel/tainted)"; sed -n "s/^ *debug_locks: *0$/lockdep=off/p" /proc/lockdep_stats 2>/dev/null' 2>/dev/null ||
        echo "ssh-failed")
      dirty=$(grep -v '^tainted=0$' <<<"$dirty" || true)
    fi
    if [ "$have" = "$ikey" ] && [ -z "$dirty" ]; then
      log "already running (pid $(cat "$run/qemu.pid")) with this image ($ikey, kernel $HPTHAMMER_LAB_KERNEL_RELEASE)"
      envlines; return 0
    fi
    [ -z "$dirty" ] || log "the running lab's kernel is not clean ($(echo $dirty)): booting it again"
    [ -n "$dirty" ] || log "running another image (${have:-unknown}: $(running_desc)); asked for $ikey" \
      "(kernel $HPTHAMMER_LAB_KERNEL_RELEASE, $HPTHAMMER_LAB_KERNEL): stopping it"
    cmd_stop
  fi
  for p in "$sshport" "$lvport"; do
    python3 -c "import socket,sys; s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(('127.0.0.1', int(sys.argv[1])))" "$p" 2>/dev/null ||
      die "port 127.0.0.1:$p is taken (another lab? run.sh stop, or set HPTHAMMER_LAB_SSH_PORT / HPTHAMMER_LAB_LIBVIRT_PORT)" 125
  done
  command -v ssh >/dev/null || die "ssh not found. Install it: apt-get install -y openssh-client" 125
  echo "[127.0.0.1]:$sshport $(cut -d' ' -f1,2 "$HPTHAMMER_LAB_HOSTKEY_PUB")" >"$run/known_hosts"
  cat >"$run/ssh_config" <<EOF
Host hpthammer-lab
  HostName 127.0.0.1
  Port $sshport
  User root
  IdentityFile $HPTHAMMER_LAB_KEY
  IdentitiesOnly yes
  UserKnownHostsFile $run/known_hosts
  StrictHostKeyChecking yes
  BatchMode yes
  ConnectTimeout 10
  ServerAliveInterval 15
  LogLevel ERROR
EOF
  rm -f "$run"/{console.log,console.sock,qmp.sock,qemu.pid,qemu.err,boot.times,image}
  printf 'key=%s\nrelease=%s\nkernel=%s\ninitrd=%s\n' "$ikey" "$HPTHAMMER_LAB_KERNEL_RELEASE" \
    "$HPTHAMMER_LAB_KERNEL" "$HPTHAMMER_LAB_INITRD" >"$run/image"
  local start
  start=$(now)
  log "starting L0: $HPTHAMMER_LAB_QEMU -M ${HPTHAMMER_LAB_MACHINE:-powernv9} (console: $run/console.log)"
  # QEMU_MODULE_DIR: keep it from loading the system QEMU's modules ("Only modules from the same build").
  QEMU_MODULE_DIR="$HPTHAMMER_LAB_QEMU_DATADIR/../../lib/x86_64-linux-gnu/qemu" \
  LD_LIBRARY_PATH=$HPTHAMMER_LAB_QEMU_LIBS "$HPTHAMMER_LAB_QEMU" -L "$HPTHAMMER_LAB_QEMU_DATADIR" \
    -M "${HPTHAMMER_LAB_MACHINE:-powernv9}" -accel tcg,thread=multi \
    -smp "${HPTHAMMER_LAB_SMP:-2}" -m "${HPTHAMMER_LAB_MEM:-4G}" \
    -display none -monitor none -parallel none \
    -chardev "socket,id=con0,path=$run/console.sock,server=on,wait=off,logfile=$run/console.log" \
    -serial chardev:con0 \
    -qmp "unix:$run/qmp.sock,server=on,wait=off" \
    -device e1000e,netdev=n0,bus=pcie.0,romfile= \
    -netdev "user,id=n0,hostfwd=tcp:127.0.0.1:$sshport-:22,hostfwd=tcp:127.0.0.1:$lvport-:16509" \
    -kernel "$HPTHAMMER_LAB_KERNEL" -initrd "$HPTHAMMER_LAB_INITRD" -append 'console=hvc0' \
    -daemonize -pidfile "$run/qemu.pid" 2>"$run/qemu.err" ||
    die "L0 QEMU did not start: $(tail -3 "$run/qemu.err")"
  local t
  t=$(wait_ssh "$start") || { log "stopping L0 (console kept: $run/console.log)"; cmd_stop; exit 1; }
  local uname
  uname=$("${sshcmd[@]}" uname -r 2>/dev/null || true)
  [ "$uname" = "$HPTHAMMER_LAB_KERNEL_RELEASE" ] ||
    log "WARNING: the lab says uname -r '$uname', the image's kernel is '$HPTHAMMER_LAB_KERNEL_RELEASE'"
  echo "ssh_ready_s=$t" >>"$run/boot.times"
  log "ssh answers $t s after L0 started"
  if command -v virsh >/dev/null; then
    while ! timeout 120 virsh -q -c "$tcp_uri" capabilities 2>/dev/null | grep -c "<domain type='kvm'" >/dev/null; do
      [ "$(since "$start" | cut -d. -f1)" -lt "${HPTHAMMER_LAB_BOOT_TIMEOUT:-900}" ] ||
        die "libvirtd in the lab does not offer domain type kvm; see run.sh ssh cat /var/log/libvirt/libvirtd.log"
      sleep 2
    done
    t=$(since "$start")
    echo "libvirt_kvm_ready_s=$t" >>"$run/boot.times"
    log "libvirt ($tcp_uri) lists domain type kvm $t s after L0 started"
  else
    log "virsh not found here (apt-get install -y libvirt-clients): not waiting for libvirtd"
  fi
  sed -n 's/^.*hpthammer-lab: /  lab: /p' "$run/console.log" | tr -d '\r' >&2
  envlines
}

cmd_stop() {
  running || { log "not running"; rm -f "$run/qemu.pid" "$run/image"; return 0; }
  local pid
  pid=$(cat "$run/qemu.pid")
  qmp quit >/dev/null 2>&1 || true
  for _ in $(seq 1 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
  if kill -0 "$pid" 2>/dev/null; then log "QMP quit did not stop pid $pid; SIGTERM"; kill "$pid"; fi
  rm -f "$run/qemu.pid" "$run/image"
  log "stopped"
}

virsh_caps() { # virsh_caps URI: domain type kvm for ppc64le in its capabilities
  local caps
  caps=$(timeout 300 virsh -c "$1" capabilities 2>&1) || { log "virsh -c $1 capabilities: $caps"; return 1; }
  python3 -c '
import sys, xml.etree.ElementTree as ET
root = ET.fromstring(sys.stdin.read())
ok = False
for g in root.findall("guest"):
    a = g.find("arch")
    types = [d.get("type") for d in a.findall("domain")]
    print("  guest arch %s: domain types %s, emulator %s" % (a.get("name"), " ".join(types), a.findtext("emulator")))
    ok = ok or (a.get("name") in ("ppc64", "ppc64le") and "kvm" in types)
sys.exit(0 if ok else 1)' <<<"$caps" >&2
}

cmd_check() {
  running || die "the lab is not running: run.sh boot" 125
  local fail=0 t
  "${sshcmd[@]}" 'cat /run/hpthammer/steps; uname -r; grep -m1 cpu /proc/cpuinfo; grep -m1 platform /proc/cpuinfo;
    grep -m1 MMU /proc/cpuinfo; lsmod | grep -E "^kvm"; ls -l /dev/kvm; pidof libvirtd virtlogd dropbear' >&2 || fail=1
  "${sshcmd[@]}" 'grep -q "^kvm_hv " /proc/modules && test -c /dev/kvm && pidof libvirtd >/dev/null' ||
    { log "FAIL: kvm_hv, /dev/kvm or libvirtd missing in the lab"; fail=1; }
  local want have
  want=$(sed -n 's/^release=//p' "$run/image" 2>/dev/null || true)
  have=$("${sshcmd[@]}" uname -r 2>/dev/null || true)
  if [ -n "$want" ] && [ "$want" != "$have" ]; then log "FAIL: the lab runs kernel '$have', its image says '$want'"; fail=1
  else log "ok: the lab runs kernel $have"; fi
  command -v virsh >/dev/null || die "virsh not found. Install it: apt-get install -y libvirt-clients" 125
  for uri in "$tcp_uri" "$ssh_uri"; do
    t=$(now)
    if virsh_caps "$uri"; then log "ok: $uri lists domain type kvm for ppc64 ($(since "$t") s)"
    else log "FAIL: $uri does not list domain type kvm for ppc64"; fail=1; fi
  done
  return $fail
}

cmd_l2test() {
  running || die "the lab is not running: run.sh boot" 125
  local uri=$tcp_uri
  [ "${HPTHAMMER_LAB_L2_URI:-tcp}" = ssh ] && uri=$ssh_uri
  python3 "$here/l2test.py" --uri "$uri" --ssh "ssh -F $run/ssh_config hpthammer-lab" \
    --rounds "${1:-3}" --vcpus "${HPTHAMMER_LAB_L2_VCPUS:-1}" --out "$run" ${HPTHAMMER_LAB_L2_VOF:+--vof}
}

case "${1:-}" in
  boot) shift; cmd_boot "$@" ;;
  stop) cmd_stop ;;
  check) cmd_check ;;
  l2test) shift; cmd_l2test "$@" ;;
  ssh) shift; exec "${sshcmd[@]}" "$@" ;;
  reset) running || die "not running" 125; qmp system_reset ;;
  wait) running || die "not running" 125; t=$(wait_ssh "$(now)"); log "ssh answers after $t s" ;;
  status) if running; then echo "running (pid $(cat "$run/qemu.pid"))"; envlines; else echo "not running"; exit 1; fi ;;
  env) envlines ;;
  *) sed -n '2,/^set -e/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2; exit 2 ;;
esac
