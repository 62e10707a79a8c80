#!/usr/bin/env bash
# The README's main command, after the build: `sanastream edit` with the default model (the embedded
# demo package, models/demo/README.md) turns CLIP to night and writes OUT (and OUT.json, the run's
# summary). scripts/run.sh runs it on Debian's cockatoo.mp4; CTest (readme_main_command) on
# realshort.mp4.
#   scripts/demo-edit.sh SANASTREAM CLIP OUT
set -euo pipefail
if [ $# -ne 3 ]; then
  echo "usage: $0 SANASTREAM CLIP OUT" >&2
  exit 2
fi
exec "$1" edit -i "$2" -p "make it look like night" -o "$3" --json "$3.json"
