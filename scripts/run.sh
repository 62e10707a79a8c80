#!/usr/bin/env bash
# The main job (README): installs what is missing, builds, then runs `sanastream ARGS...`. Without
# arguments it runs the smoke job: the DiT against the golden reference sets.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
BUILD_DIR=${BUILD_DIR:-build}
export BUILD_DIR
scripts/build.sh >/dev/null
SANASTREAM="$BUILD_DIR/apps/cli/sanastream"
if [ $# -gt 0 ]; then
  exec "$SANASTREAM" "$@"
fi
GOLDEN=${SANASTREAM_GOLDEN:-../shared/golden}
if [ -d "$GOLDEN" ]; then
  exec "$SANASTREAM" golden-check "$GOLDEN" --require dit
fi
echo "run.sh: no golden data at $GOLDEN (set SANASTREAM_GOLDEN); showing the commands instead"
exec "$SANASTREAM" --help
