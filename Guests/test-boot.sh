#!/usr/bin/env bash
# Boot test of the HPTHammer guest: builds it (build.sh, cached), installs qemu-system-ppc if
# absent, boots it under TCG (pseries, resize-hpt=required, POWER9 hash MMU, 1 GiB, 2 vCPUs)
# and drives the agent over the console (test_boot.py): ready in hash mode, memory load,
# resizes 22 23 24 23 (succeed), 17 (EINVAL), 25 (EPERM), a policy run, stats, quit.
# Options: --crash also boots a second guest and checks that `@hpth crash` panics it;
# --port hvc1 puts the agent on a second spapr-vty of its own (kernel messages stay on hvc0);
# --churn makes the memory load give pages back and fault them in again (see README.md).
# Exit 0 when every answer is as expected, 1 when one is not, 125 when it could not test.
# The console log and QEMU's stderr stay in $HPTHAMMER_CACHE/test-boot/ (see build.sh).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cache=${HPTHAMMER_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/hpthammer/guests}

if ! command -v qemu-system-ppc64 >/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "test-boot: installing qemu-system-ppc" >&2
    apt-get install -y -q --no-install-recommends qemu-system-ppc qemu-utils >&2 ||
      { apt-get update -q >&2 && apt-get install -y -q --no-install-recommends qemu-system-ppc qemu-utils >&2; } ||
      { echo "test-boot: could not install qemu-system-ppc (apt-get install -y qemu-system-ppc qemu-utils)" >&2; exit 125; }
  else
    echo "test-boot: qemu-system-ppc64 not found. Install it: apt-get install -y --no-install-recommends qemu-system-ppc qemu-utils" >&2
    exit 125
  fi
fi
command -v python3 >/dev/null || { echo "test-boot: python3 not found (apt-get install -y python3)" >&2; exit 125; }

set +e
out=$("$here/build.sh")
rc=$?
set -e
# A guest that cannot be built means this could not test: 125 whatever build.sh said.
[ "$rc" = 0 ] || { echo "test-boot: build.sh failed (exit $rc)" >&2; exit 125; }
kernel=$(sed -n 's/^HPTHAMMER_GUEST_KERNEL=//p' <<<"$out")
initrd=$(sed -n 's/^HPTHAMMER_GUEST_INITRD=//p' <<<"$out")
[ -s "$kernel" ] && [ -s "$initrd" ] || { echo "test-boot: build.sh printed no kernel/initrd" >&2; exit 125; }

workdir="$cache/test-boot"
rm -rf "$workdir" && mkdir -p "$workdir"
exec python3 "$here/test_boot.py" "$kernel" "$initrd" "$workdir" "$@"
