#!/usr/bin/env python3
"""Checks the run directories scripts/lab-ci.sh left: exit codes, verdicts and the evidence
that the lab's real kvm_hv did the resizes."""
import json, pathlib, sys

out = pathlib.Path(sys.argv[1])
passed, failed = 0, 0


def check(name, ok, detail=""):
    global passed, failed
    print(("ok   " if ok else "FAIL ") + name + (f": {detail}" if detail else ""))
    if ok:
        passed += 1
    else:
        failed += 1


def load(name):
    try:
        rc = int((out / f"{name}.rc").read_text().strip())
    except Exception:
        rc = None
    try:
        report = json.loads((out / name / "run.json").read_text())
    except Exception:
        report = {}
    return rc, report


rc, r = load("power9")
check("lab-power9 passes on Debian's kernel (exit 0)", rc == 0,
      f"exit {rc}, verdict {r.get('verdict')}, {r.get('error') or ''}")
calls = (r.get("host_trace") or {}).get("calls") or {}
prep = calls.get("kvm_vm_ioctl_resize_hpt_prepare", {})
commit = calls.get("kvm_vm_ioctl_resize_hpt_commit", {})
check("lab-power9: the lab kernel's PREPARE and COMMIT ran (kretprobe counts)",
      prep.get("0", 0) > 0 and commit.get("0", 0) > 0, f"prepare {prep}, commit {commit}")
res = r.get("resizes") or {}
check("lab-power9: guests resized (>= 50)", res.get("succeeded", 0) >= 50, f"{res}")
g = r.get("guests") or {}
check("lab-power9: pages verified, no mismatch",
      g.get("pages_verified", 0) > 0 and g.get("mismatches", 1) == 0, f"{g}")

rc, r = load("crash")
check("lab-host-crash: exit 1, verdict host crash", rc == 1 and r.get("verdict_detail") == "host crash",
      f"exit {rc}, detail {r.get('verdict_detail')}")
titles = [c.get("title", "") for c in r.get("crashes") or [] if c.get("source", "").startswith("host")]
check("lab-host-crash: the panic taken from the lab's console",
      any("sysrq" in t or "panic" in t.lower() for t in titles), f"{titles}")
fig = r.get("figures") or {}
check("lab-host-crash: power-cycled and back", fig.get("host_recovered") == 1,
      f"host_recovery_ms {fig.get('host_recovery_ms')}")

# After the power cycle the harness asks the lab for the kernel's last words: each source says
# what it found, or why it has none (the lab has none of the three: README's fault table).
try:
    words = [l for l in (out / "crash" / "progress.log").read_text().splitlines() if "last words, " in l]
except Exception:
    words = []
check("lab-host-crash: last words asked of pstore, the journal and vmcore-dmesg, each answered",
      all(any(f"last words, {s}:" in l for l in words) for s in ("pstore", "journal", "vmcore-dmesg")),
      "; ".join(words) or "no 'last words' lines in progress.log")

rc, r = load("hang")
check("lab-host-hang: exit 1, verdict host hang", rc == 1 and r.get("verdict_detail") == "host hang",
      f"exit {rc}, detail {r.get('verdict_detail')}")
regs = out / "hang" / "host-registers.txt"
check("lab-host-hang: every CPU's NIP saved before the reset",
      regs.exists() and regs.read_text().startswith("CPU 0: NIP"), str(regs))
fig = r.get("figures") or {}
check("lab-host-hang: power-cycled and back", fig.get("host_recovered") == 1,
      f"host_recovery_ms {fig.get('host_recovery_ms')}")

rc, r = load("raw")
check("lab-raw passes (exit 0)", rc == 0, f"exit {rc}, verdict {r.get('verdict')}, {r.get('error') or ''}")
g = r.get("guests") or {}
check("lab-raw: the ppc64 payload verified pages on real KVM-HV, no mismatch",
      g.get("pages_verified", 0) > 0 and g.get("mismatches", 1) == 0, f"{g}")
res = r.get("resizes") or {}
check("lab-raw: PREPARE/COMMIT on the VM fd succeeded", res.get("succeeded", 0) > 0, f"{res}")
expected = [c for c in r.get("crashes") or [] if c.get("expected")]
check("lab-raw: COMMIT before any vCPU ran gave the expected WARNING", len(expected) > 0,
      f"{[c.get('title') for c in expected]}")
trace = r.get("host_trace") or {}
check("lab-raw: the kernel's own count of PREPARE/COMMIT (host_trace, as libvirt runs have)",
      (trace.get("calls") or {}).get("kvm_vm_ioctl_resize_hpt_commit"), f"{trace}")
check("lab-raw: the verdict names the kernel under test by its release",
      r.get("kernel") == r.get("kernel_release") and r.get("target") == "lab-powernv9",
      f"kernel {r.get('kernel')}, target {r.get('target')}")

rc, r = load("l0-killed")
check("lab's QEMU (L0) killed mid-run: exit 125, run.json's error names it, no host crash or hang",
      rc == 125 and r.get("verdict") == "error" and "lab's QEMU (L0" in (r.get("error") or ""),
      f"exit {rc}, verdict {r.get('verdict')}, error {r.get('error')}, detail {r.get('verdict_detail')}")

print(f"{passed} passed, {failed} failed")
sys.exit(1 if failed else 0)
