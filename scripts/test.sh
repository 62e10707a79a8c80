#!/usr/bin/env bash
# The test command (README, CI): installs what is missing, builds, runs the whole suite.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
BUILD_DIR=${BUILD_DIR:-build}
export BUILD_DIR
scripts/build.sh
cd "$BUILD_DIR"
ctest --output-on-failure -j "$(nproc)"
