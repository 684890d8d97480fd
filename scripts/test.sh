#!/usr/bin/env bash
# Builds HPTHammer and runs every test (unit, simulator, end-to-end CLI, kernel-log corpus,
# the results store on SQLite and on a throwaway PostgreSQL server, its exports and ci/'s
# pipelines checked with the PyPI tools that define them,
# the raw ioctl layer against this machine's /dev/kvm and against the ppc64el kernel headers).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/ensure-toolchain.sh
# The ppc64el cross tools: the guest image, and the ioctl numbers checked against the real
# headers under qemu-user. Without them those tests skip and say why.
source scripts/ensure-cross.sh
# A throwaway PostgreSQL server: the results store's tests run against SQLite and PostgreSQL.
source scripts/ensure-postgres.sh
# Debian's chromium: the results report is rendered in a real browser.
source scripts/ensure-chromium.sh
# As root the script installs every tool above, so a test that lacks one fails rather than
# skips (ToolsTests): CI cannot go green without the real PostgreSQL, browser and PyPI tools.
if [ "$(id -u)" = 0 ]; then export HPTHAMMER_REQUIRE_TOOLS=${HPTHAMMER_REQUIRE_TOOLS:-1}; fi
# The PyPI tools the exports and ci/'s pipelines are checked with (kcidb-io's schema,
# junitparser, check-jsonschema), in a venv under ~/.cache/hpthammer. Without them those tests
# skip and say why.
if pytools=$(bash scripts/ensure-pytools.sh); then
  export HPTHAMMER_PYTOOLS="$pytools"
else
  export HPTHAMMER_PYTOOLS_MISSING="scripts/ensure-pytools.sh could not install them (its message is above the build's)"
fi
swift build --build-tests
swift test --skip-build
