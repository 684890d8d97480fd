#!/usr/bin/env bash
# Builds a lab host kernel (ppc64le, PowerNV, kvm.ko + kvm-hv.ko as modules) from Debian's 6.1
# source, stock or with patches, or from a kernel git tree of your own (a bisection's). One
# source tree and one build directory are shared by every caller (the bisection, the bug
# benchmark), so a second kernel costs an incremental make (tens of seconds), not a build from
# scratch (about 30 min on 2 cores). Each result is cached by what went into it: the source
# (Debian version, or the tree's commit), the config fragment and the patches' contents.
#
# Usage: kernel.sh [--patch FILE.patch]... [--config FRAGMENT]... [--tree DIR] [--print-source]
#   --patch       applied (git apply) on top of the source, in order; a patch that does not apply
#                 exits 2 naming it.
#   --config      another config fragment on top of lab-kernel.config (e.g. lockdep.config).
#   --tree DIR    build DIR's checked-out commit instead of Debian's source (it must be clean).
#   --print-source  fetch Debian's source if needed and print the shared tree's path (a git
#                 repository whose commit "debian-VERSION" is the unpatched source), then exit.
# Prints on stdout (messages go to stderr):
#   HPTHAMMER_LAB_HOST_KERNEL=...    the vmlinux
#   HPTHAMMER_LAB_HOST_MODULES=...   its modules (a modules_install root)
#   HPTHAMMER_LAB_KERNEL_RELEASE=... its uname -r
#   HPTHAMMER_LAB_KERNEL_CACHED=0|1  whether it came from the cache
# which Guests/lab/build.sh and run.sh take as --host-kernel/--host-modules (or from the
# environment). Environment: HPTHAMMER_KERNELS (the cache, default ~/.cache/hpthammer/kernels),
# HPTHAMMER_LAB_MIRROR, HPTHAMMER_KERNEL_VERSION (a Debian source version, default the newest
# 6.1 in bookworm and bookworm-security), HPTHAMMER_KERNEL_JOBS (make -j, default nproc).
# Exit codes: 0 built or cached; 2 bad arguments or a patch that does not apply; 125 a tool or
# the source is missing, or the build failed (the message names the step and its log).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
K=${HPTHAMMER_KERNELS:-${XDG_CACHE_HOME:-$HOME/.cache}/hpthammer/kernels}
mirror=${HPTHAMMER_LAB_MIRROR:-http://deb.debian.org}
jobs=${HPTHAMMER_KERNEL_JOBS:-$(nproc)}
log() { echo "lab/kernel.sh: $*" >&2; }
die() { echo "lab/kernel.sh: error: $1" >&2; exit "${2:-125}"; }

patches=() fragments=("$here/lab-kernel.config") tree= printsource=0
while [ $# -gt 0 ]; do
  case "$1" in
    --patch) [ $# -ge 2 ] || die "--patch needs a file" 2; patches+=("$2"); shift 2 ;;
    --config) [ $# -ge 2 ] || die "--config needs a fragment file" 2; fragments+=("$2"); shift 2 ;;
    --tree) [ $# -ge 2 ] || die "--tree needs a directory" 2; tree=$2; shift 2 ;;
    --print-source) printsource=1; shift ;;
    -h|--help) sed -n '2,/^set -e/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2; exit 0 ;;
    *) die "unknown argument '$1' (kernel.sh [--patch F]... [--config F]... [--tree DIR])" 2 ;;
  esac
done
for f in "${patches[@]}" "${fragments[@]}"; do
  [ -f "$f" ] && [ -r "$f" ] || die "$f: no such file (given to --patch or --config)" 2
done

# The kernel build tools: installed when missing and this is root with apt (a fresh machine);
# otherwise the message says what to install.
tools="gcc-powerpc64le-linux-gnu flex bison bc libssl-dev libelf-dev make git dpkg-dev"
need=0
for t in make flex bison bc gcc powerpc64le-linux-gnu-gcc git; do command -v "$t" >/dev/null || need=1; done
[ -e /usr/include/openssl/ssl.h ] && [ -e /usr/include/libelf.h ] || need=1
if [ $need = 1 ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  log "installing the kernel build tools ($tools)"
  # shellcheck disable=SC2086
  { apt-get update -qq || true; } && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
    --no-install-recommends $tools >/dev/null || log "apt-get install failed"
fi
for t in make flex bison bc gcc powerpc64le-linux-gnu-gcc git; do
  command -v "$t" >/dev/null || die "$t not found. Install the kernel build tools:
  apt-get install -y --no-install-recommends $tools" 125
done
[ -e /usr/include/openssl/ssl.h ] && [ -e /usr/include/libelf.h ] ||
  die "the kernel build needs libssl-dev and libelf-dev: apt-get install -y libssl-dev libelf-dev" 125
mkdir -p "$K"/{src,out,apt/lists/partial,apt/cache/archives/partial} || die "cannot create $K" 125
export ARCH=powerpc CROSS_COMPILE=powerpc64le-linux-gnu-

# The cache key: the source, the config fragments, the module list, the patches' contents.
cache_key() { (echo "$1"; cat "${fragments[@]}" "$here/lab-kernel.lsmod"; for p in "${patches[@]}"; do
  echo "patch"; cat "$p"; done) | sha256sum | cut -c1-12; }
print_cached() { # KEY: prints the cached kernel's variables and exits, if it is there
  [ -e "$K/out/$1/.done" ] || return 0
  log "cached: $(cat "$K/out/$1/release") ($K/out/$1)"
  echo "HPTHAMMER_LAB_HOST_KERNEL=$K/out/$1/vmlinux"
  echo "HPTHAMMER_LAB_HOST_MODULES=$K/out/$1/modules"
  echo "HPTHAMMER_LAB_KERNEL_RELEASE=$(cat "$K/out/$1/release")"
  echo "HPTHAMMER_LAB_KERNEL_CACHED=1"
  exit 0
}
# A cached kernel of Debian's source needs no lock: a bisection's or a benchmark's cached
# kernels are not held up by another caller's build.
if [ -z "$tree" ] && [ "$printsource" = 0 ]; then
  v=${HPTHAMMER_KERNEL_VERSION:-$(git -C "$K/linux" tag -l 'debian-6.1.*' 2>/dev/null | sed 's/^debian-//' | sort -V | sed -n '$p' || true)}
  if [ -n "$v" ] && [ "${HPTHAMMER_KERNEL_UPDATE:-0}" != 1 ] &&
    git -C "$K/linux" rev-parse -q --verify "refs/tags/debian-$v" >/dev/null 2>&1; then
    print_cached "$(cache_key "debian-$v")"
  fi
fi

# One caller at a time in the shared tree and build directory.
exec 9>"$K/lock"
flock -w 7200 9 || die "another kernel.sh held $K/lock for 2 hours" 125

# --- the source: Debian's, as a git repository with one commit per Debian version ------------
debian_source() { # makes $K/linux hold Debian's source at commit "debian-$ver"
  local aptopts ver dsc
  cat >"$K/apt/sources.list" <<EOF
deb-src [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $mirror/debian bookworm main
deb-src [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $mirror/debian-security bookworm-security main
EOF
  aptopts=(-o "Dir::Etc::SourceList=$K/apt/sources.list" -o Dir::Etc::SourceParts=/nonexistent
    -o "Dir::State::Lists=$K/apt/lists" -o "Dir::Cache=$K/apt/cache" -o Debug::NoLocking=1)
  [ "$(id -u)" = 0 ] && aptopts+=(-o APT::Sandbox::User=root)
  if [ -z "$(find "$K/apt/updated" -mtime -7 2>/dev/null)" ]; then
    log "apt-get update (deb-src lists in $K/apt)"
    apt-get "${aptopts[@]}" update -q >"$K/apt/update.log" 2>&1 && touch "$K/apt/updated" ||
      log "apt-get update had errors ($K/apt/update.log); going on with the lists it has"
  fi
  # The version: the one asked for; else the one already in the tree (a rebuild stays
  # incremental and its cache keys stay valid; HPTHAMMER_KERNEL_UPDATE=1 moves on); else the
  # newest 6.1 whose source the mirror serves (some mirrors lack bookworm-security's pool).
  local have cands
  have=$(git -C "$K/linux" tag -l 'debian-6.1.*' 2>/dev/null | sed 's/^debian-//' | sort -V | sed -n '$p' || true)
  if [ -n "${HPTHAMMER_KERNEL_VERSION:-}" ]; then cands=$HPTHAMMER_KERNEL_VERSION
  elif [ -n "$have" ] && [ "${HPTHAMMER_KERNEL_UPDATE:-0}" != 1 ]; then cands=$have
  else
    cands=$(apt-cache "${aptopts[@]}" showsrc linux 2>/dev/null |
      sed -n 's/^Version: \(6\.1\.[0-9.]*-[0-9]*\)$/\1/p' | sort -uVr)
  fi
  [ -n "$cands" ] || die "no Debian 6.1 linux source known (network to $mirror? see $K/apt/update.log)" 125
  for ver in $cands; do
    srcver=$ver
    if git -C "$K/linux" rev-parse -q --verify "refs/tags/debian-$ver" >/dev/null 2>&1; then return; fi
    command -v dpkg-source >/dev/null || die "dpkg-source not found: apt-get install -y dpkg-dev" 125
    log "fetching Debian's linux $ver source (about 140 MB)"
    (cd "$K/src" && apt-get "${aptopts[@]}" source -q --download-only "linux=$ver" >"$K/src/download.log" 2>&1) &&
      break
    log "linux $ver: the mirror does not serve it ($(grep -m1 '^E:' "$K/src/download.log" | cut -c1-120)); trying an older one"
    ver=
  done
  [ -n "$ver" ] || die "no Debian 6.1 linux source could be downloaded (last log: $K/src/download.log)" 125
  dsc=$K/src/linux_${ver#*:}.dsc
  rm -rf "$K/src/linux-$ver"
  dpkg-source --no-check -x "$dsc" "$K/src/linux-$ver" >"$K/src/extract.log" 2>&1 ||
    die "dpkg-source -x $dsc failed ($K/src/extract.log)" 125
  if [ ! -d "$K/linux/.git" ]; then
    git init -q "$K/linux"
    git -C "$K/linux" config user.email hpthammer@localhost
    git -C "$K/linux" config user.name hpthammer
  fi
  # The tree's files become this version's (the build directory stays; make sees what changed).
  git -C "$K/linux" rm -rq --ignore-unmatch . >/dev/null
  (cd "$K/src/linux-$ver" && tar cf - --exclude=./debian .) | (cd "$K/linux" && tar xf -)
  git -C "$K/linux" add -Af >/dev/null  # -f: Debian's .gitignore ends in "/*"
  git -C "$K/linux" commit -qm "Debian linux $ver (dpkg-source -x, debian/ left out)"
  git -C "$K/linux" tag -f "debian-$ver" >/dev/null
  rm -rf "$K/src/linux-$ver"
}

if [ -n "$tree" ]; then
  [ -d "$tree/.git" ] || [ -f "$tree/.git" ] || die "--tree $tree is not a git work tree" 2
  [ -z "$(git -C "$tree" status --porcelain --untracked-files=no)" ] ||
    die "--tree $tree has uncommitted changes: commit or stash them (the build must be of a commit)" 2
  src=$(cd "$tree" && pwd -P)
  srcid=$(git -C "$src" rev-parse HEAD)
else
  debian_source
  [ "$printsource" = 0 ] || { echo "$K/linux"; exit 0; }
  src=$K/linux
  srcid=debian-$srcver
fi

# --- the cache key and the release string -----------------------------------------------------
key=$(cache_key "$srcid")
out=$K/out/$key
print_cached "$key"
# Stock Debian source: "-lab"; anything else carries its key, so two kernels never share a
# modules directory name.
if [ -z "$tree" ] && [ ${#patches[@]} = 0 ] && [ ${#fragments[@]} = 1 ]; then lv=-lab; else lv=-lab-$key; fi

# --- the source as asked: the Debian commit plus patches (the tree of --tree is taken as is) --
if [ -z "$tree" ]; then
  git -C "$src" checkout -qf "debian-$srcver" 2>/dev/null || die "git checkout debian-$srcver in $src failed" 125
  git -C "$src" clean -qfd
  for p in "${patches[@]}"; do
    git -C "$src" apply --check "$(readlink -f "$p")" 2>"$K/apply.err" ||
      die "patch $p does not apply to Debian's linux $srcver: $(sed -n 1,3p "$K/apply.err")" 2
    git -C "$src" apply "$(readlink -f "$p")"
  done
fi

# --- configure and build in the one build directory -------------------------------------------
# One build directory per source tree (Kbuild's objects name their tree): Debian's, shared by
# every patched kernel, and one per --tree, shared by all of that tree's commits.
# Extra config fragments (a debug kernel's) get a build directory of their own too: switching
# configs in one directory would rebuild everything each time.
extra=$( (for f in "${fragments[@]:1}"; do cat "$f"; done) | sha256sum | cut -c1-8)
[ ${#fragments[@]} -gt 1 ] || extra=
if [ -n "$tree" ] && [ "$src" != "$(cd "$K/linux" 2>/dev/null && pwd -P)" ]; then
  b=$K/build-$(printf %s "$src" | sha256sum | cut -c1-8)${extra:+-cfg$extra}
else
  b=$K/build${extra:+-cfg$extra}
fi
mkdir -p "$b"
t0=$(date +%s)
blog=$K/build.log
{
  make -C "$src" O="$b" powernv_defconfig &&
    "$src/scripts/kconfig/merge_config.sh" -m -O "$b" "$b/.config" "${fragments[@]}" &&
    # localmodconfig may stop at a NEW symbol ("Error in reading or end of file"); the
    # olddefconfig after it answers the rest, and the check below says whether kvm-hv survived.
    { make -C "$src" O="$b" LSMOD="$here/lab-kernel.lsmod" localmodconfig </dev/null || true; } &&
    "$src/scripts/config" --file "$b/.config" --set-str LOCALVERSION "$lv" --disable LOCALVERSION_AUTO &&
    make -C "$src" O="$b" olddefconfig
} >"$blog" 2>&1 || die "configuring the kernel failed (log: $blog): $(tail -3 "$blog")" 125
grep -qx 'CONFIG_KVM_BOOK3S_64_HV=m' "$b/.config" ||
  die "the configured kernel has no kvm-hv module (CONFIG_KVM_BOOK3S_64_HV=m); see $blog" 125
log "building $srcid${patches:+ + ${#patches[@]} patch(es)} as *$lv (make -j$jobs; log $blog)"
nice -n 5 make -C "$src" O="$b" -j"$jobs" vmlinux modules >>"$blog" 2>&1 ||
  die "the kernel build failed (log: $blog): $(grep -m3 -E 'error|Error' "$blog" || tail -3 "$blog")" 125
release=$(cat "$b/include/config/kernel.release")
rm -rf "$out.tmp" && mkdir -p "$out.tmp/modules"
make -C "$src" O="$b" INSTALL_MOD_PATH="$out.tmp/modules" modules_install >>"$blog" 2>&1 ||
  die "modules_install failed (log: $blog)" 125
rm -f "$out.tmp/modules/lib/modules/$release"/{build,source}
cp "$b/vmlinux" "$out.tmp/vmlinux"
echo "$release" >"$out.tmp/release"
{ echo "source $srcid"; for p in "${patches[@]}"; do echo "patch $(readlink -f "$p") $(sha256sum <"$p" | cut -c1-16)"; done
  for f in "${fragments[@]}"; do echo "config $(readlink -f "$f")"; done
  echo "built in $(( $(date +%s) - t0 )) s on $(date -u +%FT%TZ)"; } >"$out.tmp/recipe"
touch "$out.tmp/.done"
rm -rf "$out" && mv "$out.tmp" "$out"
# Put the tree back to the unpatched source so a bisection or another caller starts clean.
[ -n "$tree" ] || git -C "$src" checkout -qf "debian-$srcver"
log "built $release in $(( $(date +%s) - t0 )) s ($out)"
echo "HPTHAMMER_LAB_HOST_KERNEL=$out/vmlinux"
echo "HPTHAMMER_LAB_HOST_MODULES=$out/modules"
echo "HPTHAMMER_LAB_KERNEL_RELEASE=$release"
echo "HPTHAMMER_LAB_KERNEL_CACHED=0"
