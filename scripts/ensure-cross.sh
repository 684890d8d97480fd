#!/usr/bin/env bash
# Sourced by the test and CI scripts: the ppc64el cross tools that Guests/build.sh (the guest
# payload and agent, linked statically) and the ioctl-number tests need. libc6-dev-ppc64el-cross
# is only a Recommends of the cross compiler, so an install with --no-install-recommends (or an
# earlier install of the compiler alone) lacks it: check for the static libc itself.
# Installs what is missing when it may (root with apt); otherwise says what to install.
cross_need=()
command -v powerpc64le-linux-gnu-gcc >/dev/null 2>&1 || cross_need+=(gcc-powerpc64le-linux-gnu)
[ -e /usr/powerpc64le-linux-gnu/lib/libc.a ] || cross_need+=(libc6-dev-ppc64el-cross)
[ -e /usr/powerpc64le-linux-gnu/include/linux/kvm.h ] || cross_need+=(linux-libc-dev-ppc64el-cross)
command -v qemu-ppc64le-static >/dev/null 2>&1 || cross_need+=(qemu-user-static)
command -v dpkg-architecture >/dev/null 2>&1 || cross_need+=(dpkg-dev)
# depmod: the guest kernel package's modules.dep is made at build time (Debian ships none).
command -v depmod >/dev/null 2>&1 || [ -x /sbin/depmod ] || cross_need+=(kmod)
if [ ${#cross_need[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    ({ apt-get update -qq || true; } && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
      --no-install-recommends "${cross_need[@]}" >/dev/null) ||
      echo "hpthammer: could not install ${cross_need[*]}; the guest image and the tests that need them will say so" >&2
  else
    echo "hpthammer: missing ${cross_need[*]}: sudo apt-get install --no-install-recommends ${cross_need[*]}" >&2
  fi
fi
