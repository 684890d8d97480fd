#!/usr/bin/env bash
# Builds HPTHammer and runs every test (unit, simulator, end-to-end CLI, kernel-log corpus,
# the raw ioctl layer against this machine's /dev/kvm and against the ppc64el kernel headers).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/ensure-toolchain.sh
# The ppc64el cross compiler and qemu-user check the ioctl numbers against the real headers.
# Installed when we may (root with apt); without them those tests skip and say why.
if ! command -v powerpc64le-linux-gnu-gcc >/dev/null 2>&1 || ! command -v qemu-ppc64le-static >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    ({ apt-get update -qq || true; } && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      gcc-powerpc64le-linux-gnu libc6-dev-ppc64el-cross linux-libc-dev-ppc64el-cross qemu-user-static \
      >/dev/null) || echo "hpthammer: could not install the ppc64el cross tools; their tests will skip" >&2
  fi
fi
swift build --build-tests
swift test --skip-build
