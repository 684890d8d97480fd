#!/usr/bin/env bash
# The emulated POWER lab end to end (issue 6): Guests/lab builds the lab (cached in
# ~/.cache/hpthammer/lab), then three jobs run on its real kvm_hv: lab-power9 (libvirt, two HPT
# guests, resizes from inside and by hotplug; must pass, and the kretprobes must have counted
# the kernel's PREPARE/COMMIT answers), lab-host-crash (sysrq c in the lab: verdict "host
# crash" with the panic from the console, then a power cycle and the lab back), lab-host-hang
# (the lab frozen: "host hang", registers saved, power cycle), and lab-raw
# (the raw backend through hpthammer-hostd: the ppc64 payload verifies pages on real KVM-HV).
# Prints "N passed, M failed"; exits 1 if a check failed, 125 if the lab cannot be built here.
set -uo pipefail
cd "$(dirname "$0")/.."
# What the lab recipe and the harness's lab target need on this side.
need=()
command -v depmod >/dev/null 2>&1 || [ -x /sbin/depmod ] || need+=(kmod)
command -v ssh >/dev/null 2>&1 || need+=(openssh-client)
command -v virsh >/dev/null 2>&1 || need+=(libvirt-clients)
[ -e /usr/share/keyrings/debian-archive-keyring.gpg ] || need+=(debian-archive-keyring)
source scripts/ensure-cross.sh
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    apt-get update -qq || echo "lab-ci: apt-get update had errors; trying the install anyway" >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  else
    echo "lab-ci: missing ${need[*]}: sudo apt-get install ${need[*]}" >&2; exit 125
  fi
fi
build=$(bash Guests/lab/build.sh 2>/tmp/hpthammer-lab-build.err) || {
  echo "lab-ci: Guests/lab/build.sh failed: $(tail -3 /tmp/hpthammer-lab-build.err)" >&2; exit 125; }
grep -q '^HPTHAMMER_LAB_QEMU=' <<<"$build" || { echo "lab-ci: no lab image" >&2; exit 125; }
swift build --product hpthammer >/dev/null || exit 125
bin=.build/debug/hpthammer
out=$(mktemp -d /tmp/hpthammer-lab-ci.XXXXXX)
# A fresh lab: its boot time is one of the figures.
bash Guests/lab/run.sh stop >/dev/null 2>&1 || true
start=$(date +%s)
run() { # name job args...: runs a job, leaves its exit code in $out/NAME.rc
  local name=$1 job=$2; shift 2
  echo "== $name: hpthammer run $job $* ($(( $(date +%s) - start )) s into lab-ci)"
  $bin run "$job" --out "$out/$name" --no-progress "$@" | tail -n 14
  echo $? >"$out/$name.rc"
}
run power9 Jobs/lab-power9.yaml
run crash Jobs/ci/lab-host-crash.yaml
run hang Jobs/ci/lab-host-hang.yaml
run raw Jobs/lab-raw.yaml
# Infrastructure, not a kernel: the lab's own QEMU (L0) killed mid-run must end in exit 125
# naming it, never in a host crash or hang.
echo "== l0-killed: hpthammer run Jobs/lab-raw.yaml, the lab's QEMU SIGKILLed 30 s after the run starts"
$bin run Jobs/lab-raw.yaml --out "$out/l0-killed" --no-progress >/dev/null 2>&1 &
pid=$!
for _ in $(seq 1 600); do grep -q '"running"' "$out/l0-killed/run.json" 2>/dev/null && break; sleep 1; done
sleep 30
l0=$(bash Guests/lab/run.sh status 2>/dev/null | sed -n 's/^running (pid \([0-9]*\)).*/\1/p')
[ -n "$l0" ] && kill -KILL "$l0"
wait "$pid"
echo $? >"$out/l0-killed.rc"
bash Guests/lab/run.sh stop >/dev/null 2>&1 || true
echo "lab-ci: $(( $(date +%s) - start )) s for the five jobs"
python3 scripts/lab-ci-check.py "$out"
