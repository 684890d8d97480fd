#!/usr/bin/env bash
# Makes sure a Swift 6 toolchain and git are on PATH; installs what is missing on Debian/Ubuntu.
set -euo pipefail
# git for the Swift packages; libvirt's headers and pkg-config for the libvirt backend.
need=()
command -v git >/dev/null 2>&1 || need+=(git)
command -v pkg-config >/dev/null 2>&1 || need+=(pkg-config)
pkg-config --exists libvirt 2>/dev/null || need+=(libvirt-dev)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    { apt-get update -qq || true; } && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  else
    echo "hpthammer: missing ${need[*]}: install them (sudo apt-get install ${need[*]}) and run this again" >&2
    exit 125
  fi
fi
for d in /opt/swift/usr/bin /usr/share/swift/usr/bin; do
  if [ -x "$d/swift" ] && ! command -v swift >/dev/null 2>&1; then export PATH="$d:$PATH"; fi
done
if ! command -v swift >/dev/null 2>&1; then
  # Debian 13 and Ubuntu 24.04 package the toolchain as swiftlang.
  if command -v apt-get >/dev/null 2>&1 && apt-cache show swiftlang >/dev/null 2>&1; then
    apt-get install -y -qq swiftlang
  else
    echo "hpthammer: no Swift toolchain found. Install Swift 6 (https://www.swift.org/install/linux/)" \
      "or the 'swiftlang' package, then run this again." >&2
    exit 125
  fi
fi
major=$(swift --version 2>/dev/null | sed -n 's/.*Swift version \([0-9]*\).*/\1/p' | sed -n 1p)
if [ "${major:-0}" -lt 6 ]; then
  echo "hpthammer: Swift 6 or later is needed; found: $(swift --version 2>&1 | sed -n 1p)" >&2
  exit 125
fi
