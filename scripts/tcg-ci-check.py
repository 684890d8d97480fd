#!/usr/bin/env python3
"""Checks the run directories of scripts/tcg-ci.sh against what issue 4 asks."""
import json, os, re, sys

out = sys.argv[1]
passed, failed = 0, 0


def check(name, ok, why):
    global passed, failed
    print(("PASS " if ok else "FAIL ") + name + ("" if ok else ": " + why))
    if ok:
        passed += 1
    else:
        failed += 1


def load(name):
    rc = int(open(os.path.join(out, name + ".rc")).read().strip())
    path = os.path.join(out, name, "run.json")
    return rc, (json.load(open(path)) if os.path.exists(path) else {})


# 1. tcg-smoke: both guests boot in hash mode and complete >= 50 resizes each. A memory
# mismatch the agent reports under TCG is printed as a finding (see README, "Findings").
rc, r = load("smoke")
for g in ("guest0", "guest1"):
    log = os.path.join(out, "smoke", g + ".console.log")
    text = open(log, errors="replace").read() if os.path.exists(log) else ""
    check(f"smoke {g} boots with the hash MMU", re.search(r"@hpth ready \S+ hash ", text) is not None,
          "no '@hpth ready ... hash' line")
    ok = r.get("answers", {}).get(f"hpt_order {g}", {}).get("0", 0)
    check(f"smoke {g} >= 50 successful resizes", ok >= 50, f"{ok} succeeded")
others = [c for c in r.get("crashes", []) if c.get("type") != "MEMORY_CORRUPTION"]
check("smoke: no crash, hang or QEMU death", rc in (0, 1) and not others,
      f"exit {rc}, findings {[c.get('title') for c in others]}")
for c in r.get("crashes", []):
    if c.get("type") == "MEMORY_CORRUPTION":
        print("FINDING", c.get("title"), "(see", c.get("file"), ")")

# 2. resizing disabled: configuration, not a kernel bug.
rc, r = load("disabled")
check("resizing disabled: exit 125 naming the cause",
      rc == 125 and "HPT resizing is disabled for this domain" in (r.get("error") or ""),
      f"exit {rc}, error {r.get('error')}")

# 3. invalid orders are expected answers.
rc, r = load("invalid")
a = r.get("answers", {}).get("hpt_order", {})
check("order 17 is EINVAL, 25 is EPERM, the run passes",
      rc == 0 and a.get("EINVAL", 0) >= 1 and a.get("EPERM", 0) >= 1,
      f"exit {rc}, answers {a}, findings {[c.get('title') for c in r.get('crashes', [])]}, error {r.get('error')}")

# 4. guest crash: verdict guest crash with the guest's oops extracted.
rc, r = load("crash")
titles = [c.get("title", "") for c in r.get("crashes", [])]
check("guest crash: exit 1, detail 'guest crash', the guest's report kept, its time to crash",
      rc == 1 and r.get("verdict_detail") == "guest crash" and any("sysrq" in t.lower() or "panic" in t.lower() for t in titles)
      and (r.get("time_to_crash_s") or 0) > 0,
      f"exit {rc}, detail {r.get('verdict_detail')}, titles {titles}, time_to_crash_s {r.get('time_to_crash_s')}")

# 5. hotplug from outside: the guest grows its HPT for the dimm and shrinks it after unplug.
rc, r = load("hotplug")
h = r.get("answers", {}).get("HOTPLUG", {})
grew = any(k.startswith("order 24 with") for k in h)
check("hotplug: the guest grows its HPT with the dimm, the run passes", rc == 0 and grew and h.get("attached", 0) >= 1,
      f"exit {rc}, hotplug answers {h}, unexpected {r.get('unexpected')}")

# 5a. The balloon from outside: libvirt inflated and deflated it, the guest's driver followed
# (a balloon that does not move stops the run with 125), the run passes.
rc, r = load("balloon")
b = r.get("answers", {}).get("BALLOON", {})
check("balloon: inflated and deflated with the guest's driver following, the run passes",
      rc == 0 and b.get("inflate", 0) >= 2 and b.get("deflate", 0) >= 2 and "error" not in b,
      f"exit {rc}, balloon answers {b}, error {r.get('error')}")

# 5b. The host's KSM and THP against the guests: they merged, collapsed and split guest pages
# during the run, the run passes, and the host's settings are as before after it.
rc, r = load("host-mm")
fig = r.get("figures") or {}
restored = open(os.path.join(out, "host-mm.restored")).read().strip()
check("host_mm: KSM shared and THP collapsed or split guest pages, the run passes, the host's settings restored",
      rc in (0, 1) and fig.get("host_mm_ksm_pages_sharing_peak", 0) > 0
      and fig.get("host_mm_thp_collapse_alloc", 0) + fig.get("host_mm_thp_split_pmd", 0) > 0
      and restored == "same" and not [c for c in r.get("crashes", []) if c.get("type") != "MEMORY_CORRUPTION"],
      f"exit {rc}, figures { {k: v for k, v in fig.items() if k.startswith('host_mm')} }, {restored}")

# 6. Ctrl-C cleans up.
rc = int(open(os.path.join(out, "interrupt.rc")).read().strip())
left = int((open(os.path.join(out, "interrupt.left")).read().strip() or "0"))
check("Ctrl-C: exit 125 and no domain left behind", rc == 125 and left == 0, f"exit {rc}, {left} domains left")

# 6b. A guest's QEMU killed mid-run: the host let a guest die, a finding (exit 1).
rc, r = load("qemu-killed")
check("QEMU killed mid-run: exit 1, a QEMU death finding",
      rc == 1 and any(c.get("type") == "QEMU_DEATH" for c in r.get("crashes", [])),
      f"exit {rc}, verdict {r.get('verdict')}, findings {[c.get('title') for c in r.get('crashes', [])]}")

# 7. libvirtd killed mid-run: infrastructure, exit 125 naming it, never a guest finding.
rc, r = load("libvirtd-killed")
check("libvirtd killed mid-run: exit 125, run.json's error names libvirtd",
      rc == 125 and r.get("verdict") == "error" and "libvirtd stopped answering" in (r.get("error") or ""),
      f"exit {rc}, verdict {r.get('verdict')}, error {r.get('error')}")

# 8. SIGKILL leaves domains; the next run cleans them up, says so, and passes.
killed_left = int((open(os.path.join(out, "killed.left")).read().strip() or "0"))
rc, r = load("after-kill")
err = open(os.path.join(out, "after-kill.err"), errors="replace").read()
cleaned = len(re.findall(r"cleaned up domain hpthammer-\S+, left by run", err))
left = int((open(os.path.join(out, "after-kill.left")).read().strip() or "0"))
others = [c for c in r.get("crashes", []) if c.get("type") != "MEMORY_CORRUPTION"]
check("SIGKILL: the killed run left its domains, the next run cleans them up, says so, and passes",
      killed_left >= 1 and cleaned == killed_left and rc in (0, 1) and not others and left == 0,
      f"{killed_left} left by the kill, {cleaned} cleaned, exit {rc}, findings {[c.get('title') for c in others]}, {left} left after")

print(f"{passed} passed, {failed} failed")
sys.exit(1 if failed else 0)
