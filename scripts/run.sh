#!/usr/bin/env bash
# The main job (README): installs what is missing, builds, then runs `sanastream ARGS...`. Without
# arguments it runs the smoke job below.
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
# Until the demo model lands: the DiT, VAE and text encoder against the golden sets, then the
# streaming edit of a real clip (Debian's python3-imageio footage) with a tiny random-weight package
# (its output is noise: it shows the pipeline, not an edit).
GOLDEN=${SANASTREAM_GOLDEN:-../shared/golden}
if [ -d "$GOLDEN" ]; then
  "$SANASTREAM" golden-check "$GOLDEN" --require dit
else
  echo "run.sh: no golden data at $GOLDEN (set SANASTREAM_GOLDEN); skipping golden-check"
fi
scripts/fetch-test-media.sh "$BUILD_DIR/test-media"
PACKAGE="$BUILD_DIR/models/random-tiny"
[ -f "$PACKAGE/model.json" ] || "$SANASTREAM" make-package --random-weights --preset tiny "$PACKAGE"
exec "$SANASTREAM" edit --model "$PACKAGE" -i "$BUILD_DIR/test-media/realshort.mp4" -p "make it snowy" \
  -o "$BUILD_DIR/demo-edit.mp4" --json "$BUILD_DIR/demo-edit.json"
