#!/usr/bin/env bash
# The emulated POWER lab end to end (issue 6): Guests/lab builds the lab (cached in
# ~/.cache/hpthammer/lab), then three jobs run on its real kvm_hv: lab-power9 (libvirt, two HPT
# guests, resizes from inside and by hotplug; must pass, and the kretprobes must have counted
# the kernel's PREPARE/COMMIT answers), lab-host-crash (sysrq c in the lab: verdict "host
# crash" with the panic from the console, then a power cycle and the lab back), and lab-raw
# (the raw backend through hpthammer-hostd: the ppc64 payload verifies pages on real KVM-HV).
# Prints "N passed, M failed"; exits 1 if a check failed, 125 if the lab cannot be built here.
set -uo pipefail
cd "$(dirname "$0")/.."
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
run raw Jobs/lab-raw.yaml
bash Guests/lab/run.sh stop >/dev/null 2>&1 || true
echo "lab-ci: $(( $(date +%s) - start )) s for the three jobs"
python3 scripts/lab-ci-check.py "$out"
