#!/usr/bin/env bash
# Issue 16's figures on a machine of 2+ GPUs (device tool, kind nvidia-h200-x2), after the CUDA build:
#   GPU_TESTS=0 scripts/gpu/run.sh scripts/gpu/multi-gpu.sh PART [DATA]
# PART tests: the multi-process and split tests (Gloo on the CPU ranks, NCCL between the GPUs) and
#             `bench --part e2e` at the defaults (2B, 1280×704, bf16, random weights) with --gpus 2 and
#             with --streams 2, each after its one-GPU run;
# PART train: `train` of configs/train/demo_dit_c.json (batch 256, chunked flow matching, from the demo
#             package) for STEPS steps (default 20) on one GPU, then on two (--gpus 2), from the same
#             start: steps/s and both loss columns. DATA holds caches/dit (build-demo-caches.sh dit).
# $OUT receives the JSON reports and logs.
set -uo pipefail
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
BUILD=${BUILD_DIR:-build-gpu}
part=$1
nvidia-smi --query-gpu=index,name,memory.total --format=csv,noheader
case "$part" in
tests)
  "$BUILD/tests/sanastream_tests" --gtest_filter='*DataParallel*:Bench.Split*:GpuMulti.*' 2>&1 | tail -15
  for flag in gpus streams; do
    sanastream bench --part e2e --$flag 2 --json "$OUT/bench_e2e_$flag.json" 2>&1 | tail -3
  done
  ;;
train)
  steps=${STEPS:-20}
  data=$(realpath "$2")
  mkdir -p build/demo-data build/demo
  ln -sfn "$data/caches" build/demo-data/caches
  for d in init-pkg vae-bf16; do ln -sfn "$PWD/models/demo" "build/demo/$d"; done
  for g in 1 2; do
    python3 - "$g" "$steps" <<'PY'
import json, sys
g, steps = sys.argv[1], int(sys.argv[2])
c = json.load(open("configs/train/demo_dit_c.json"))
c["output"] = f"../../build/demo/dp{g}"
c["max_steps"] = steps
c["checkpoint_every"] = 0
json.dump(c, open(f"configs/train/dp{g}.json", "w"), indent=1)
PY
    rm -rf "build/demo/dp$g"
    sanastream train --config "configs/train/dp$g.json" --gpus "$g" --json "$OUT/train_gpus$g.json" 2>&1 | tail -2
    cp "build/demo/dp$g/log.csv" "$OUT/train_gpus$g.log.csv"
  done
  paste -d, <(cut -d, -f1,3,8 "$OUT/train_gpus1.log.csv") <(cut -d, -f3,8 "$OUT/train_gpus2.log.csv")
  ;;
*)
  echo "usage: $0 tests | train DATA" >&2
  exit 2
  ;;
esac
