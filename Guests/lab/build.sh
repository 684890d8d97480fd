#!/usr/bin/env bash
# Builds the HPTHammer lab host: an emulated POWER9 bare-metal host (QEMU >= 8.1, machine
# powernv9, TCG on x86) that runs Debian's ppc64el kernel with the real kvm-hv module, QEMU 7.2,
# libvirtd and an ssh server, and holds the HPTHammer guest image (Guests/build.sh) for L2
# guests. Everything comes from Debian packages (apt-get download + dpkg -x, nothing installed
# into the host) and is cached under ${HPTHAMMER_LAB_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/hpthammer/lab};
# a step runs only when its output is missing or one of its inputs changed. Never writes into git.
#
# Prints on stdout (messages go to stderr):
#   HPTHAMMER_LAB_QEMU=...          L0: qemu-system-ppc64 (>= 8.1) to run on x86
#   HPTHAMMER_LAB_QEMU_DATADIR=...  its firmware directory (-L; skiboot.lid)
#   HPTHAMMER_LAB_QEMU_LIBS=...     LD_LIBRARY_PATH for it (empty when the host has its libraries)
#   HPTHAMMER_LAB_KERNEL=...        the lab host's kernel (vmlinux, PowerNV-capable)
#   HPTHAMMER_LAB_INITRD=...        the lab host's initramfs (cpio, gzip; < 128 MiB)
#   HPTHAMMER_LAB_KEY=...           the ssh key for root@lab (private; .pub next to it)
#   HPTHAMMER_LAB_HOSTKEY_PUB=...   the lab's ssh host key (for known_hosts)
#   HPTHAMMER_LAB_GUEST_KERNEL=...  the L2 guest kernel, as a path inside the lab
#   HPTHAMMER_LAB_GUEST_INITRD=...  the L2 guest initramfs, as a path inside the lab
#   HPTHAMMER_LAB_KERNEL_RELEASE=... uname -r of the lab host's kernel
# Options: --host-kernel VMLINUX --host-modules DIR (or HPTHAMMER_LAB_HOST_KERNEL /
# HPTHAMMER_LAB_HOST_MODULES): a lab kernel of your own instead of Debian's: a PowerNV-capable
# ppc64le vmlinux (ELF) and its modules, DIR being either the lib/modules/VERSION tree of
# `make modules_install INSTALL_MOD_PATH=X` or that X; kvm.ko and kvm-hv.ko come from DIR and
# VERSION must be the vmlinux's. The image is cached per kernel + modules (README: "A kernel of
# your own").
# Environment: HPTHAMMER_LAB_CACHE (cache), HPTHAMMER_LAB_QEMU (an L0 QEMU of your own, >= 8.1,
# instead of the backports one), HPTHAMMER_LAB_QEMU_DATADIR (its firmware dir),
# HPTHAMMER_LAB_MIRROR (Debian mirror, default http://deb.debian.org), HPTHAMMER_LAB_APT_UPDATE=1
# (refresh the private apt lists now; otherwise weekly). HPTHAMMER_CACHE etc. go to Guests/build.sh.
# Exit codes: 0 built (or cached), 125 a tool or package is missing (the message says what to
# do), other: a build step failed.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
cache=${HPTHAMMER_LAB_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/hpthammer/lab}
mirror=${HPTHAMMER_LAB_MIRROR:-http://deb.debian.org}
log() { echo "lab/build.sh: $*" >&2; }
die() { echo "lab/build.sh: error: $1" >&2; exit "${2:-1}"; }
missing() { die "$1 not found. $2" 125; }
t0=$(date +%s.%N)

hostkernel=${HPTHAMMER_LAB_HOST_KERNEL:-}
hostmods=${HPTHAMMER_LAB_HOST_MODULES:-}
while [ $# -gt 0 ]; do
  case "$1" in
    --host-kernel) [ $# -ge 2 ] || die "--host-kernel needs a path (a vmlinux)" 2; hostkernel=$2; shift 2 ;;
    --host-kernel=*) hostkernel=${1#*=}; shift ;;
    --host-modules) [ $# -ge 2 ] || die "--host-modules needs a directory" 2; hostmods=$2; shift 2 ;;
    --host-modules=*) hostmods=${1#*=}; shift ;;
    -h|--help) sed -n '2,/^set -e/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2; exit 0 ;;
    *) die "unknown argument '$1' (build.sh [--host-kernel VMLINUX --host-modules DIR])" 2 ;;
  esac
done
if [ -n "$hostkernel" ] || [ -n "$hostmods" ]; then
  [ -n "$hostkernel" ] && [ -n "$hostmods" ] ||
    die "give --host-kernel and --host-modules together (or HPTHAMMER_LAB_HOST_KERNEL and HPTHAMMER_LAB_HOST_MODULES): kvm-hv.ko must come from the same build as the kernel" 2
fi

# --- tools ---------------------------------------------------------------------------------
for t in apt-get apt-cache dpkg dpkg-deb; do
  command -v "$t" >/dev/null || missing "$t" "This recipe needs a Debian/Ubuntu host (apt and dpkg)."
done
command -v python3 >/dev/null || missing python3 "Install it: apt-get install -y python3"
command -v depmod >/dev/null || [ -x /sbin/depmod ] || missing depmod "Install it: apt-get install -y kmod"
depmod=$(command -v depmod || echo /sbin/depmod)
command -v ssh-keygen >/dev/null || missing ssh-keygen "Install it: apt-get install -y openssh-client"
for t in gzip sha256sum; do
  command -v "$t" >/dev/null || missing "$t" "Install it: apt-get install -y ${t/sha256sum/coreutils}"
done
[ -r /usr/share/keyrings/debian-archive-keyring.gpg ] ||
  missing /usr/share/keyrings/debian-archive-keyring.gpg "Install it: apt-get install -y debian-archive-keyring"
mkdir -p "$cache"/{debs,unpacked,keys,apt/lists/partial,apt/cache/archives/partial,apt/preferences.d} ||
  die "cannot create the cache directory $cache" 125

# --- the guest image (issue 4), and the kernel package it unpacked --------------------------
log "guest image: Guests/build.sh"
gout=$("$here/../build.sh") || die "Guests/build.sh failed (exit $?); run it alone to see why" 125
gkernel=$(sed -n 's/^HPTHAMMER_GUEST_KERNEL=//p' <<<"$gout")
ginitrd=$(sed -n 's/^HPTHAMMER_GUEST_INITRD=//p' <<<"$gout")
grelease=$(sed -n 's/^HPTHAMMER_GUEST_VERSION=//p' <<<"$gout")
[ -s "$gkernel" ] && [ -s "$ginitrd" ] && [ -n "$grelease" ] || die "Guests/build.sh printed no kernel/initrd"
gcache=$(dirname "$gkernel")
bbroot=$(ls -d "$gcache"/unpacked/busybox-static_*/ 2>/dev/null | tail -1 || true)
[ -x "$bbroot/bin/busybox" ] || die "no unpacked busybox-static under $gcache/unpacked (rerun Guests/build.sh)"

# --- the lab kernel and its modules: Debian's (the guest's package) or the developer's --------
# Sets: kimage (vmlinux), release (its uname -r), mtree (its lib/modules/$release, with a
# modules.dep), khash (identifies kernel + modules for the cache).
banner_release() { # the version in a vmlinux's linux_banner ("Linux version 6.1.176-lab (...")
  LC_ALL=C grep -a -o -m1 'Linux version [^ ]* (' "$1" 2>/dev/null | sed -n 1p | sed 's/^Linux version //; s/ ($//'
}
if [ -z "$hostkernel" ]; then
  release=$grelease
  kimage=$gkernel
  mroot=$(ls -d "$gcache"/unpacked/linux-image-"$release"_*/ 2>/dev/null | tail -1 || true)
  [ -n "$mroot" ] && [ -d "$mroot/lib/modules/$release" ] ||
    die "no unpacked kernel package for $release under $gcache/unpacked (delete $gcache/unpacked and rerun)"
  mroot=${mroot%/}
  [ -s "$mroot/lib/modules/$release/modules.dep" ] || "$depmod" -b "$mroot" "$release" ||
    die "depmod -b $mroot $release failed"
  mtree=$mroot/lib/modules/$release
  khash=debian
else
  kimage=$(readlink -f "$hostkernel" 2>/dev/null || true)
  [ -n "$kimage" ] && [ -f "$kimage" ] && [ -r "$kimage" ] || die "--host-kernel $hostkernel: no such file" 2
  # An ELF64 little-endian PowerPC (e_machine 21) file: skiboot loads vmlinux, not a zImage/bzImage.
  [ "$(od -An -tx1 -N6 "$kimage" | tr -d ' \n')" = 7f454c460201 ] &&
    [ "$(od -An -tu2 -j18 -N2 "$kimage" | tr -d ' ')" = 21 ] ||
    die "--host-kernel $hostkernel is not a ppc64le ELF vmlinux ($(file -b "$kimage" 2>/dev/null | cut -c1-80)).
  Give the vmlinux at the top of the kernel build tree (ARCH=powerpc, little endian), not arch/powerpc/boot/zImage." 2
  release=$(banner_release "$kimage")
  [ -n "$release" ] || die "--host-kernel $hostkernel: no 'Linux version ...' banner in it; is it a kernel?" 2
  LC_ALL=C grep -a -q -m1 'ibm,powernv' "$kimage" ||
    die "--host-kernel $hostkernel (version $release) has no PowerNV platform support (no 'ibm,powernv' in it):
  build it with CONFIG_PPC_POWERNV=y (start from powernv_defconfig; see Guests/lab/README.md)" 2
  [ -d "$hostmods" ] || die "--host-modules $hostmods: no such directory" 2
  hm=$(cd "$hostmods" && pwd -P)
  # Which form: a lib/modules/VERSION tree (modules_install's output) or its INSTALL_MOD_PATH root.
  if [ -e "$hm/modules.order" ] || [ -e "$hm/modules.dep" ] || [ -d "$hm/kernel" ]; then
    mform="a lib/modules/VERSION tree"
    mversion=$(basename "$hm")
    mdirpath=$hm
  elif [ -d "$hm/lib/modules" ]; then
    mform="a modules_install root: X of INSTALL_MOD_PATH=X"
    versions=$(cd "$hm/lib/modules" && ls -1)
    if [ -d "$hm/lib/modules/$release" ]; then mversion=$release
    elif [ "$(wc -w <<<"$versions")" = 1 ]; then mversion=$versions
    else
      die "--host-modules $hostmods is $mform, but has no lib/modules/$release (the kernel's version);
  it has: $(echo $versions)" 2
    fi
    mdirpath=$hm/lib/modules/$mversion
  else
    die "--host-modules $hostmods is neither a lib/modules/VERSION tree (no modules.order, modules.dep or
  kernel/ in it) nor a modules_install root (no lib/modules/ in it). Give the X of
  'make modules_install INSTALL_MOD_PATH=X', or X/lib/modules/VERSION" 2
  fi
  [ "$mversion" = "$release" ] ||
    die "--host-kernel $hostkernel is version $release, but --host-modules $hostmods ($mform) is for
  version $mversion: kernel and modules must come from the same build (make vmlinux modules, then
  modules_install, with the same .config and LOCALVERSION)" 2
  for m in kvm kvm-hv; do
    f=$(find "$mdirpath" -name "$m.ko" -o -name "${m/-/_}.ko" 2>/dev/null | sed -n 1p)
    if [ -z "$f" ]; then
      fz=$(find "$mdirpath" -name "$m.ko.*" -o -name "${m/-/_}.ko.*" 2>/dev/null | sed -n 1p)
      [ -z "$fz" ] || die "--host-modules $hostmods ($mform): $m is compressed ($fz); the lab's busybox
  modprobe needs plain .ko files: build with CONFIG_MODULE_COMPRESS_NONE=y" 2
      die "--host-modules $hostmods ($mform, version $mversion) has no $m.ko: kvm.ko and kvm-hv.ko must be
  modules of this build (CONFIG_KVM_BOOK3S_64=m, CONFIG_KVM_BOOK3S_64_HV=m; see Guests/lab/README.md)" 2
    fi
    vm=$(modinfo -F vermagic "$f" 2>/dev/null | cut -d' ' -f1 || true)
    [ -z "$vm" ] || [ "$vm" = "$release" ] ||
      die "$f was built for $vm (its vermagic), not for the kernel's $release: rebuild modules with the kernel" 2
  done
  # The modules' identity: every file's path, size and time (sha256 of all of them would take long).
  mid=$( (cd "$mdirpath" && find . -type f -printf '%p %s %T@\n' | sort) | sha256sum | cut -c1-16)
  kid=$(sha256sum "$kimage" | cut -c1-16)
  khash=$kid-$mid
  # Its modules.dep (modules_install runs depmod) says what kvm-hv needs; without one, depmod -b
  # here, into a copy in the cache (never into the developer's tree). The image's own modules.dep
  # is made by depmod -b on the stage below either way.
  if [ -s "$mdirpath/modules.dep" ]; then mtree=$mdirpath
  else
    mroot="$cache/kernels/$release-$khash/root"
    if [ ! -e "$mroot/.done" ]; then
      log "lab kernel $release: no modules.dep in $mdirpath ($mform); depmod -b on a copy"
      rm -rf "$mroot" && mkdir -p "$mroot/lib/modules"
      cp -a "$mdirpath" "$mroot/lib/modules/$release"
      rm -f "$mroot/lib/modules/$release"/{build,source}
      "$depmod" -b "$mroot" "$release" || die "depmod -b $mroot $release failed (the modules of $hostmods)"
      touch "$mroot/.done"
    fi
    mtree=$mroot/lib/modules/$release
  fi
fi
mdir="lib/modules/$release"
# The modules /init loads (modprobe kvm-hv; e1000e may be built in) and what they depend on.
mods="kvm-hv e1000e"
want=$(python3 - "$mtree" $mods <<'PY'
import os, sys
d = sys.argv[1]
dep = {}
for line in open(os.path.join(d, "modules.dep")):
    m, _, rest = line.partition(":")
    dep[m.strip()] = rest.split()
def name(p): return os.path.basename(p).split(".ko")[0].replace("_", "-")
byname = {name(m): m for m in dep}
builtin = set()
if os.path.exists(os.path.join(d, "modules.builtin")):
    builtin = {name(l.strip()) for l in open(os.path.join(d, "modules.builtin")) if l.strip()}
todo, seen = [], set()
for n in sys.argv[2:]:
    n = n.replace("_", "-")
    if n in byname: todo.append(byname[n])
    elif n not in builtin:
        sys.exit("lab/build.sh: error: %s is neither a module in %s/modules.dep nor built in (modules.builtin)" % (n, d))
while todo:
    m = todo.pop()
    if m not in seen:
        seen.add(m); todo += dep[m]
print("\n".join(sorted(seen)))
PY
) || exit 125

# --- a private apt (bookworm + backports, amd64 + ppc64el): the host's apt state is untouched -
aptdir="$cache/apt"
cat >"$aptdir/sources.list.new" <<EOF
deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $mirror/debian bookworm main
deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $mirror/debian bookworm-updates main
deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $mirror/debian-security bookworm-security main
deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $mirror/debian bookworm-backports main
EOF
if cmp -s "$aptdir/sources.list.new" "$aptdir/sources.list"; then rm "$aptdir/sources.list.new"
else mv "$aptdir/sources.list.new" "$aptdir/sources.list"; rm -f "$aptdir/updated"; fi
aptopts=(-o "Dir::Etc::SourceList=$aptdir/sources.list" -o Dir::Etc::SourceParts=/nonexistent
  -o "Dir::State::Lists=$aptdir/lists" -o "Dir::Cache=$aptdir/cache"
  -o "Dir::Etc::Preferences=$aptdir/preferences" -o "Dir::Etc::PreferencesParts=$aptdir/preferences.d"
  -o APT::Architectures::=amd64 -o APT::Architectures::=ppc64el -o Debug::NoLocking=1)
[ "$(id -u)" = 0 ] && aptopts+=(-o APT::Sandbox::User=root)
if [ "${HPTHAMMER_LAB_APT_UPDATE:-0}" = 1 ] || [ -z "$(find "$aptdir/updated" -mtime -7 2>/dev/null)" ]; then
  log "apt-get update (private lists in $aptdir)"
  if apt-get "${aptopts[@]}" update -q >"$aptdir/update.log" 2>&1; then touch "$aptdir/updated"
  else
    grep -E '^(E|Err):' "$aptdir/update.log" | sed -n 1,3p | sed 's/^/lab\/build.sh:   /' >&2 || true
    if ls "$aptdir"/lists/*_Packages* >/dev/null 2>&1; then
      log "apt-get update had errors (full log: $aptdir/update.log); going on with the lists it has"
      touch "$aptdir/updated"
    else
      die "apt-get update failed and there are no package lists yet (network? mirror $mirror; see $aptdir/update.log)" 125
    fi
  fi
fi
apt_() { apt-get "${aptopts[@]}" "$@"; }

# download PKG[:ARCH][=VER]... into debs/ (skipping the ones there); sets $debs to their files
download() {
  local uris want=() f
  uris=$(apt_ download --print-uris "$@" 2>"$cache/download.err") ||
    die "apt cannot resolve: $* ($(tail -1 "$cache/download.err"))
  Try: HPTHAMMER_LAB_APT_UPDATE=1 $0" 125
  debs=()
  while read -r _ f _; do
    debs+=("$cache/debs/$f")
    [ -s "$cache/debs/$f" ] || want+=("$f")
  done <<<"$uris"
  if [ ${#want[@]} -gt 0 ]; then
    log "downloading ${#want[@]} packages"
    (cd "$cache/debs" && apt_ download -q "$@" >/dev/null 2>"$cache/download.err") ||
      die "apt-get download failed: $(grep -E '^E:' "$cache/download.err" | sed -n 1,2p)" 125
  fi
}
# unpack DEB... into unpacked/NAME/ (cached); sets $trees
unpack() {
  local d n
  trees=()
  for d in "$@"; do
    n=$(basename "$d" .deb)
    if [ ! -e "$cache/unpacked/$n/.done" ]; then
      rm -rf "$cache/unpacked/$n" && mkdir -p "$cache/unpacked/$n"
      dpkg -x "$d" "$cache/unpacked/$n" || die "dpkg -x $d failed (a damaged download? delete it and retry)"
      touch "$cache/unpacked/$n/.done"
    fi
    trees+=("$cache/unpacked/$n")
  done
}

# --- L0: QEMU >= 8.1 for x86 (powernv9 with a kvm-hv-capable CPU model) ---------------------
qemu_ok() { # qemu_ok BINARY: its version is >= 8.1
  local v
  v=$(LD_LIBRARY_PATH=${l0libs:-} "$1" --version 2>/dev/null | sed -n 's/^QEMU emulator version \([0-9]*\)\.\([0-9]*\).*/\1 \2/p')
  [ -n "$v" ] && set -- $v && { [ "$1" -gt 8 ] || { [ "$1" = 8 ] && [ "$2" -ge 1 ]; }; }
}
l0libs=
if [ -n "${HPTHAMMER_LAB_QEMU:-}" ]; then
  l0=$HPTHAMMER_LAB_QEMU
  l0data=${HPTHAMMER_LAB_QEMU_DATADIR:-$(dirname "$(dirname "$(readlink -f "$l0")")")/share/qemu}
  qemu_ok "$l0" || die "HPTHAMMER_LAB_QEMU=$l0 is not a QEMU >= 8.1 ($("$l0" --version 2>&1 | sed -n 1p))" 125
else
  l0ver=$(apt-cache "${aptopts[@]}" madison qemu-system-ppc 2>/dev/null |
    awk -F' *[|] *' '$3 ~ /backports.*amd64/ {print $2; exit}')
  [ -n "$l0ver" ] || die "no QEMU >= 8.1 for the lab's L0: bookworm-backports has no qemu-system-ppc for amd64 in
  $aptdir (offline?). Get one of these:
  - rerun with HPTHAMMER_LAB_APT_UPDATE=1 (network to $mirror);
  - system-wide: add 'deb $mirror/debian bookworm-backports main' to /etc/apt/sources.list.d/ and
    apt-get install -t bookworm-backports qemu-system-ppc, then HPTHAMMER_LAB_QEMU=/usr/bin/qemu-system-ppc64;
  - or build QEMU >= 8.1 with --target-list=ppc64-softmmu and set HPTHAMMER_LAB_QEMU to it." 125
  download "qemu-system-ppc:amd64=$l0ver" "qemu-system-data=$l0ver"
  unpack "${debs[@]}"
  l0root="$cache/l0/root-${l0ver//[:~+]/_}"
  if [ ! -e "$l0root/.done" ]; then
    log "L0 QEMU $l0ver into $l0root"
    rm -rf "$l0root" && mkdir -p "$l0root"
    for t in "${trees[@]}"; do cp -a "$t"/. "$l0root"/; done
    rm -f "$l0root/.done"
    touch "$l0root/.done"
  fi
  l0="$l0root/usr/bin/qemu-system-ppc64"
  l0data="$l0root/usr/share/qemu"
  # The libraries it needs that the host lacks (or has too old): from bookworm(-backports) too,
  # with their own dependencies (libndctl6 needs libdaxctl1, libnl-route-3 needs libnl-3, ...):
  # the whole Depends closure, as for L1; DT_NEEDED and ld.so pick what they use.
  # ldd's output is kept first: `ldd | grep -q` under pipefail fails at random when grep exits
  # at its first match and ldd dies of SIGPIPE.
  lddout=$(LD_LIBRARY_PATH= ldd "$l0" 2>&1 || true)
  if grep -q 'not found' <<<"$lddout"; then
    log "L0 QEMU needs libraries the host lacks: $(grep 'not found' <<<"$lddout" | awk '{print $1}' | tr '\n' ' ')"
    libdeps=$(apt-cache "${aptopts[@]}" depends --recurse --no-recommends --no-suggests --no-conflicts \
      --no-breaks --no-replaces --no-enhances "qemu-system-ppc:amd64=$l0ver" 2>/dev/null |
      sed -n 's/^\(lib[^ :<>]*\|zlib[^ :<>]*\)\(:amd64\)\{0,1\}$/\1/p' | grep -v -- '-dev$' | sort -u |
      while read -r p; do # the host's own copies (libc6 above all) stay the host's
        dpkg-query -W -f='${Status}' "$p:amd64" 2>/dev/null | grep -cx 'install ok installed' >/dev/null || echo "$p"
      done || true)
    [ -n "$libdeps" ] || die "apt knows no library packages for qemu-system-ppc:amd64=$l0ver; rerun with HPTHAMMER_LAB_APT_UPDATE=1" 125
    # shellcheck disable=SC2086
    download $(for p in $libdeps; do echo "$p:amd64"; done)
    unpack "${debs[@]}"
    mkdir -p "$cache/l0/libs"
    for t in "${trees[@]}"; do
      for d in lib/x86_64-linux-gnu usr/lib/x86_64-linux-gnu; do
        [ -d "$t/$d" ] && cp -a "$t/$d"/. "$cache/l0/libs"/
      done
    done
    l0libs="$cache/l0/libs"
    still=$(LD_LIBRARY_PATH=$l0libs ldd "$l0" 2>&1 | grep 'not found' || true)
    [ -z "$still" ] || die "the L0 QEMU still lacks libraries after fetching its Depends closure:
  $still
  Set HPTHAMMER_LAB_QEMU to a qemu-system-ppc64 >= 8.1 that runs here." 125
  fi
fi
qemu_ok "$l0" || die "the L0 QEMU $l0 does not run or is older than 8.1:
  $(LD_LIBRARY_PATH=$l0libs "$l0" --version 2>&1 | sed -n 1,2p)
  Set HPTHAMMER_LAB_QEMU to a qemu-system-ppc64 >= 8.1 (see the comments in this script)." 125
[ -s "$l0data/skiboot.lid" ] || die "no skiboot.lid in $l0data (the powernv firmware, from qemu-system-data)
  Set HPTHAMMER_LAB_QEMU_DATADIR to the directory that has it." 125
l0version=$(LD_LIBRARY_PATH=$l0libs "$l0" --version | sed -n 1p)

# --- L1: ppc64el userland (QEMU 7.2, libvirt 9.0, dropbear) and its shared libraries ---------
top=(qemu-system-ppc:ppc64el libvirt-daemon:ppc64el libvirt-daemon-driver-qemu:ppc64el
  libvirt-clients:ppc64el libvirt0:ppc64el dropbear-bin:ppc64el libc6:ppc64el zlib1g:ppc64el)
# Every library package in their Depends closure (DT_NEEDED decides later what is copied).
libs=$(apt-cache "${aptopts[@]}" depends --recurse --no-recommends --no-suggests --no-conflicts \
  --no-breaks --no-replaces --no-enhances "${top[@]}" 2>/dev/null | grep -E '^lib[^ ]*:ppc64el$' | sort -u || true)
[ -n "$libs" ] || die "apt knows no ppc64el packages in $aptdir; rerun with HPTHAMMER_LAB_APT_UPDATE=1" 125
# QEMU's firmware (slof.bin, vof.bin) is in the arch-all qemu-system-data of the same version.
qver=$(apt-cache "${aptopts[@]}" policy qemu-system-ppc:ppc64el | sed -n 's/^ *Candidate: //p')
qdver=${qver%+b[0-9]*}
# shellcheck disable=SC2086
download "${top[@]}" "qemu-system-data=$qdver" $libs
unpack "${debs[@]}"
l1trees=("${trees[@]}" "$bbroot")

# --- keys: the harness's ssh key and the lab's host key (fixed, so known_hosts stays valid) ---
key="$cache/keys/id_ed25519"
[ -s "$key" ] || ssh-keygen -q -t ed25519 -N '' -C hpthammer-harness -f "$key" || die "ssh-keygen failed"
hostkey="$cache/keys/ssh_host_ed25519_key"
[ -s "$hostkey" ] || ssh-keygen -q -t ed25519 -N '' -C hpthammer-lab -f "$hostkey" || die "ssh-keygen failed"

# --- the initramfs ---------------------------------------------------------------------------
ihash=$( (printf '%s\n' "${l1trees[@]##*/}" | sort; echo "$release $khash $mods $gkernel $ginitrd"; echo "$want";
  sha256sum "$here/build.sh" "$here/init" "$here/roots.txt" "$here/stage.py" "$here/../mkcpio.py" "$key.pub" "$hostkey" \
    "$gkernel" "$ginitrd" | cut -d' ' -f1;
  (cd "$mtree" && sha256sum $want);
  (cd "$here/rootfs" && find . -type f | sort | xargs sha256sum)) | sha256sum | cut -c1-16)
initrd="$cache/lab-$ihash.cpio.gz"
if [ ! -s "$initrd" ]; then
  log "staging the lab initramfs"
  stage="$cache/stage"
  rm -rf "$stage" && mkdir -p "$stage"
  printf '%s\n' "${l1trees[@]}" >"$cache/trees.txt"
  python3 "$here/stage.py" "$stage" "$cache/trees.txt" "$here/roots.txt" ||
    die "stage.py could not find everything (above); a package list changed? rerun with HPTHAMMER_LAB_APT_UPDATE=1" 125
  mkdir -p "$stage"/{bin,sbin,usr/bin,usr/sbin,proc,sys,dev,run,tmp,root/.ssh,etc/hpthammer,var/lib/hpthammer/guest}
  chmod 700 "$stage/root" "$stage/root/.ssh"
  cp -r "$here/rootfs"/. "$stage"/
  cp "$here/init" "$stage/init" && chmod 755 "$stage/init"
  ln -sfn busybox "$stage/bin/sh"   # for /init's #!; /init installs the other applets
  cp "$key.pub" "$stage/root/.ssh/authorized_keys" && chmod 600 "$stage/root/.ssh/authorized_keys"
  cp "$hostkey" "$stage/etc/hpthammer/ssh_host_ed25519_key" && chmod 600 "$stage/etc/hpthammer/ssh_host_ed25519_key"
  # Kernel modules: the ones /init loads and their dependencies (computed above).
  for m in $want; do
    mkdir -p "$stage/usr/$mdir/$(dirname "$m")" && cp "$mtree/$m" "$stage/usr/$mdir/$m"
  done
  cp "$mtree"/modules.{order,builtin,builtin.modinfo} "$stage/usr/$mdir/" 2>/dev/null || true
  "$depmod" -b "$stage" "$release" || die "depmod -b $stage $release failed"
  # The L2 guest image, under /var/lib/hpthammer/guest and at the same paths as on this machine
  # (so a harness that passes its own paths in the domain XML finds them in the lab too).
  cp "$gkernel" "$stage/var/lib/hpthammer/guest/vmlinux"
  cp "$ginitrd" "$stage/var/lib/hpthammer/guest/initrd.cpio.gz"
  for p in "$gkernel:vmlinux" "$ginitrd:initrd.cpio.gz"; do
    mkdir -p "$stage$(dirname "${p%%:*}")"
    ln -sfn "/var/lib/hpthammer/guest/${p##*:}" "$stage${p%%:*}"
  done
  log "stage: $(du -sm "$stage" | cut -f1) MiB; compressing"
  python3 "$here/../mkcpio.py" "$stage" "$initrd.tmp" && mv "$initrd.tmp" "$initrd"
  rm -rf "$stage"
fi
isize=$(stat -c %s "$initrd")
[ "$isize" -lt $((128 * 1024 * 1024)) ] ||
  die "$initrd is $((isize >> 20)) MiB: over powernv's 128 MiB initrd limit (trim roots.txt)"
if [ "$khash" = debian ]; then lkernel="$cache/vmlinux-$release"
else lkernel="$cache/kernels/$release-$khash/vmlinux"; mkdir -p "${lkernel%/*}"; fi
cmp -s "$kimage" "$lkernel" 2>/dev/null || cp "$kimage" "$lkernel"

log "ready in $(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN{printf "%.1f", b-a}') s: L0 $l0version;" \
  "lab initramfs $((isize >> 20)) MiB ($initrd); kernel $release${hostkernel:+ (--host-kernel $hostkernel)}"
echo "HPTHAMMER_LAB_QEMU=$l0"
echo "HPTHAMMER_LAB_QEMU_DATADIR=$l0data"
echo "HPTHAMMER_LAB_QEMU_LIBS=$l0libs"
echo "HPTHAMMER_LAB_KERNEL=$lkernel"
echo "HPTHAMMER_LAB_INITRD=$initrd"
echo "HPTHAMMER_LAB_KEY=$key"
echo "HPTHAMMER_LAB_HOSTKEY_PUB=$hostkey.pub"
echo "HPTHAMMER_LAB_GUEST_KERNEL=/var/lib/hpthammer/guest/vmlinux"
echo "HPTHAMMER_LAB_GUEST_INITRD=/var/lib/hpthammer/guest/initrd.cpio.gz"
echo "HPTHAMMER_LAB_KERNEL_RELEASE=$release"
