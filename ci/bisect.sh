#!/usr/bin/env bash
# The TEST of a statistical kernel bisection on the emulated POWER lab (or, with
# HPTHAMMER_BISECT_TARGET, another target the job names): builds the kernel tree's checked-out
# commit for the lab (Guests/lab/kernel.sh --tree: PowerNV, kvm-hv as a module, cached by
# commit, one build directory for the tree so steps are incremental), boots it and runs the job.
#   hpthammer bisect run --repo LINUX --good G --bad B --build-cost 1800 --run-cost 300 \
#     -- /path/to/hpthammer/ci/bisect.sh
# Exit codes are bisect run's: 0 did not reproduce, 1 reproduced, 125 skip (a commit that does
# not build or boot, or an infrastructure failure, is never "bad").
# HPTHAMMER_BISECT_JOB (default Jobs/lab-raw-race.yaml), HPTHAMMER_BISECT_DURATION (each run's
# budget, e.g. 45s, instead of the job's); HPTHAMMER_BISECT_MATCH: count a run as
# reproduced only when a crash title contains this text (another crash is reported, not counted);
# HPTHAMMER_BISECT_MATCH_FILE instead: the first crash's title is written there and later runs
# count only that title. HPTHAMMER_BIN: the hpthammer to run (`hpthammer bisect kernel`, which
# sets all of these, passes its own).
set -uo pipefail
harness=$(cd "$(dirname "$0")/.." && pwd)
job=${HPTHAMMER_BISECT_JOB:-$harness/Jobs/lab-raw-race.yaml}
tree=$PWD
runs=${HPTHAMMER_BISECT_RUNS:-$harness/runs/bisect-runs}
mkdir -p "$runs"
kernel=$(bash "$harness/Guests/lab/kernel.sh" --tree "$tree") || exit 125
vmlinux=$(sed -n 's/^HPTHAMMER_LAB_HOST_KERNEL=//p' <<<"$kernel")
modules=$(sed -n 's/^HPTHAMMER_LAB_HOST_MODULES=//p' <<<"$kernel")
[ -s "$vmlinux" ] && [ -d "$modules" ] || exit 125
cd "$harness" || exit 125
bin=${HPTHAMMER_BIN:-.build/release/hpthammer}
[ -x "$bin" ] || swift build -c release --product hpthammer >/dev/null || exit 125
match=${HPTHAMMER_BISECT_MATCH:-}
mfile=${HPTHAMMER_BISECT_MATCH_FILE:-}
[ -z "$match" ] && [ -n "$mfile" ] && [ -s "$mfile" ] && match=$(cat "$mfile")
out="$runs/$(git -C "$tree" rev-parse --short HEAD)-$(date +%s%N)"
"$bin" run "$job" --target "${HPTHAMMER_BISECT_TARGET:-lab}" \
  ${HPTHAMMER_BISECT_DURATION:+--duration "$HPTHAMMER_BISECT_DURATION"} \
  --host-kernel "$vmlinux" --host-modules "$modules" --out "$out" --no-progress >&2
rc=$?
echo "ci/bisect.sh: run directory $out (exit $rc)" >&2
case $rc in
  0) exit 0 ;;
  1)
    if [ -z "$match" ]; then
      # The first crash of the bisection names what it looks for from now on.
      [ -n "$mfile" ] && python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); print(next(c["title"] for c in r["crashes"] if not c.get("expected")))' "$out/run.json" >"$mfile" 2>/dev/null &&
        echo "ci/bisect.sh: counting from now on only: $(cat "$mfile")" >&2
      exit 1
    fi
    python3 - "$out/run.json" "$match" <<'PY' && exit 1
import json, sys
r = json.load(open(sys.argv[1]))
titles = [c["title"] for c in r.get("crashes", []) if not c.get("expected")]
sys.exit(0 if any(sys.argv[2] in t for t in titles) else 1)
PY
    echo "ci/bisect.sh: a different crash, not counted: see $out/run.json" >&2
    exit 0 ;;
  *) exit 125 ;;
esac
