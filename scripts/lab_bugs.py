#!/usr/bin/env python3
"""The known-bug benchmark's driver (scripts/lab-bugs.sh runs it; its header has the usage).

Magma's three questions, per run of a bug's kernel with one of its jobs:
  reached   - the bug's code ran: a kretprobe count in run.json's host_trace, or an answer in
              run.json's answers (the registry's "reach");
  triggered - its canary line ("hpthammer-canary: ID triggered") is in the host's log;
  detected  - the harness reported a crash with one of the bug's titles, or for "integrity"
              guest memory mismatches. For a --patch, any crash title or mismatch that the
              stock control did not show.
Detected without triggered is a false positive (reported as such).
"""
import json
import os
import re
import subprocess
import sys
import time

REPO = os.getcwd()
REGISTRY = os.path.join(REPO, "Guests/lab/bugs/registry.json")
# HPTHAMMER_BIN: a binary of your own (a copy, so that a rebuild during a long benchmark does
# not change the harness under it); else this checkout's release build, built first.
HAMMER = os.environ.get("HPTHAMMER_BIN") or os.path.join(REPO, ".build/release/hpthammer")


def die(msg, code):
    print(f"lab-bugs: error: {msg}", file=sys.stderr)
    sys.exit(code)


def log(msg):
    print(f"lab-bugs: {msg}", file=sys.stderr, flush=True)


def parse_args(argv):
    a = {"ids": [], "patches": [], "jobs": [], "runs": 5, "budget": None, "control_runs": 1,
         "json": None}
    i = 0
    def value(flag):
        if i + 1 >= len(argv):
            die(f"{flag} needs a value", 2)
        return argv[i + 1]
    while i < len(argv):
        arg = argv[i]
        if arg in ("-h", "--help"):
            subprocess.run(["sed", "-n", "2,/^set -e/p", "scripts/lab-bugs.sh"])
            sys.exit(0)
        elif arg == "--patch":
            p = value(arg)
            if not (os.path.isfile(p) and p.endswith(".patch")):
                die(f"--patch {p}: not a readable FILE.patch", 2)
            a["patches"].append(os.path.abspath(p))
            i += 2
        elif arg == "--job":
            j = value(arg)
            if not os.path.isfile(j):
                die(f"--job {j}: no such job file", 2)
            a["jobs"].append(os.path.relpath(os.path.abspath(j), REPO))
            i += 2
        elif arg in ("--runs", "--control-runs", "--budget"):
            v = value(arg)
            try:
                n = float(v) if arg == "--budget" else int(v)
            except ValueError:
                die(f"{arg} {v}: not a number", 2)
            if n < (0 if arg == "--control-runs" else 1):
                die(f"{arg} {v}: too small", 2)
            a[{"--runs": "runs", "--control-runs": "control_runs", "--budget": "budget"}[arg]] = n
            i += 2
        elif arg == "--rescore":
            a["rescore"] = os.path.abspath(value(arg))
            i += 2
        elif arg == "--json":
            a["json"] = os.path.abspath(value(arg))
            i += 2
        elif arg.startswith("-"):
            die(f"unknown option {arg} (see scripts/lab-bugs.sh --help)", 2)
        else:
            a["ids"].append(arg)
            i += 1
    return a


def build(patch, bug, config=None):
    """Guests/lab/kernel.sh for one patch (None: stock) and an extra config fragment (a
    lockdep kernel's); returns (vmlinux, modules, release)."""
    cmd = ["bash", "Guests/lab/kernel.sh"] + (["--patch", patch] if patch else []) + \
        (["--config", config] if config else [])
    step = f"building the lab kernel for {bug}" + (f" ({os.path.basename(patch)})" if patch else "") + \
        (f" with {os.path.basename(config)}" if config else "")
    log(step)
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        tail = "\n".join(p.stderr.strip().splitlines()[-3:])
        die(f"{bug}: {step} failed (exit {p.returncode}): {tail}", 2 if p.returncode == 2 else 125)
    env = dict(l.split("=", 1) for l in p.stdout.splitlines() if "=" in l)
    return (env["HPTHAMMER_LAB_HOST_KERNEL"], env["HPTHAMMER_LAB_HOST_MODULES"],
            env["HPTHAMMER_LAB_KERNEL_RELEASE"])


def run(job, kernel, seed, budget, out):
    """One hpthammer run; returns its run.json (with the canaries of its host log) or None."""
    vmlinux, modules, _ = kernel
    cmd = [HAMMER, "run", job, "--seed", str(seed), "--out", out,
           "--host-kernel", vmlinux, "--host-modules", modules]
    if budget:
        cmd += ["--duration", f"{budget:g}s"]
    t0 = time.time()
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    with open(out + ".log", "w") as f:
        f.write(p.stdout)
    r = load(out)
    if r is None:
        log(f"{job} seed {seed}: no run.json (exit {p.returncode}); see {out}.log")
        return None
    r["_exit"], r["_wall_s"] = p.returncode, round(time.time() - t0, 1)
    return r


def job_path(job):
    """raw or libvirt: the route the job's resizes and host invalidations take."""
    with open(os.path.join(REPO, job)) as f:
        for line in f:
            if line.startswith("backend:"):
                return line.split(":", 1)[1].split("#")[0].strip()
    return "raw"


def titles(r):
    return [c["title"] for c in r.get("crashes", []) if not c.get("expected")]


def reached(bug, r):
    """The registry's reach test, or the canary: a bug whose code crashed the host on its
    first call never returned through the kretprobe, but its canary fired first."""
    if r.get("_canaries", {}).get(bug["id"], 0) > 0:
        return True
    reach = bug.get("reach", {})
    calls = (r.get("host_trace") or {}).get("calls", {})
    if "trace" in reach:
        return any(sum(calls.get(f, {}).values()) > 0 for f in reach["trace"])
    if "answer" in reach:
        op, answer = reach["answer"]
        return r.get("answers", {}).get(op, {}).get(answer, 0) > 0 and \
            r.get("resizes", {}).get("succeeded", 0) > 0
    return False


def detected(bug, r, control_titles):
    mismatches = r.get("guests", {}).get("mismatches", 0)
    if bug.get("titles") is None:  # a --patch: anything the control did not show
        return mismatches > 0 or any(t not in control_titles for t in titles(r))
    for pattern in bug["titles"]:
        if pattern == "integrity" and mismatches > 0:
            return True
        if pattern != "integrity" and any(re.search(pattern, t) for t in titles(r)):
            return True
    return False


def score(e, bug, r, control_titles):
    """Adds one run to a bug's entry; False for a run that could not test (no run.json, or
    verdict error)."""
    if r is None or r.get("verdict") == "error":
        e["errors"] += 1
        return False
    e["runs"] += 1
    hit = detected(bug, r, control_titles)
    trig = r["_canaries"].get(bug["id"], 0) > 0
    e["reached"] += reached(bug, r)
    e["triggered"] += trig
    e["detected"] += hit
    e["false_positives"] += hit and bug.get("titles") is not None and not trig
    e["titles"] += titles(r)
    e["mismatches"] += r.get("guests", {}).get("mismatches", 0)
    if hit and r.get("time_to_crash_s") is not None:
        e["time_to_detect_s"].append(r["time_to_crash_s"])
    return True


def score_control(c, r, control_titles):
    """Adds one stock-kernel run to a control entry; its crash titles join the ones a --patch
    must not be credited with."""
    c["runs"] += 1
    c["crashes"] += len(titles(r))
    c["canaries"] += sum(r["_canaries"].values())
    c["titles"] += titles(r)
    control_titles.update(titles(r))


def load(out):
    """A finished run directory as run() returns it (run.json plus the host log's canaries)."""
    try:
        with open(os.path.join(out, "run.json")) as f:
            r = json.load(f)
    except (OSError, ValueError):
        return None
    canaries = {}
    try:
        with open(os.path.join(out, "host.log"), errors="replace") as f:
            for m in re.finditer(r"hpthammer-canary: (\S+) triggered", f.read()):
                canaries[m.group(1)] = canaries.get(m.group(1), 0) + 1
    except OSError:
        pass
    r["_canaries"] = canaries
    return r


def rescore(directory, reg):
    """Scores a finished benchmark's run directories again (after a change to the detector or
    to the registry's titles and reach), and rewrites its bugs.json and bugs.md."""
    path = os.path.join(directory, "bugs.json")
    try:
        with open(path) as f:
            old = json.load(f)
    except (OSError, ValueError) as e:
        die(f"--rescore {directory}: no readable bugs.json ({e})", 2)
    runs_dir = os.path.join(directory, "runs")
    known = {b["id"]: b for b in reg["bugs"]}
    # The benchmark's own wall time stays: rescoring is not part of it.
    doc = dict(old, bugs=[], control=[], _wall=old.get("wall_s"))
    control_titles = set()
    for c in old["control"]:
        c = dict(c, runs=0, crashes=0, canaries=0, titles=[])
        name = os.path.basename(c["job"])[:-5]
        for d in sorted(os.listdir(runs_dir)):
            if re.fullmatch(f"control-{re.escape(name)}-s[0-9]+", d) and (r := load(os.path.join(runs_dir, d))):
                score_control(c, r, control_titles)
        doc["control"].append(c)
    for e in old["bugs"]:
        bug = known.get(e["id"], {"id": e["id"], "titles": None, "reach": {}})
        n = dict(e, runs=0, reached=0, triggered=0, detected=0, false_positives=0, errors=0,
                 time_to_detect_s=[], titles=[], mismatches=0)
        name = os.path.basename(e["job"])[:-5]
        for d in sorted(os.listdir(runs_dir)):
            if re.fullmatch(f"{re.escape(e['id'])}-{re.escape(name)}-s[0-9]+", d):
                score(n, bug, load(os.path.join(runs_dir, d)), control_titles)
        doc["bugs"].append(n)
    doc["rescored"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    save(doc, path)
    print(table(doc), end="")


def table(doc):
    rows = ["| bug | fix | path | kernel | job | runs | reached | triggered | detected | "
            "mean time to detect (s) | titles |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for b in doc["bugs"]:
        t = b["time_to_detect_s"]
        mean = f"{sum(t) / len(t):.1f}" if t else "-"
        rows.append(f"| {b['id']} | {b.get('fix', '-')} | {b['path']} | {b['kernel']} | "
                    f"{os.path.basename(b['job'])} | {b['runs']} | {b['reached']} | "
                    f"{b['triggered']} | {b['detected']} | {mean} | "
                    f"{'; '.join(sorted(set(b['titles']))) or '-'} |")
    rows += ["", "| control kernel | path | job | runs | crashes | canaries |",
             "|---|---|---|---|---|---|"]
    for c in doc["control"]:
        rows.append(f"| {c['kernel']} | {c['path']} | {os.path.basename(c['job'])} | {c['runs']} | "
                    f"{c['crashes']} | {c['canaries']} |")
    for n in doc.get("not_ported", []):
        rows.append(f"\n- {n['id']} ({n['fix']}): not run: {n['why']}")
    return "\n".join(rows) + "\n"


def save(doc, path):
    """Writes bugs.json (atomically) and bugs.md. wall_s: the time since the benchmark began,
    or the one it recorded (`_wall`, a rescore)."""
    doc["wall_s"] = doc["_wall"] if "_wall" in doc else round(time.time() - doc["_t0"], 1)
    clean = {k: v for k, v in doc.items() if not k.startswith("_")}
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(clean, f, indent=2)
    os.replace(tmp, path)
    with open(os.path.splitext(path)[0] + ".md", "w") as f:
        f.write(table(clean))


def main():
    a = parse_args(sys.argv[1:])
    with open(REGISTRY) as f:
        reg = json.load(f)
    if a.get("rescore"):
        rescore(a["rescore"], reg)
        return
    known = {b["id"]: b for b in reg["bugs"]}
    unknown = [i for i in a["ids"] if i not in known]
    if unknown:
        not_ported = {n["id"]: n["why"] for n in reg.get("not_ported", [])}
        why = "; ".join(f"{i}: {not_ported[i]}" if i in not_ported else
                        f"{i}: no such bug (known: {', '.join(known)})" for i in unknown)
        die(f"unknown or not ported bug id: {why}", 2)
    bugs = [known[i] for i in a["ids"]] if a["ids"] or a["patches"] else list(reg["bugs"])
    all_jobs = sorted({j for b in reg["bugs"] for j in b["jobs"]} | set(reg.get("reach_jobs", [])))
    for p in a["patches"]:
        bugs.append({"id": os.path.basename(p)[:-len(".patch")], "patch": p, "jobs": all_jobs,
                     "titles": None, "reach": {"trace": ["kvm_vm_ioctl_resize_hpt_commit",
                                                         "kvm_vm_ioctl_resize_hpt_prepare"]}})
    if a["jobs"]:  # told otherwise: these jobs for every bug
        bugs = [dict(b, jobs=a["jobs"]) for b in bugs]
    if os.environ.get("HPTHAMMER_LAB_BUGS_CHECK_ONLY") == "1":  # the arguments only (tests)
        print(json.dumps({"bugs": [b["id"] for b in bugs], "jobs": sorted({j for b in bugs for j in b["jobs"]})}))
        sys.exit(0)
    if not os.environ.get("HPTHAMMER_BIN") and subprocess.run(
            ["swift", "build", "-c", "release", "--product", "hpthammer"],
            stdout=subprocess.DEVNULL).returncode != 0:
        die("swift build -c release failed", 125)
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
    out_json = a["json"] or os.path.join(REPO, "runs", f"lab-bugs-{stamp}", "bugs.json")
    runs_dir = os.path.join(os.path.dirname(out_json), "runs")
    os.makedirs(runs_dir, exist_ok=True)
    doc = {"bugs": [], "control": [], "_t0": time.time(), "runs_per_bug": a["runs"],
           "budget_s": a["budget"], "not_ported": [] if a["ids"] else reg.get("not_ported", [])}
    # Control first: the stock kernel (with each config the bugs need), every job they run.
    control_titles = set()
    stocks = {}
    for job, config in sorted({(j, b.get("config") or "") for b in bugs for j in b["jobs"]}):
        if config not in stocks:
            stocks[config] = build(None, "the control", config or None)
        stock = stocks[config]
        c = {"kernel": stock[2], "path": job_path(job), "job": job, "runs": 0, "crashes": 0,
             "canaries": 0, "titles": []}
        for seed in range(1, a["control_runs"] + 1):
            r = run(job, stock, seed, a["budget"], os.path.join(
                runs_dir, f"control-{os.path.basename(job)[:-5]}-s{seed}"))
            if r is None:
                continue
            score_control(c, r, control_titles)
            log(f"control {os.path.basename(job)} seed {seed}: {r.get('verdict')}")
        doc["control"].append(c)
        save(doc, out_json)
    for bug in bugs:
        kernel = build(os.path.join(REPO, "Guests/lab/bugs", bug["patch"]) if not
                       os.path.isabs(bug["patch"]) else bug["patch"], bug["id"], bug.get("config"))
        for job in bug["jobs"]:
            e = {"id": bug["id"], "fix": bug.get("fix", "(given with --patch)"), "path": job_path(job),
                 "kernel": kernel[2], "job": job, "runs": 0, "reached": 0, "triggered": 0,
                 "detected": 0, "false_positives": 0, "errors": 0, "time_to_detect_s": [],
                 "titles": [], "mismatches": 0}
            if bug.get("not_detectable_here"):
                e["not_detectable_here"] = bug["not_detectable_here"]
            for seed in range(1, a["runs"] + 1):
                r = run(job, kernel, seed, a["budget"], os.path.join(
                    runs_dir, f"{bug['id']}-{os.path.basename(job)[:-5]}-s{seed}"))
                if not score(e, bug, r, control_titles):
                    continue
                log(f"{bug['id']} {os.path.basename(job)} seed {seed}: {r.get('verdict')} "
                    f"(canaries {r['_canaries']}, titles {titles(r)})")
                save(doc | {"bugs": doc["bugs"] + [e]}, out_json)
            doc["bugs"].append(e)
            save(doc, out_json)
    save(doc, out_json)
    print(table(doc), end="")
    log(f"bugs.json: {out_json} ({doc['wall_s']:.0f} s in all)")
    need = -(-4 * a["runs"] // 5)  # 4 of 5, scaled
    clean = all(c["crashes"] == 0 and c["canaries"] == 0 for c in doc["control"])
    ok = clean and all(e["detected"] >= need for e in doc["bugs"] if not e.get("not_detectable_here"))
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
