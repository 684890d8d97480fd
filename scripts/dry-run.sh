#!/usr/bin/env bash
# The main job: a dry run of HPTHammer on a simulated POWER9 KVM-HV host running the kernel
# from the seed's report. Expected: it finds the host oops in kvmppc_add_revmap_chain within
# seconds and exits 1 (bug found). Extra arguments go to `hpthammer run`, e.g. --seed 7.
set -uo pipefail
cd "$(dirname "$0")/.."
source scripts/ensure-toolchain.sh || exit 125
swift build -c release --product hpthammer >/dev/null || exit 125
exec .build/release/hpthammer run Jobs/dry-run.yaml "$@"
