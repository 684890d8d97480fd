#!/usr/bin/env python3
"""Boots the HPTHammer guest under QEMU (TCG, pseries, HPT resizing required) and drives its
agent over the console: ready (hash MMU), a memory load, resizes to 22 23 24 23 (success),
17 (EINVAL) and 25 (EPERM), a short policy run, stats, quit. Prints a summary with timings.
Called by test-boot.sh, which builds the guest and installs QEMU.

Usage: test_boot.py KERNEL INITRD WORKDIR
Exit: 0 all answers as expected, 1 an answer was wrong (or the guest crashed or hung),
125 QEMU could not be started."""
import os, queue, re, signal, subprocess, sys, threading, time

PREFIX = "@hpth "
QEMU = os.environ.get("QEMU", "qemu-system-ppc64")
TOTAL_TIMEOUT = int(os.environ.get("HPTHAMMER_TEST_TIMEOUT", "300"))
EINVAL, EPERM = 22, 1
RESIZES = [(22, 0), (23, 0), (24, 0), (23, 0), (17, EINVAL), (25, EPERM)]
OOPS = re.compile(r"Oops:|BUG: |Kernel panic|kernel BUG at|WARNING: CPU:|Unable to handle kernel")


def checksum(text):
    x = 0
    for b in text.encode():
        x ^= b
    return "%02x" % x


def parse_agent_line(line):
    """The agent's part of a console line (kernel text may precede it), checksum verified;
    None if the line has no agent message or a damaged one."""
    i = line.find(PREFIX)
    if i < 0:
        return None
    body = line[i:].rstrip()
    m = re.match(r"^(.*) \*([0-9a-f]{2})$", body)
    if not m or checksum(m.group(1)) != m.group(2):
        return "damaged"
    return m.group(1)[len(PREFIX):].split()


class Guest:
    def __init__(self, kernel, initrd, workdir):
        self.workdir = workdir
        self.qmp = os.path.join(workdir, "qmp.sock")
        self.console = open(os.path.join(workdir, "console.log"), "w")
        self.lines = queue.Queue()
        self.damaged = 0
        self.heartbeats = 0
        self.corrupt = []
        self.oops = []
        cmd = [QEMU,
               "-M", "pseries,resize-hpt=required,x-vof=on,cap-cfpc=broken,cap-sbbc=broken,"
                     "cap-ibs=broken,cap-ccf-assist=off",
               "-cpu", "POWER9", "-m", "1G", "-smp", "2", "-nographic", "-nodefaults",
               "-chardev", "stdio,id=con0,signal=off", "-device", "spapr-vty,chardev=con0",
               "-qmp", "unix:%s,server=on,wait=off" % self.qmp,
               "-kernel", kernel, "-initrd", initrd, "-append", "console=hvc0 disable_radix"]
        self.cmdline = " ".join(cmd)
        self.stderr = open(os.path.join(workdir, "qemu.stderr"), "w")
        self.t0 = time.monotonic()
        try:
            self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                         stderr=self.stderr, start_new_session=True)
        except OSError as e:
            print("test-boot: cannot start %s: %s" % (QEMU, e), file=sys.stderr)
            sys.exit(125)
        threading.Thread(target=self._reader, daemon=True).start()

    def _reader(self):
        buf = b""
        while True:
            chunk = self.proc.stdout.read1(4096)
            if not chunk:
                self.lines.put(None)
                return
            buf += chunk
            while b"\n" in buf:
                raw, buf = buf.split(b"\n", 1)
                line = raw.decode("utf-8", "replace").replace("\r", "")
                t = time.monotonic() - self.t0
                self.console.write("%8.3f %s\n" % (t, line))
                self.console.flush()
                if OOPS.search(line):
                    self.oops.append(line)
                msg = parse_agent_line(line)
                if msg == "damaged":
                    self.damaged += 1
                elif msg:
                    if msg[0] == "hb":
                        self.heartbeats += 1
                        continue
                    if msg[0] == "corrupt":
                        self.corrupt.append(" ".join(msg))
                    self.lines.put((t, msg))

    def send(self, text):
        line = PREFIX + text
        self.proc.stdin.write((line + " *" + checksum(line) + "\n").encode())
        self.proc.stdin.flush()

    def expect(self, what, pred, timeout):
        """The next agent message for which pred(msg) holds; other messages are skipped."""
        end = time.monotonic() + timeout
        while True:
            left = end - time.monotonic()
            if left <= 0:
                raise Failure("timeout (%ds) waiting for %s" % (timeout, what))
            try:
                item = self.lines.get(timeout=min(left, 1.0))
            except queue.Empty:
                if self.oops:
                    raise Failure("guest kernel problem while waiting for %s: %s" % (what, self.oops[0]))
                continue
            if item is None:
                raise Failure("QEMU exited (status %s) while waiting for %s" % (self.proc.wait(), what))
            t, msg = item
            if msg[0] == "err":
                raise Failure("agent error while waiting for %s: %s" % (what, " ".join(msg)))
            if pred(msg):
                return t, msg

    def kill(self):
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait()


class Failure(Exception):
    pass


def main():
    kernel, initrd, workdir = sys.argv[1:4]
    os.makedirs(workdir, exist_ok=True)
    guest = None
    problems, summary = [], []

    def on_signal(signum, frame):
        raise Failure("stopped by signal %d" % signum)
    for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGALRM):
        signal.signal(s, on_signal)
    signal.alarm(TOTAL_TIMEOUT)

    try:
        guest = Guest(kernel, initrd, workdir)
        print("test-boot: %s" % guest.cmdline)
        t_ready, ready = guest.expect("@hpth ready", lambda m: m[0] == "ready", 180)
        _, release, mmu, order, mib, cpus = ready[:6]
        summary.append("boot to ready: %.1f s (kernel %s, mmu %s, hpt_order %s, %s MiB, %s cpus)"
                       % (t_ready, release, mmu, order, mib, cpus))
        if mmu != "hash":
            problems.append("mmu is %s, not hash (disable_radix ignored?)" % mmu)
        if order != "23":
            problems.append("initial hpt_order %s, expected 23 for 1 GiB" % order)

        guest.send("load 2 64")
        guest.expect("loading", lambda m: m[0] == "loading", 30)
        summary.append("memory load: 2 threads x 64 MiB")

        for want, errno in RESIZES:
            t1 = time.monotonic()
            guest.send("resize %d" % want)
            _, r = guest.expect("resized %d" % want, lambda m: m[0] == "resized" and m[1] == str(want), 60)
            seen = (time.monotonic() - t1) * 1000
            order_, err, total, prep, commit = (int(x) for x in r[1:6])
            ok = err == errno
            if ok and errno == 0 and (prep < 0 or commit < 0):
                ok = False
                problems.append("resize %d: no 'HPT resize ... complete' message read from /dev/kmsg" % want)
            if ok and errno == 0:
                guest.send("order")
                _, o = guest.expect("order", lambda m: m[0] == "order", 10)
                if int(o[1]) != want:
                    ok = False
                    problems.append("resize %d succeeded but hpt_order reads %s" % (want, o[1]))
            if err != errno:
                problems.append("resize %d: errno %d (%s), expected %d" % (want, err, r[6], errno))
            summary.append("resize %-2d -> %-6s (want %-6s) agent %4d ms, prepare %3d ms, commit %3d ms, "
                           "seen by driver %5.0f ms  %s"
                           % (want, r[6], "OK" if errno == 0 else {EINVAL: "EINVAL", EPERM: "EPERM"}[errno],
                              total, prep, commit, seen, "ok" if ok else "WRONG"))

        t1 = time.monotonic()
        guest.send("policy same 22 24 6")
        guest.expect("policy started", lambda m: m[:2] == ["policy", "started"], 10)
        _, d = guest.expect("policy done", lambda m: m[:2] == ["policy", "done"], 120)
        summary.append("policy same x6: %s done, %s ok, %s failed in %.1f s"
                       % (d[2], d[3], d[4], time.monotonic() - t1))
        if d[3] != "6":
            problems.append("policy same 22 24 6: %s of 6 succeeded" % d[3])

        guest.send("stats")
        _, st = guest.expect("stats", lambda m: m[0] == "stats", 20)
        stats = dict(kv.split("=", 1) for kv in st[1:] if "=" in kv)
        summary.append("stats: " + " ".join(st[1:]))
        if int(stats.get("pages", 0)) <= 0:
            problems.append("the memory load verified no pages")
        if int(stats.get("mismatches", 0)) != 0:
            problems.append("memory load mismatches: %s" % stats["mismatches"])

        guest.send("quit")
        guest.expect("bye", lambda m: m[0] == "bye", 30)
        try:
            rc = guest.proc.wait(timeout=30)
            summary.append("guest powered off, QEMU exit status %d, total %.1f s" % (rc, time.monotonic() - guest.t0))
        except subprocess.TimeoutExpired:
            problems.append("QEMU did not exit within 30 s of quit (poweroff)")
        if guest.heartbeats == 0:
            problems.append("no heartbeat seen")
        summary.append("heartbeats: %d, damaged agent lines: %d" % (guest.heartbeats, guest.damaged))
    except Failure as e:
        problems.append(str(e))
    finally:
        signal.alarm(0)
        if guest:
            guest.kill()
            problems += ["memory corruption: " + c for c in guest.corrupt]
            problems += ["guest kernel: " + o for o in guest.oops[:5]]

    print("test-boot: summary")
    for s in summary:
        print("  " + s)
    print("  console log: %s" % os.path.join(workdir, "console.log"))
    if problems:
        for p in problems:
            print("test-boot: FAIL: " + p)
        return 1
    print("test-boot: PASS")
    return 0


if __name__ == "__main__":
    sys.exit(main())
