#!/usr/bin/env bash
# Builds HPTHammer and runs every test (unit, simulator, end-to-end CLI, kernel-log corpus).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/ensure-toolchain.sh
swift build --build-tests
swift test --skip-build
