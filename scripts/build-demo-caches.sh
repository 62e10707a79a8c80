#!/usr/bin/env bash
# The demo model's training caches (models/demo/README.md, docs/TRAIN.md) from the training footage of
# scripts/fetch-demo-data.sh, decoded here (FFmpeg) so they can be carried to the GPU machine:
#   scripts/build-demo-caches.sh vae DATA PKG SANASTREAM
#       DATA/caches/vae: frames, 9 per clip (1 + 2·4), 256×256, windows spread over every training
#       video in proportion to its length, one per video at least (24 clips, 42 MB): what the VAE
#       trains on.
#   scripts/build-demo-caches.sh dit DATA PKG SANASTREAM
#       DATA/caches/dit: fp16 latents of PKG's VAE, 41 frames per clip (11 latent frames), 320×256,
#       up to 6 windows per video; DATA/caches/long: 97 frames per clip (25 latent frames = the first
#       chunk and 8 more of 3), one window per 6 s of each video of ≥ 6 s, at most 2 per video: CRR's
#       target-free clips. The clips carry no prompts: the trainer's edit families give them.
#   scripts/build-demo-caches.sh search DATA PKG SANASTREAM
#       DATA/caches/search: latents of PKG's VAE, 101 frames per clip (26 latent frames = the first
#       chunk and 7 more of 3), 448×256, the held-out videos (footage/heldout/) from their start, each
#       with an edit prompt of the suite's: the real inputs of `quantize --profile --data` (docs/QUANT.md).
# PKG is a model package (its VAE encodes the latents, its text encoder the empty prompt); DATA holds
# footage/train/. Frames are read at 16 fps. Manifests are written beside the caches. A cache that
# exists (index.json) is kept. On failure: one line on stderr, exit 1.
set -euo pipefail

if [ $# -ne 4 ] || { [ "$1" != vae ] && [ "$1" != dit ] && [ "$1" != search ]; }; then
  echo "usage: $0 vae|dit|search DATA PKG SANASTREAM" >&2
  exit 2
fi
stage=$1 data=$2 pkg=$3 bin=$4
fail() {
  echo "build-demo-caches: $*" >&2
  exit 1
}
footage=$([ "$stage" = search ] && echo heldout || echo train)
[ -d "$data/footage/$footage" ] || fail "expected $data/footage/$footage (scripts/fetch-demo-data.sh $data ...)"
[ -f "$pkg/model.json" ] || fail "expected a model package at $pkg"
[ -x "$bin" ] || fail "expected the sanastream executable at $bin"
command -v ffprobe >/dev/null || fail "expected ffprobe (Debian package ffmpeg)"
mkdir -p "$data/caches"

# "duration path" per video, longest first (ties by name: a fixed order).
videos=$(for f in "$data"/footage/$footage/*; do
  d=$(ffprobe -v error -show_entries format=duration -of csv=p=0 "$f" 2>/dev/null | head -1)
  [[ "$d" =~ ^[0-9.]+$ ]] || fail "cannot read the duration of $f"
  echo "$d $f"
done | sort -k1,1gr -k2)

# manifest FILE CLIP_SECONDS MAX_PER_VIDEO SPACING [MIN_SECONDS]: windows of CLIP_SECONDS at most every
# SPACING seconds of each video of at least MIN_SECONDS (default 0): one window per video at least, a
# video shorter than a window from 0 (its last frame repeated).
manifest() {
  local out=$1 clip=$2 max=$3 spacing=$4 min=${5:-0}
  awk -v clip="$clip" -v max="$max" -v spacing="$spacing" -v min="$min" '$1 >= min {
      d = $1; n = split($2, parts, "/"); path = "../footage/train/" parts[n]; room = d - clip - 0.25
      n = room <= 0 ? 1 : int(room / spacing) + 1
      if (n > max) n = max
      for (i = 0; i < n; ++i) {
        start = n == 1 ? 0 : room * i / (n - 1)
        if (start < 0) start = 0
        printf("{\"source_video\": \"%s\", \"start\": %.3f}\n", path, start)
      }
    }' <<<"$videos" >"$out.part"
  mv -f "$out.part" "$out"
}

cache() {  # NAME SIZE FRAMES [train-cache options]
  local name=$1 size=$2 frames=$3
  shift 3
  [ -f "$data/caches/$name/index.json" ] && return 0
  rm -rf "$data/caches/$name"
  "$bin" train-cache --manifest "$data/caches/$name.jsonl" --model "$pkg" --size "$size" --frames "$frames" --fps 16 \
    --out "$data/caches/$name" "$@" >"$data/caches/$name.log" 2>&1 ||
    fail "train-cache $name failed: $(tail -n1 "$data/caches/$name.log")"
}

if [ "$stage" = search ]; then
  # Each held-out video (by name) from its start with one prompt (and its reverse, which train-cache
  # pairs with it).
  prompts=("make it look like night|make it look like day" "make it black and white|bring the colours back"
           "give it a sepia tone|remove the sepia tone")
  i=0
  for f in "$data"/footage/heldout/*; do
    IFS='|' read -r prompt reverse <<<"${prompts[i % ${#prompts[@]}]}"
    printf '{"source_video": "../footage/heldout/%s", "prompt": "%s", "reverse_prompt": "%s"}\n' "$(basename "$f")" \
      "$prompt" "$reverse"
    i=$((i + 1))
  done >"$data/caches/search.jsonl.part"
  mv -f "$data/caches/search.jsonl.part" "$data/caches/search.jsonl"
  cache search 448x256 101 --latents
elif [ "$stage" = vae ]; then
  # Windows every (total length / 12) seconds of every video, one per video at least: 24 clips (42 MB).
  total=$(awk '{ s += $1 } END { print s }' <<<"$videos")
  manifest "$data/caches/vae.jsonl" 0.5 1000 "$(awk -v t="$total" 'BEGIN { print t / 12 }')"
  cache vae 256x256 9
else
  manifest "$data/caches/dit.jsonl" 2.5625 6 2.6
  # Videos shorter than a long clip would only repeat their last frame: not long clips.
  manifest "$data/caches/long.jsonl" 6.0625 2 6 6.3125
  cache dit 320x256 41 --latents --latent-dtype fp16
  cache long 320x256 97 --latents --latent-dtype fp16
fi
echo "build-demo-caches: $stage caches in $data/caches ($(du -sh "$data/caches" | cut -f1))"
