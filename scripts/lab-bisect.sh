#!/usr/bin/env bash
# A statistical bisection of real kernels on the emulated POWER9 lab, from scratch: a history
# of ordinary commits on Debian's 6.1 source (the tree Guests/lab/kernel.sh keeps) with the
# revert of the seed's fix in the middle, bisected by `hpthammer bisect run` with ci/bisect.sh
# as the TEST (each commit built for the lab, booted, Jobs/lab-raw-race.yaml run on it).
# Prints the answer, the runs, builds and wall time. Long: see the README for measured figures.
#   scripts/lab-bisect.sh [COMMITS_BEFORE] [COMMITS_AFTER]   (default 9 and 10)
set -euo pipefail
cd "$(dirname "$0")/.."
before=${1:-9}
after=${2:-10}
K=${HPTHAMMER_KERNELS:-${XDG_CACHE_HOME:-$HOME/.cache}/hpthammer/kernels}
t0=$(date +%s)
src=$(bash Guests/lab/kernel.sh --print-source) || exit 125
base=$(git -C "$src" describe --tags --abbrev=0 --match 'debian-*')
git -C "$src" checkout -qf "$base"
git -C "$src" branch -qf lab-bisect "$base"
git -C "$src" checkout -q lab-bisect
files=(arch/powerpc/kvm/book3s_hv.c arch/powerpc/kvm/book3s_64_mmu_hv.c arch/powerpc/kvm/powerpc.c
  arch/powerpc/kvm/book3s.c arch/powerpc/kvm/book3s_hv_rm_mmu.c)
ordinary() { # N: a comment-only change in one of the files kvm-hv is built from
  local f=${files[$(( $1 % ${#files[@]} ))]}
  printf '/* lab-bisect: ordinary change %d */\n' "$1" >>"$src/$f"
  git -C "$src" commit -qam "lab-bisect: ordinary change $1 ($f)"
}
for i in $(seq 1 "$before"); do ordinary "$i"; done
git -C "$src" apply "$PWD/Guests/lab/patches/revert-hpt-resize-exclusion.patch"
git -C "$src" commit -qam "Revert the seed's fix (38c53af85306): the mmu_ready checks"
culprit=$(git -C "$src" rev-parse HEAD)
for i in $(seq $((before + 1)) $((before + after))); do ordinary "$i"; done
echo "lab-bisect: history of $((before + after + 1)) commits on $base; the culprit is $culprit" >&2
swift build -c release --product hpthammer >/dev/null
mkdir -p runs
set +e
HPTHAMMER_BISECT_DURATION=${HPTHAMMER_BISECT_DURATION:-45s} \
  .build/release/hpthammer bisect run --repo "$src" --good "$base" --bad lab-bisect \
  --build-cost 60 --run-cost 90 --max-runs 80 --dir "runs/lab-bisect-$t0" --json \
  -- "$PWD/ci/bisect.sh" | tee "runs/lab-bisect-$t0.json"
rc=${PIPESTATUS[0]}
set -e
got=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["culprit"])' "runs/lab-bisect-$t0.json" 2>/dev/null || true)
echo "lab-bisect: exit $rc; named $got; expected $culprit; $(( $(date +%s) - t0 )) s in all" >&2
git -C "$src" checkout -qf "$base"
[ "$got" = "$culprit" ] || exit 1
