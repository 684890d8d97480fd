#!/usr/bin/env python3
"""Boots an HPT guest (L2) through libvirt (domain type kvm) in the running lab host, resizes its
HPT through the guest agent, and proves with kprobes/ftrace in the lab's kernel (L1) that the
real kvm-hv resize ioctls ran. Run by `run.sh l2test`; needs virsh (libvirt client) here.

The domain XML has the shape Sources/Libvirt/HPTDomain.swift gives a type-kvm guest, plus the
spectre capabilities lowered (cfpc/sbbc/ibs broken, ccf-assist off): kvm-hv in the emulated POWER9
reports none of them, and QEMU refuses to start otherwise ("Requested safe cache capability level
not supported by KVM"). The agent is
reached the way the harness reaches it: the guest console, here through `virsh console` in a pty.
Exit 0: the guest booted with kvm, every resize of 22/23/24/23 answered 0, and the kernel saw
PREPARE and COMMIT calls; 1 otherwise."""
import argparse, functools, operator, os, pty, re, select, shlex, statistics, subprocess, sys, time

NAME = "hpthammer-l2test"
GUEST_KERNEL = "/var/lib/hpthammer/guest/vmlinux"
GUEST_INITRD = "/var/lib/hpthammer/guest/initrd.cpio.gz"

# kprobes in the lab's kernel (L1) on kvm-hv's resize path. The ioctl handlers take
# (struct kvm *, struct kvm_ppc_resize_hpt *): on ppc64 ELFv2 the second argument is in r4
# (6.1 has no $argN on powerpc), {u64 flags; u32 shift} at +0 and +8. kprobe_profile counts hits.
TRACE_SETUP = r"""
set -e
cd /sys/kernel/tracing
echo 0 > tracing_on
echo 0 > events/enable
[ -d events/hpth ] && echo 0 > events/hpth/enable
echo > kprobe_events
echo > trace
echo 'p:hpth/prepare kvm_vm_ioctl_resize_hpt_prepare flags=+0(%gpr4):u64 shift=+8(%gpr4):u32' >> kprobe_events
echo 'r:hpth/prepare_ret kvm_vm_ioctl_resize_hpt_prepare ret=$retval:s64' >> kprobe_events
echo 'p:hpth/commit kvm_vm_ioctl_resize_hpt_commit flags=+0(%gpr4):u64 shift=+8(%gpr4):u32' >> kprobe_events
echo 'r:hpth/commit_ret kvm_vm_ioctl_resize_hpt_commit ret=$retval:s64' >> kprobe_events
for f in resize_hpt_prepare_work resize_hpt_release resize_hpt_boot_vcpu; do
  echo "p:hpth/$f $f" >> kprobe_events 2>/dev/null || echo "l2test: no kprobe on $f (inlined?)" >&2
done
echo 4096 > buffer_size_kb
echo 1 > events/hpth/enable
echo 1 > tracing_on
echo "kprobes set: $(grep -c . kprobe_events) on kvm-hv's resize path"
"""

TRACE_REPORT = r"""
cd /sys/kernel/tracing
echo 0 > tracing_on
echo "== kprobe_profile (probe, hits, misses)"
cat kprobe_profile
echo "== return values"
grep 'prepare_ret:' trace | sed 's/.*ret=/prepare ret=/' | sort | uniq -c
grep 'commit_ret:' trace | sed 's/.*ret=/commit ret=/' | sort | uniq -c
echo "== requested shifts"
grep -E 'hpth/prepare: |prepare: \(' trace | sed 's/.*shift=/prepare shift=/' | sort | uniq -c
grep -E 'commit: \(' trace | sed 's/.*shift=/commit shift=/' | sort | uniq -c
echo "== first events"
grep -v '^#' trace | head -8
echo "== L1 kernel log"
dmesg | grep -iE 'kvm|hpt|oops|bug|warn' | tail -8
"""


def xml(memory_mib, vcpus, console_log, vof):
    # x-vof=on: QEMU's VOF instead of SLOF (kernel loaded directly; as the TCG guests do).
    extra = ("  <qemu:commandline>\n    <qemu:arg value='-machine'/>\n    <qemu:arg value='x-vof=on'/>\n"
             "  </qemu:commandline>\n") if vof else ""
    return f"""<domain type='kvm' xmlns:qemu='http://libvirt.org/schemas/domain/qemu/1.0'>
  <name>{NAME}</name>
  <maxMemory slots='4' unit='MiB'>{memory_mib * 4}</maxMemory>
  <memory unit='MiB'>{memory_mib}</memory>
  <vcpu>{vcpus}</vcpu>
  <os>
    <type arch='ppc64le' machine='pseries'>hvm</type>
    <kernel>{GUEST_KERNEL}</kernel>
    <initrd>{GUEST_INITRD}</initrd>
    <cmdline>console=hvc0 disable_radix</cmdline>
  </os>
  <features>
    <hpt resizing='required'>
      <maxpagesize unit='KiB'>64</maxpagesize>
    </hpt>
    <ccf-assist state='off'/>
    <cfpc value='broken'/>
    <sbbc value='broken'/>
    <ibs value='broken'/>
  </features>
  <cpu mode='host-passthrough'>
    <numa>
      <cell id='0' cpus='0-{vcpus - 1}' memory='{memory_mib}' unit='MiB'/>
    </numa>
  </cpu>
  <on_crash>destroy</on_crash>
  <devices>
    <serial type='pty'>
      <log file='{console_log}' append='off'/>
      <target type='spapr-vio-serial' port='0'>
        <model name='spapr-vty'/>
      </target>
    </serial>
    <console type='pty'>
      <target type='serial' port='0'/>
    </console>
    <memballoon model='none'/>
  </devices>
{extra}</domain>
"""


def checksum_ok(line):
    if " *" not in line:
        return False
    body, _, cs = line.rpartition(" *")
    return cs[:2] == "%02x" % functools.reduce(operator.xor, body.encode(), 0)


class Console:
    """`virsh console` (or `start --console`) in a pty; agent lines out, everything logged."""

    def __init__(self, argv, logpath):
        self.pid, self.fd = pty.fork()
        if self.pid == 0:
            os.execvp(argv[0], argv)
        self.buf = b""
        self.log = open(logpath, "wb")
        self.t0 = time.monotonic()
        self.marks = {}

    def lines(self, timeout):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            r, _, _ = select.select([self.fd], [], [], min(1.0, end - time.monotonic()))
            if not r:
                continue
            try:
                data = os.read(self.fd, 4096)
            except OSError:
                return
            if not data:
                return
            self.log.write(data)
            self.log.flush()
            self.buf += data
            while b"\n" in self.buf:
                raw, self.buf = self.buf.split(b"\n", 1)
                text = raw.decode("utf-8", "replace").replace("\r", "")
                now = time.monotonic() - self.t0
                for mark, pat in (("slof", "SLOF"), ("kernel", "Linux version"),
                                  ("init", "Run /init"), ("agent", "hpthammer-init: starting agent")):
                    if pat in text and mark not in self.marks:
                        self.marks[mark] = now
                i = text.find("@hpth ")
                if i >= 0 and checksum_ok(text[i:]):
                    yield text[i:].rpartition(" *")[0].split()[1:]

    def wait(self, word, timeout):
        for fields in self.lines(timeout):
            if fields and fields[0] == word:
                return fields
        return None

    def send(self, text):
        os.write(self.fd, ("@hpth " + text + "\n").encode())

    def close(self):
        try:
            os.kill(self.pid, 15)
            os.waitpid(self.pid, 0)
        except OSError:
            pass


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--uri", required=True)
    ap.add_argument("--ssh", required=True, help="ssh command line to the lab host")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--memory", type=int, default=1024)
    ap.add_argument("--vcpus", type=int, default=1)
    ap.add_argument("--out", default=".")
    ap.add_argument("--vof", action="store_true", help="boot L2 with x-vof=on instead of SLOF")
    a = ap.parse_args()
    ssh = shlex.split(a.ssh)
    virsh = ["virsh", "-q", "-c", a.uri]

    def lab(script, check=True):
        p = subprocess.run(ssh + ["sh -s"], input=script, text=True, capture_output=True)
        if check and p.returncode != 0:
            sys.exit(f"l2test: in the lab: {p.stderr.strip() or p.stdout.strip()}")
        return p.stdout + p.stderr

    subprocess.run(virsh + ["destroy", NAME], capture_output=True)
    subprocess.run(virsh + ["undefine", NAME], capture_output=True)
    print("l2test: " + lab(TRACE_SETUP).strip().replace("\n", "\nl2test: "))
    console_log = "/var/log/hpthammer/l2test-console.log"
    xmlpath = os.path.join(a.out, "l2test.xml")
    with open(xmlpath, "w") as f:
        f.write(xml(a.memory, a.vcpus, console_log, a.vof))
    p = subprocess.run(virsh + ["define", xmlpath], capture_output=True, text=True)
    if p.returncode:
        sys.exit(f"l2test: virsh define: {p.stderr.strip()}")
    t0 = time.monotonic()
    con = Console(virsh + ["start", NAME, "--console", "--force-boot"], os.path.join(a.out, "l2test-console.log"))
    ok = True
    try:
        ready = con.wait("ready", 600)
        t_ready = time.monotonic() - t0
        if not ready:
            sys.exit(f"l2test: no agent 'ready' within 600 s (see {a.out}/l2test-console.log, "
                     f"and in the lab {console_log}, /var/log/libvirt/qemu/{NAME}.log)")
        print(f"l2test: L2 booted (virsh start to agent ready {t_ready:.1f} s; marks since start: " +
              ", ".join(f"{k} {v:.1f} s" for k, v in con.marks.items()) + f"); ready {' '.join(ready)}")
        if ready[2] != "hash":
            print("l2test: FAIL: the guest runs radix, not hash"); ok = False
        dominfo = subprocess.run(virsh + ["dumpxml", NAME], capture_output=True, text=True).stdout
        print("l2test: domain type: " + (re.search(r"<domain type='(\w+)'", dominfo) or [None, "?"])[1])
        con.send("load 1 64 1")
        print("l2test: " + " ".join(con.wait("loading", 60) or ["no answer to load"]))
        seen, rows = [], []
        for r in range(a.rounds):
            for order in (22, 23, 24, 23):
                ts = time.monotonic()
                con.send(f"resize {order}")
                ans = con.wait("resized", 300)
                dt = (time.monotonic() - ts) * 1000
                if not ans:
                    print(f"l2test: FAIL: no answer to resize {order}"); ok = False; break
                rows.append(ans)
                seen.append(dt)
                print(f"l2test: resize {order}: errno {ans[2]} ({ans[6]}), guest {ans[3]} ms "
                      f"(prepare {ans[4]} ms, commit {ans[5]} ms), seen from here {dt:.0f} ms")
                if ans[2] != "0":
                    ok = False
        con.send("stats")
        c = con.wait("counters", 60)
        print("l2test: " + " ".join(c or ["no counters"]))
        if c and "mismatches=0" not in c:
            ok = False
        con.send("quit")
        con.wait("bye", 60)
        if rows:
            g = [int(x[3]) for x in rows if x[2] == "0"]
            pr = [int(x[4]) for x in rows if x[2] == "0"]
            cm = [int(x[5]) for x in rows if x[2] == "0"]
            if g:
                print(f"l2test: {len(g)}/{len(rows)} resizes ok; guest ms median {statistics.median(g)} "
                      f"min {min(g)} max {max(g)}; prepare median {statistics.median(pr)}, commit median "
                      f"{statistics.median(cm)}; seen from here median {statistics.median(seen):.0f} ms")
    finally:
        con.close()
        time.sleep(2)
        subprocess.run(virsh + ["destroy", NAME], capture_output=True)
        subprocess.run(virsh + ["undefine", NAME], capture_output=True)
    report = lab(TRACE_REPORT, check=False)
    print(report)
    with open(os.path.join(a.out, "l2test-trace.txt"), "w") as f:
        f.write(report)
    m = re.search(r"^\s*commit\s+(\d+)", report, re.M)
    if not m or int(m.group(1)) == 0:
        print("l2test: FAIL: no kvm_vm_ioctl_resize_hpt_commit call in the lab's kernel"); ok = False
    print("l2test: " + ("PASS" if ok else "FAIL"))
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
