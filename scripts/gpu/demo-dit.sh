#!/usr/bin/env bash
# The demo DiT's training on the GPU machine (device tool), from the repository root:
#   scripts/gpu/demo-dit.sh DATA CONFIG SECS [CONFIG_CRR CONFIG_NO_CRR SECS_B]
# DATA (carried beside the checkout, e.g. .demo) holds caches/{dit,long} (build-demo-caches.sh dit),
# vae-bf16/ and text-encoder/ (the demo VAE and the base package's text encoder) and, for a stage that
# starts from trained weights, init-pkg/ (a package); they are linked where the configs look
# (build/demo-data/caches, build/demo/{vae-bf16,text-encoder,init-pkg}).
# Builds the `sanastream` target (CUDA, no FFmpeg/OpenCV), then trains CONFIG for SECS s, resuming its
# run directory when an earlier call on this machine left it (SECS 0: takes that run as it is). With
# CONFIG_CRR and CONFIG_NO_CRR, the CRR A/B at one budget from copies of that run: CRR for SECS_B s
# (to step N), then the same N steps without. $OUT receives each run's EMA weights (a tar in 15 MiB
# pieces) and log.csv.
set -uo pipefail
data=$(realpath "$1"); config=$2; secs=$3; config_crr=${4:-}; config_no=${5:-}; secs_b=${6:-0}
export PATH="$PATH:/usr/local/cuda/bin"
mkdir -p build/demo-data build/demo
ln -sfn "$data/caches" build/demo-data/caches
for d in vae-bf16 text-encoder init-pkg; do [ ! -e "$data/$d" ] || ln -sfn "$data/$d" build/demo/$d; done
BUILD=build-gpu
t0=$(date +%s)
cmake -S . -B $BUILD -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_PREFIX_PATH="$(python3 -c 'import torch; print(torch.utils.cmake_prefix_path)')" \
  -DSANASTREAM_CUDA=ON -DSANASTREAM_FFMPEG=OFF -DSANASTREAM_OPENCV=OFF -DCMAKE_CUDA_ARCHITECTURES=90a \
  >$BUILD.configure.log 2>&1 || { tail -20 $BUILD.configure.log; exit 1; }
cmake --build $BUILD --target sanastream >$BUILD.build.log 2>&1 || { grep -m 20 -A5 error $BUILD.build.log; exit 1; }
echo "build: $(( $(date +%s) - t0 )) s"
S=$BUILD/apps/cli/sanastream
run_dir() {  # CONFIG: its output directory
  python3 -c 'import json, os, sys; c = sys.argv[1]; print(os.path.normpath(os.path.join(os.path.dirname(c), json.load(open(c))["output"])))' "$1"
}
pack() {  # RUN_DIR: its last checkpoint's EMA weights in 15 MiB pieces, and its log
  local name; name=$(basename "$1")
  local ck=$1/checkpoints/$(cat "$1/checkpoints/latest")
  tar cf - -C "$ck" dit_ema.safetensors text_encoder_ema.safetensors | split -b 15M - "$OUT/$name.tar.part-"
  cp "$1/log.csv" "$OUT/$name.log.csv"
  tail -1 "$1/log.csv"
}
last_step() { tail -1 "$1/log.csv" | cut -d, -f1; }
a=$(run_dir "$config")
if [ "$secs" != 0 ]; then
  $S train --config "$config" --time-limit "$secs" 2>&1 | tail -2
  pack "$a"
fi
[ -n "$config_crr" ] || exit 0
na=$(last_step "$a")
crr=$(run_dir "$config_crr"); no=$(run_dir "$config_no")
for r in "$crr" "$no"; do rm -rf "$r"; cp -r "$a" "$r"; done
$S train --config "$config_crr" --time-limit "$secs_b" 2>&1 | tail -2
n=$(last_step "$crr")
[ "$n" -gt "$na" ] || n=$((na + 100))
echo "$(basename "$a"): $na steps; CRR to step $n, then the run without CRR to the same step"
$S train --config "$config_no" --max-steps "$n" 2>&1 | tail -2
pack "$crr"
pack "$no"
