#!/usr/bin/env bash
# The demo DiT's training on the GPU machine (device tool), from the repository root:
#   scripts/gpu/demo-dit.sh DATA SECS_A [SECS_B]
# DATA (carried beside the checkout, e.g. .demo) holds caches/{dit,long} (build-demo-caches.sh dit),
# vae-bf16/ and text-encoder/ (the demo VAE and the base package's text encoder); they are linked
# where the configs look (build/demo-data/caches, build/demo/vae-bf16, build/demo/text-encoder).
# Builds the `sanastream` target (CUDA, no FFmpeg/OpenCV), then stage A (configs/train/demo_dit.json)
# for SECS_A s, resuming build/demo/dit-a when an earlier call on this machine left it. With SECS_B,
# stage B from copies of stage A's run: CRR on the long clips for SECS_B s (N steps), then the same N
# steps without CRR. $OUT receives each run's EMA weights (a tar in 15 MiB pieces) and log.csv.
set -uo pipefail
data=$(realpath "$1"); secs_a=$2; secs_b=${3:-0}
export PATH="$PATH:/usr/local/cuda/bin"
mkdir -p build/demo-data build/demo
ln -sfn "$data/caches" build/demo-data/caches
ln -sfn "$data/vae-bf16" build/demo/vae-bf16
ln -sfn "$data/text-encoder" build/demo/text-encoder
BUILD=build-gpu
t0=$(date +%s)
cmake -S . -B $BUILD -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_PREFIX_PATH="$(python3 -c 'import torch; print(torch.utils.cmake_prefix_path)')" \
  -DSANASTREAM_CUDA=ON -DSANASTREAM_FFMPEG=OFF -DSANASTREAM_OPENCV=OFF -DCMAKE_CUDA_ARCHITECTURES=90a \
  >$BUILD.configure.log 2>&1 || { tail -20 $BUILD.configure.log; exit 1; }
cmake --build $BUILD --target sanastream >$BUILD.build.log 2>&1 || { grep -m 20 -A5 error $BUILD.build.log; exit 1; }
echo "build: $(( $(date +%s) - t0 )) s"
S=$BUILD/apps/cli/sanastream
pack() {  # RUN: the run's last checkpoint's EMA weights in 15 MiB pieces, and its log
  local ck=build/demo/$1/checkpoints/$(cat build/demo/$1/checkpoints/latest)
  tar cf - -C "$ck" dit_ema.safetensors text_encoder_ema.safetensors | split -b 15M - "$OUT/$1.tar.part-"
  cp build/demo/$1/log.csv "$OUT/$1.log.csv"
  tail -1 build/demo/$1/log.csv
}
last_step() { tail -1 build/demo/$1/log.csv | cut -d, -f1; }
$S train --config configs/train/demo_dit.json --time-limit "$secs_a" 2>&1 | tail -2
pack dit-a
[ "$secs_b" != 0 ] || exit 0
na=$(last_step dit-a)
for r in dit-b dit-b-crr; do rm -rf build/demo/$r; cp -r build/demo/dit-a build/demo/$r; done
$S train --config configs/train/demo_dit_b_crr.json --time-limit "$secs_b" 2>&1 | tail -2
n=$(last_step dit-b-crr)
[ "$n" -gt "$na" ] || n=$((na + 100))
echo "stage A: $na steps; stage B: CRR to step $n, then the run without CRR to the same step"
$S train --config configs/train/demo_dit_b.json --max-steps "$n" 2>&1 | tail -2
pack dit-b-crr
pack dit-b
