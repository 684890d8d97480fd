#!/usr/bin/env bash
# Builds the HPTHammer ppc64le guest (for TCG and KVM-HV): Debian's ppc64el kernel, and an
# initramfs with busybox-static and the guest agent. Cached: a step runs only when its output
# is missing or one of its inputs changed. Build output goes to
# ${HPTHAMMER_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/hpthammer/guests}, never into git.
# Prints on stdout (everything else goes to stderr):
#   HPTHAMMER_GUEST_KERNEL=/path/vmlinux-RELEASE
#   HPTHAMMER_GUEST_INITRD=/path/initrd-HASH.cpio.gz
#   HPTHAMMER_GUEST_VERSION=RELEASE
#   HPTHAMMER_GUEST_AGENT=/path/hpthammer-agent-HASH
# Environment: HPTHAMMER_CACHE (cache directory), HPTHAMMER_GUEST_KERNEL_PKG (a kernel package
# name instead of the one linux-image-powerpc64le:ppc64el depends on now), CC (cross compiler).
# Exit codes: 0 built (or cached), 125 a tool or package is missing (the message says how to
# get it), other: a build step failed.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
cache=${HPTHAMMER_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/hpthammer/guests}
CC=${CC:-powerpc64le-linux-gnu-gcc}
log() { echo "build.sh: $*" >&2; }
die() { echo "build.sh: error: $1" >&2; exit "${2:-1}"; }
missing() { die "$1 not found. $2" 125; }

# --- tools ---------------------------------------------------------------------------------
for t in apt-get apt-cache dpkg dpkg-deb; do
  command -v "$t" >/dev/null || missing "$t" "This recipe needs a Debian/Ubuntu host (apt and dpkg)."
done
command -v "$CC" >/dev/null ||
  missing "$CC" "Install it: apt-get install -y gcc-powerpc64le-linux-gnu libc6-dev-ppc64el-cross"
echo 'int main(void){return 0;}' | "$CC" -static -x c -o /dev/null - 2>/dev/null ||
  missing "the static ppc64el C library" "Install it: apt-get install -y libc6-dev-ppc64el-cross"
command -v python3 >/dev/null || missing python3 "Install it: apt-get install -y python3"
for t in gzip sha256sum; do
  command -v "$t" >/dev/null || missing "$t" "Install it: apt-get install -y ${t/sha256sum/coreutils}"
done
mkdir -p "$cache" || die "cannot create the cache directory $cache" 125

# --- package names, resolved now (they change with Debian point releases) ------------------
if ! dpkg --print-foreign-architectures | grep -cx ppc64el >/dev/null; then
  [ "$(id -u)" = 0 ] || die "the ppc64el architecture is not enabled; as root run:
  dpkg --add-architecture ppc64el && apt-get update" 125
  log "enabling the ppc64el architecture (dpkg --add-architecture ppc64el; apt-get update)"
  dpkg --add-architecture ppc64el
  apt-get update -q >&2 || log "apt-get update reported errors; trying with what it got"
fi
resolve_kernel() {
  apt-cache depends linux-image-powerpc64le:ppc64el 2>/dev/null |
    sed -n 's/^ *Depends: \(linux-image-[0-9][^:]*\)\(:ppc64el\)\{0,1\}$/\1/p' | sed -n 1p
}
kpkg=${HPTHAMMER_GUEST_KERNEL_PKG:-$(resolve_kernel)}
if [ -z "$kpkg" ] && [ "$(id -u)" = 0 ]; then
  log "linux-image-powerpc64le:ppc64el unknown to apt; running apt-get update"
  apt-get update -q >&2 || true
  kpkg=$(resolve_kernel)
fi
[ -n "$kpkg" ] || die "cannot resolve the ppc64el kernel package (apt-cache depends
  linux-image-powerpc64le:ppc64el gave nothing). Run: dpkg --add-architecture ppc64el &&
  apt-get update, or set HPTHAMMER_GUEST_KERNEL_PKG=linux-image-VERSION-powerpc64le" 125

# --- download and unpack (cached per package version) --------------------------------------
# fetch PKG -> sets $unpacked to the dpkg -x'ed tree of PKG:ppc64el
fetch() {
  local pkg=$1 ver deb
  ver=$(apt-cache policy "$pkg:ppc64el" 2>/dev/null | sed -n 's/^ *Candidate: //p')
  if [ -z "$ver" ] || [ "$ver" = "(none)" ]; then
    # Offline or lists gone: reuse what an earlier build downloaded.
    deb=$(ls -t "$cache"/debs/"${pkg}"_*_ppc64el.deb 2>/dev/null | sed -n 1p || true)
    [ -n "$deb" ] || die "apt knows no candidate for $pkg:ppc64el (a wrong name in HPTHAMMER_GUEST_KERNEL_PKG?
  otherwise run: dpkg --add-architecture ppc64el && apt-get update)" 125
    log "apt has no candidate for $pkg:ppc64el; using the cached $(basename "$deb")"
  else
    deb="$cache/debs/${pkg}_${ver//:/%3a}_ppc64el.deb"
    if [ ! -s "$deb" ]; then
      log "downloading $pkg:ppc64el=$ver"
      mkdir -p "$cache/debs"
      (cd "$cache/debs" && apt-get download -q "$pkg:ppc64el=$ver" >&2) ||
        die "apt-get download $pkg:ppc64el=$ver failed (network? run apt-get update)" 125
      [ -s "$deb" ] || deb=$(ls -t "$cache"/debs/"${pkg}"_*_ppc64el.deb | sed -n 1p)
    fi
  fi
  unpacked="$cache/unpacked/$(basename "$deb" .deb)"
  if [ ! -e "$unpacked/.done" ]; then
    log "unpacking $(basename "$deb")"
    rm -rf "$unpacked" && mkdir -p "$unpacked"
    dpkg -x "$deb" "$unpacked" || die "dpkg -x $deb failed (a damaged download? delete it and retry)"
    touch "$unpacked/.done"
  fi
}

fetch "$kpkg"; kroot=$unpacked
fetch busybox-static; bbroot=$unpacked

# --- kernel --------------------------------------------------------------------------------
kimg=$(ls "$kroot"/boot/vmlinux-* 2>/dev/null | sed -n 1p || true)
[ -n "$kimg" ] || die "$kpkg has no boot/vmlinux-*: not a ppc64el kernel package?"
release=${kimg##*/vmlinux-}
kernel="$cache/vmlinux-$release"
if [ ! -s "$kernel" ] || ! cmp -s "$kimg" "$kernel"; then
  log "kernel $release"
  cp "$kimg" "$kernel.tmp" && mv "$kernel.tmp" "$kernel"
fi

# --- agent ---------------------------------------------------------------------------------
src="$here/agent/hpthammer-agent.c"
cflags="-static -O2 -Wall -Wextra -pthread"
ahash=$( (cat "$src"; echo "$CC $cflags"; "$CC" --version | sed -n 1p) | sha256sum | cut -c1-16)
agent="$cache/agent/hpthammer-agent-$ahash"
if [ ! -x "$agent" ]; then
  log "compiling the agent ($CC $cflags)"
  mkdir -p "$cache/agent"
  # shellcheck disable=SC2086
  "$CC" $cflags -o "$agent.tmp" "$src" || die "the agent did not compile"
  mv "$agent.tmp" "$agent"
fi

# --- modules -------------------------------------------------------------------------------
# The virtio balloon (libvirt.balloon_every_s) needs virtio_pci and virtio_balloon, which
# Debian builds as modules: they go into the initramfs with their dependencies, in load order
# (modules.dep lists a module's dependencies; each is loaded before what needs it).
kmods="virtio_pci virtio_balloon"
moddir=$(ls -d "$kroot"/lib/modules/*/ 2>/dev/null | sed -n 1p || true)
[ -n "$moddir" ] || die "$kpkg has no lib/modules/*/"
# Debian's packages leave modules.dep to depmod at install time: make it in the unpacked tree.
if [ ! -f "$moddir/modules.dep" ]; then
  depmod=$(command -v depmod || echo /sbin/depmod)
  [ -x "$depmod" ] || die "depmod not found (it makes the guest kernel's modules.dep). Install it: apt-get install -y kmod" 125
  "$depmod" -b "$kroot" "$(basename "$moddir")" || die "depmod -b $kroot failed"
fi
[ -f "$moddir/modules.dep" ] || die "$kpkg has no lib/modules/*/modules.dep, and depmod made none"
modorder=$(python3 - "$moddir/modules.dep" $kmods <<'PY'
import os, sys
deps = {}
for line in open(sys.argv[1]):
    path, _, rest = line.partition(":")
    deps[os.path.basename(path).split(".ko")[0]] = (path, [os.path.basename(d).split(".ko")[0] for d in rest.split()])
order = []
def add(m):
    if m not in deps:
        sys.exit(f"module {m} is not in modules.dep")
    for d in reversed(deps[m][1]):
        add(d)
    if deps[m][0] not in order:
        order.append(deps[m][0])
for m in sys.argv[2:]:
    add(m)
print("\n".join(order))
PY
) || die "resolving the guest's modules ($kmods) in $moddir/modules.dep failed"
# --- initramfs -----------------------------------------------------------------------------
bb="$bbroot/bin/busybox"
[ -x "$bb" ] || die "busybox-static has no bin/busybox"
# The applets /init and a debugging shell use.
applets="sh mount umount mkdir mknod cat echo ls sleep sync poweroff reboot halt dmesg grep ps kill free uname insmod"
ihash=$( (sha256sum "$bb" "$agent" "$here/init" "$here/mkcpio.py" | cut -d' ' -f1; echo "$applets";
  for m in $modorder; do sha256sum "$moddir/$m" | cut -d' ' -f1; done) |
  sha256sum | cut -c1-16)
initrd="$cache/initrd-$ihash.cpio.gz"
if [ ! -s "$initrd" ]; then
  log "initramfs"
  stage="$cache/stage"
  rm -rf "$stage" && mkdir -p "$stage"/{bin,sbin,usr/bin,usr/sbin,proc,sys,dev,tmp,root,etc}
  cp "$bb" "$stage/bin/busybox"
  for a in $applets; do ln -s busybox "$stage/bin/$a"; done
  cp "$agent" "$stage/bin/hpthammer-agent"
  cp "$here/init" "$stage/init" && chmod 755 "$stage/init"
  mkdir -p "$stage/lib/modules"
  for m in $modorder; do
    cp "$moddir/$m" "$stage/lib/modules/" || die "copying the module $m failed"
    echo "${m##*/}" >>"$stage/lib/modules/order"
  done
  python3 "$here/mkcpio.py" "$stage" "$initrd.tmp" && mv "$initrd.tmp" "$initrd"
  rm -rf "$stage"
fi

log "ready: kernel $release ($kpkg), initramfs $(du -k "$initrd" | cut -f1) KiB, cache $cache"
echo "HPTHAMMER_GUEST_KERNEL=$kernel"
echo "HPTHAMMER_GUEST_INITRD=$initrd"
echo "HPTHAMMER_GUEST_VERSION=$release"
echo "HPTHAMMER_GUEST_AGENT=$agent"
