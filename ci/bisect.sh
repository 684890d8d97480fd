#!/usr/bin/env bash
# git bisect run helper: builds the kernel tree it is run in for POWER (PowerNV, kvm-hv as a
# module), boots it on the emulated lab (or, with HPTHAMMER_BISECT_HOST set, installs it on a
# real host: see ci/README.md) and runs a job. Exit codes are the harness's: 0 good, 1 bad,
# 125 skip (a commit that does not build or boot is not "bad").
#   cd linux && git bisect start BAD GOOD && git bisect run /path/to/hpthammer/ci/bisect.sh
set -uo pipefail
harness=$(cd "$(dirname "$0")/.." && pwd)
job=${HPTHAMMER_BISECT_JOB:-$harness/Jobs/lab-raw-race.yaml}
stage=${HPTHAMMER_BISECT_STAGE:-${XDG_CACHE_HOME:-$HOME/.cache}/hpthammer/bisect}
export ARCH=powerpc CROSS_COMPILE=powerpc64le-linux-gnu-
mkdir -p "$stage"
make -s powernv_defconfig >/dev/null || exit 125
scripts/kconfig/merge_config.sh -m .config "$harness/Guests/lab/lab-kernel.config" >/dev/null || exit 125
make -s olddefconfig >/dev/null || exit 125
nice make -s -j"$(nproc)" vmlinux modules >/dev/null 2>"$stage/build.err" || exit 125
rm -rf "$stage/modules"
make -s INSTALL_MOD_PATH="$stage/modules" modules_install >/dev/null || exit 125
cd "$harness" || exit 125
[ -x .build/release/hpthammer ] || swift build -c release --product hpthammer >/dev/null || exit 125
.build/release/hpthammer run "$job" --target lab --host-kernel "$OLDPWD/vmlinux" \
  --host-modules "$stage/modules" --no-progress
