#!/usr/bin/env bash
# Issue 4's figures: boot to agent-ready, resizes/s per guest and in total with 1, 2 and 4
# TCG guests, and the harness's CPU time against QEMU's. Usage: scripts/bench-libvirt.sh [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-60}
bash scripts/libvirt-up.sh
source scripts/ensure-cross.sh
images=$(bash Guests/build.sh)
export HPTHAMMER_GUEST_KERNEL=$(sed -n 's/^HPTHAMMER_GUEST_KERNEL=//p' <<<"$images")
export HPTHAMMER_GUEST_INITRD=$(sed -n 's/^HPTHAMMER_GUEST_INITRD=//p' <<<"$images")
swift build -c release --product hpthammer >/dev/null
out=$(mktemp -d /tmp/hpthammer-bench-libvirt.XXXXXX)
chmod 755 "$out"
for n in 1 2 4; do
  sed -e "s/^  count: 2/  count: $n/" -e "s/^  duration_s: .*/  duration_s: $secs/" Jobs/tcg-smoke.yaml >"$out/job-$n.yaml"
  .build/release/hpthammer run "$out/job-$n.yaml" --out "$out/run-$n" --no-progress >/dev/null || true
done
python3 - "$out" "$secs" <<'PY'
import json, sys
out, secs = sys.argv[1], float(sys.argv[2])
print(f"TCG guests, 1 GiB, 2 vCPUs, random walk 22-24, {secs:.0f} s each (wall clock):")
for n in (1, 2, 4):
    r = json.load(open(f"{out}/run-{n}/run.json"))
    figs = r.get("figures") or {}
    boots = [figs.get(f"guest{i}_boot_to_ready_ms", -1) / 1000 for i in range(n)]
    per = [r["answers"].get(f"hpt_order guest{i}", {}).get("0", 0) / secs for i in range(n)]
    h, q = figs.get("harness_cpu_ms", 0), figs.get("qemu_cpu_ms", 0)
    print(f"  {n} guest(s): verdict {r['verdict']}; boot to ready {', '.join(f'{b:.1f}' for b in boots)} s; "
          f"resizes/s per guest {', '.join(f'{p:.2f}' for p in per)}, total {sum(per):.2f}; "
          f"harness CPU {h} ms = {100 * h / max(1, q):.2f}% of QEMU's {q} ms")
PY
