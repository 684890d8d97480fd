#!/usr/bin/env bash
# Measures the results store and the report (the README's figures):
#   scripts/bench-results.sh [RUNS] [EVENTS]          # default: 1000 runs, 100000 events
# RUNS run directories are made from real dry runs (seeds 1-4 on the pre-fix kernel: bugs;
# seeds 1-4 on 6.1: passes), copied with new run ids over 30 nights and 4 hosts, then timed:
#   hpthammer results import DIR --db FILE            (runs/s)
#   hpthammer report --since 30d --db FILE --out FILE (build time and size)
# and one run whose timeline.jsonl holds EVENTS events (a real pass run's, its resizes repeated
# over a longer run):
#   hpthammer results import RUN --db FILE ; hpthammer report RUN --out FILE
# HPTHAMMER names the binary (default .build/release/hpthammer, else .build/debug/hpthammer).
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${HPTHAMMER:-.build/release/hpthammer}
[ -x "$bin" ] || bin=.build/debug/hpthammer
[ -x "$bin" ] || { echo "bench-results: build hpthammer first (swift build -c release)" >&2; exit 125; }
n=${1:-1000}
events=${2:-100000}
work=$(mktemp -d /tmp/hpthammer-bench.XXXXXX)
"$bin" run Jobs/dry-run.yaml --seeds 4 --out "$work/src/bug" --no-progress --no-db >/dev/null || [ $? = 1 ]
"$bin" run Jobs/dry-run.yaml --kernel 6.1 --duration 2s --seeds 4 --out "$work/src/pass" \
  --no-progress --no-db >/dev/null
python3 - "$work" "$n" "$events" <<'PY'
import json, os, random, shutil, sys, uuid, datetime
work, n, events = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
srcs = sorted(os.path.join(work, "src", k, d) for k in ("bug", "pass")
              for d in os.listdir(os.path.join(work, "src", k)))
now = datetime.datetime.now(datetime.timezone.utc)
def clone(src, dst, night, host, i):
    shutil.copytree(src, dst)
    path = os.path.join(dst, "run.json")
    j = json.load(open(path))
    p = j.setdefault("provenance", {})
    p["run_id"] = str(uuid.uuid4())
    start = now - datetime.timedelta(days=night, seconds=i)
    p["started_at"] = start.strftime("%Y-%m-%dT%H:%M:%SZ")
    p["ended_at"] = (start + datetime.timedelta(seconds=60)).strftime("%Y-%m-%dT%H:%M:%SZ")
    p.setdefault("host", {})["name"] = host
    json.dump(j, open(path, "w"))
os.makedirs(os.path.join(work, "runs"))
for i in range(n):
    clone(srcs[i % len(srcs)], os.path.join(work, "runs", f"run-{i:05d}"), i % 30, f"p9-{i % 4}", i)
# One run with EVENTS timeline events: a pass run's resizes, repeated.
big = os.path.join(work, "big")
clone(srcs[-1], big, 0, "p9-0", 0)
lines = [json.loads(l) for l in open(os.path.join(big, "timeline.jsonl"))]
start = [l for l in lines if l.get("event") == "start"]
resizes = [l for l in lines if l.get("event") == "resize"] or [
    {"event": "resize", "guest": "guest0", "from": 20, "to": 21, "answer": "0",
     "prepare_ms": 100.0, "commit_ms": 8.0}]
rng = random.Random(1)
with open(os.path.join(big, "timeline.jsonl"), "w") as f:
    for l in start:
        f.write(json.dumps(l) + "\n")
    t = 0.0
    for k in range(events - len(start) - 1):
        e = dict(resizes[k % len(resizes)])
        t += 0.05 + rng.random() * 0.02
        e["t"] = round(t, 3)
        e["prepare_ms"] = round(e.get("prepare_ms", 100.0) * (0.9 + rng.random() * 0.2), 3)
        f.write(json.dumps(e) + "\n")
    f.write(json.dumps({"event": "end", "t": round(t, 3), "verdict": "pass"}) + "\n")
PY
timed() { # prints "WALL s wall, CPU s CPU" of a command; its output goes to $work/log
  /usr/bin/time -f "%e %U %S" -o "$work/time" "$@" >>"$work/log" 2>&1 || true
  read -r wall user sys <"$work/time"
  cpu=$(python3 -c "print(f'{$user + $sys:.2f}')")
  echo "$wall s wall, $cpu s CPU"
}
rate() { python3 -c "import sys; print(round($1 / float(sys.argv[1].split()[0])))" "$2"; }
db=$work/results.sqlite
t=$(timed "$bin" results import "$work/runs" --db "$db")
stored=$("$bin" results --limit 100000 --json --db "$db" | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')
echo "hpthammer results import DIR --db FILE: $stored of $n runs in $t ($(rate "$stored" "$t") runs/s)"
t=$(timed "$bin" results import "$work/runs" --db "$db")
echo "  the same again (all already stored): $t"
t=$(timed "$bin" report --since 30d --db "$db" --out "$work/report.html")
echo "hpthammer report --since 30d --db FILE --out FILE ($n runs): $t, $(( $(stat -c %s "$work/report.html") / 1024 )) KiB"
lines=$(wc -l <"$work/big/timeline.jsonl")
t=$(timed "$bin" results import "$work/big" --db "$work/big.sqlite")
echo "hpthammer results import RUN (timeline of $lines events): $t"
t=$(timed "$bin" report "$work/big" --out "$work/big.html")
echo "hpthammer report RUN --out FILE ($lines timeline events): $t, $(( $(stat -c %s "$work/big.html") / 1024 )) KiB"
echo "(binary $bin; files in $work; load $(cut -d' ' -f1-3 /proc/loadavg))"
