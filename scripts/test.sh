#!/usr/bin/env bash
# Builds HPTHammer and runs every test (unit, simulator, end-to-end CLI, kernel-log corpus,
# the results store on SQLite and on a throwaway PostgreSQL server,
# the raw ioctl layer against this machine's /dev/kvm and against the ppc64el kernel headers).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/ensure-toolchain.sh
# The ppc64el cross tools: the guest image, and the ioctl numbers checked against the real
# headers under qemu-user. Without them those tests skip and say why.
source scripts/ensure-cross.sh
# A throwaway PostgreSQL server: the results store's tests run against SQLite and PostgreSQL.
source scripts/ensure-postgres.sh
swift build --build-tests
swift test --skip-build
