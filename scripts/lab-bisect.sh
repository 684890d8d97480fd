#!/usr/bin/env bash
# A statistical bisection of real kernels on the emulated POWER9 lab, from scratch: a history
# of ordinary commits on Debian's 6.1 source (the tree Guests/lab/kernel.sh keeps) with the
# revert of the seed's fix in the middle, bisected by `hpthammer bisect kernel` (each commit
# built for the lab, booted, Jobs/lab-raw-race.yaml run on it); then `hpthammer verdict` of the
# stock kernel (the "patch") against the reverting commit's. Exit 0 only when the bisection
# names the reverting commit and the verdict says "fixes". Prints the runs, builds and wall
# times. Long: see the README for measured figures.
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
.build/release/hpthammer bisect kernel --tree "$src" --good "$base" --bad lab-bisect \
  --job Jobs/lab-raw-race.yaml --target lab --duration "${HPTHAMMER_BISECT_DURATION:-45s}" \
  --match "${HPTHAMMER_BISECT_MATCH:-unable to handle kernel paging request}" \
  --build-cost 60 --run-cost 90 --max-runs 80 --dir "$PWD/runs/lab-bisect-$t0" --json |
  tee "runs/lab-bisect-$t0.json"
rc=${PIPESTATUS[0]}
set -e
got=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["culprit"])' "runs/lab-bisect-$t0.json" 2>/dev/null || true)
t1=$(date +%s)
echo "lab-bisect: exit $rc; named $got; expected $culprit; $((t1 - t0)) s in all" >&2
[ "$got" = "$culprit" ] || { git -C "$src" checkout -qf "$base"; exit 1; }

# Then the patch verdict: the reverting commit's kernel against the stock one (both built by
# the bisection already: kernel.sh --tree finds them in its cache by commit).
kernel_of() { # COMMIT: VMLINUX,MODULES of that commit's lab kernel
  git -C "$src" checkout -qf "$1"
  local k; k=$(bash Guests/lab/kernel.sh --tree "$src") || return 1
  echo "$(sed -n 's/^HPTHAMMER_LAB_HOST_KERNEL=//p' <<<"$k"),$(sed -n 's/^HPTHAMMER_LAB_HOST_MODULES=//p' <<<"$k")"
}
reverted=$(kernel_of "$culprit")
stock=$(kernel_of "$base")
git -C "$src" checkout -qf "$base"
set +e
.build/release/hpthammer verdict Jobs/lab-raw-race.yaml --target lab \
  --duration "${HPTHAMMER_BISECT_DURATION:-45s}" --base "$reverted" --patched "$stock" \
  --fraction "${HPTHAMMER_VERDICT_FRACTION:-0.25}" --block 4 --max-runs 80 \
  --dir "runs/lab-verdict-$t0" --json | tee "runs/lab-verdict-$t0.json"
vrc=${PIPESTATUS[0]}
set -e
echo "lab-bisect: verdict exit $vrc ($(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["verdict"])' "runs/lab-verdict-$t0.json" 2>/dev/null)); $(( $(date +%s) - t1 )) s for the verdict, $(( $(date +%s) - t0 )) s in all" >&2
[ "$vrc" = 0 ]
