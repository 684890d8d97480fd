#!/usr/bin/env bash
# The libvirt backend end to end with ppc64le guests under QEMU's TCG: tcg-smoke plus the
# negative cases of issue 4. Prints "N passed, M failed"; exits 1 if any check failed, 125 if
# the machine cannot run guests at all.
set -uo pipefail
cd "$(dirname "$0")/.."
bash scripts/libvirt-up.sh || exit 125
source scripts/ensure-cross.sh
images=$(bash Guests/build.sh) || { echo "tcg-ci: Guests/build.sh failed" >&2; exit 125; }
export HPTHAMMER_GUEST_KERNEL=$(sed -n 's/^HPTHAMMER_GUEST_KERNEL=//p' <<<"$images")
export HPTHAMMER_GUEST_INITRD=$(sed -n 's/^HPTHAMMER_GUEST_INITRD=//p' <<<"$images")
[ -n "$HPTHAMMER_GUEST_KERNEL" ] && [ -n "$HPTHAMMER_GUEST_INITRD" ] || { echo "tcg-ci: no guest image" >&2; exit 125; }
swift build --product hpthammer >/dev/null || exit 125
bin=.build/debug/hpthammer
out=$(mktemp -d /tmp/hpthammer-tcg-ci.XXXXXX)
chmod 755 "$out"
run() { # name job args...: runs a job, leaves its exit code in $out/NAME.rc
  local name=$1 job=$2; shift 2
  echo "== $name: hpthammer run $job $*"
  $bin run "$job" --out "$out/$name" --no-progress "$@" | tail -n +1
  echo $? >"$out/$name.rc"
}
run smoke Jobs/tcg-smoke.yaml
run disabled Jobs/ci/tcg-resizing-disabled.yaml
run invalid Jobs/ci/tcg-invalid-orders.yaml
run crash Jobs/ci/tcg-guest-crash.yaml
run hotplug Jobs/ci/tcg-hotplug.yaml
run balloon Jobs/ci/tcg-balloon.yaml
mm_before="$(cat /sys/kernel/mm/ksm/run /sys/kernel/mm/ksm/pages_to_scan /sys/kernel/mm/transparent_hugepage/enabled 2>/dev/null | tr '\n' ' ')"
run host-mm Jobs/ci/tcg-host-mm.yaml
mm_after="$(cat /sys/kernel/mm/ksm/run /sys/kernel/mm/ksm/pages_to_scan /sys/kernel/mm/transparent_hugepage/enabled 2>/dev/null | tr '\n' ' ')"
[ "$mm_before" = "$mm_after" ] && echo same >"$out/host-mm.restored" || echo "before: $mm_before; after: $mm_after" >"$out/host-mm.restored"
# Ctrl-C: the run stops, exits 125, and leaves none of its domains behind.
echo "== interrupt: hpthammer run Jobs/tcg-smoke.yaml, Ctrl-C after 25 s"
$bin run Jobs/tcg-smoke.yaml --out "$out/interrupt" --no-progress >/dev/null 2>&1 &
pid=$!
sleep 25
kill -INT "$pid"
wait "$pid"
echo $? >"$out/interrupt.rc"
virsh -c qemu:///system list --all --name | grep -c '^hpthammer-' >"$out/interrupt.left" || true
echo "== QEMU killed: hpthammer run Jobs/tcg-smoke.yaml, guest0's QEMU SIGKILLed after 35 s"
$bin run Jobs/tcg-smoke.yaml --out "$out/qemu-killed" --no-progress >/dev/null 2>&1 &
pid=$!
sleep 35
for f in /run/libvirt/qemu/hpthammer-*-g0.pid; do [ -e "$f" ] && kill -KILL "$(cat "$f")"; done
wait "$pid"
echo $? >"$out/qemu-killed.rc"
echo "== libvirtd killed: hpthammer run Jobs/tcg-smoke.yaml, libvirtd SIGKILLed after 30 s"
$bin run Jobs/tcg-smoke.yaml --out "$out/libvirtd-killed" --no-progress >/dev/null 2>&1 &
pid=$!
sleep 30
pkill -KILL -x libvirtd
wait "$pid"
echo $? >"$out/libvirtd-killed.rc"
# A killed libvirtd takes a while to be gone under load; libvirt-up.sh must not take it for a
# running one.
for _ in $(seq 1 120); do pgrep -x libvirtd >/dev/null || break; sleep 0.5; done
bash scripts/libvirt-up.sh || exit 125
echo "== SIGKILL: hpthammer run Jobs/tcg-smoke.yaml, kill -9 after 25 s, then the same run again"
$bin run Jobs/tcg-smoke.yaml --out "$out/killed" --no-progress >/dev/null 2>&1 &
pid=$!
sleep 25
kill -KILL "$pid"
wait "$pid"
virsh -c qemu:///system list --all --name | grep -c '^hpthammer-' >"$out/killed.left" || true
$bin run Jobs/tcg-smoke.yaml --out "$out/after-kill" --no-progress 2>"$out/after-kill.err" | tail -n +1
echo $? >"$out/after-kill.rc"
grep 'cleaned up domain' "$out/after-kill.err" || true
virsh -c qemu:///system list --all --name | grep -c '^hpthammer-' >"$out/after-kill.left" || true
python3 scripts/tcg-ci-check.py "$out"
