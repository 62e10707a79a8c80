#!/usr/bin/env bash
# The main job (README): installs what is missing, builds, then runs `sanastream ARGS...`. Without
# arguments it runs the main job below.
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
# The main job: the embedded demo model (models/demo, found beside the executable) edits Debian's
# python3-imageio footage (cockatoo.mp4, 14 s, 1280x720, with its audio) into build/demo-edit.mp4.
scripts/fetch-test-media.sh "$BUILD_DIR/test-media"
exec scripts/demo-edit.sh "$SANASTREAM" "$BUILD_DIR/test-media/cockatoo.mp4" "$BUILD_DIR/demo-edit.mp4"
