#!/usr/bin/env bash
# Fetches the real footage the video I/O tests read into DIR (never committed):
#   realshort.mp4  320×240 H.264 + AAC, 36 frames    (Debian package python3-imageio)
#   cockatoo.mp4   1280×720 H.264 + MP3, 280 frames  (python3-imageio)
#   vtest.avi      768×576 MS-MPEG-4 v3, 795 frames  (opencv-doc)
# Idempotent: when all three are in DIR it does nothing. Otherwise `apt-get download` into a
# temporary directory (no root needed; without package lists on the machine, private ones are
# fetched first), `dpkg-deb -x`, and each file is copied into DIR under a temporary name and
# renamed, so DIR never holds a partial file. On failure: one line on stderr, exit 1. CTest runs it
# as the fixture `fetch_test_media` (tests/CMakeLists.txt).
set -euo pipefail

if [ $# -ne 1 ]; then
  echo "usage: $0 DIR" >&2
  exit 2
fi
dir=$1

# name, package, path inside the package
MEDIA=(
  "realshort.mp4 python3-imageio usr/lib/python3/dist-packages/imageio/resources/images/realshort.mp4"
  "cockatoo.mp4 python3-imageio usr/lib/python3/dist-packages/imageio/resources/images/cockatoo.mp4"
  "vtest.avi opencv-doc usr/share/doc/opencv-doc/examples/data/vtest.avi"
)

fail() {
  echo "fetch-test-media: $*" >&2
  exit 1
}

packages=()
for entry in "${MEDIA[@]}"; do
  read -r name package _ <<<"$entry"
  if [ ! -s "$dir/$name" ] && [[ " ${packages[*]} " != *" $package "* ]]; then packages+=("$package"); fi
done
[ ${#packages[@]} -eq 0 ] && exit 0

mkdir -p "$dir" || fail "cannot create $dir"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# shellcheck source=apt-download.sh
. "$(dirname "$0")/apt-download.sh"
apt_download "$work" "${packages[@]}" ||
  fail "expected to download ${packages[*]} with apt-get, got: $apt_download_error"
for deb in "$work"/*.deb; do
  dpkg-deb -x "$deb" "$work/root" || fail "expected a Debian package, got an unreadable $(basename "$deb")"
done
for entry in "${MEDIA[@]}"; do
  read -r name package path <<<"$entry"
  [ -s "$dir/$name" ] && continue
  [ -s "$work/root/$path" ] || fail "expected $path in package $package, got none"
  cp "$work/root/$path" "$dir/.$name.part" || fail "cannot write $dir/$name"
  mv -f "$dir/.$name.part" "$dir/$name"
done
echo "fetch-test-media: ${packages[*]} → $dir"
