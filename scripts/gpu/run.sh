#!/usr/bin/env bash
# The GPU build on the H200 machine (device tool), from a copy of the checkout:
# verifies the toolchain, configures against PyTorch's libtorch with CUDA for sm_90a (FFmpeg and
# OpenCV off: that image has neither), builds, runs the whole test suite including the GPU tests
# and golden-check on CUDA in fp32 and bf16, and writes logs to $OUT.
#   scripts/gpu/run.sh [EXTRA_COMMAND...]   extra commands run after the tests, with the built
#                                           `sanastream` on PATH (e.g. a benchmark), output in $OUT/extra.log
#   GPU_TESTS=0 scripts/gpu/run.sh ...      skip CTest and golden-check (benchmark iterations)
#   GPU_TESTS=gpu scripts/gpu/run.sh ...    only the GPU tests (names with Gpu or Cuda) and golden-check
#   GPU_CMAKE_ARGS="-DX=Y" ...              extra configure arguments
# Golden sets: $SANASTREAM_GOLDEN, else ./.golden (copy the sets there and name it in `carry`).
set -uo pipefail
cd "$(dirname "$0")/../.."
OUT=${OUT:-$PWD/gpu-out}
mkdir -p "$OUT"
SUMMARY="$OUT/summary.txt"
: >"$SUMMARY"
say() { echo "[gpu] $*" | tee -a "$SUMMARY"; }
start=$(date +%s)

# 1. What the build needs, checked first.
export PATH="$PATH:/usr/local/cuda/bin"
missing=()
command -v nvcc >/dev/null || missing+=("nvcc")
command -v cmake >/dev/null || missing+=("cmake")
command -v ninja >/dev/null || missing+=("ninja")
python3 -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)' 2>/dev/null ||
  missing+=("python3 with a CUDA-enabled torch")
for h in nlohmann/json.hpp CLI/CLI.hpp fmt/format.h gtest/gtest.h; do
  [ -e "/usr/include/$h" ] || [ -e "/usr/local/include/$h" ] || missing+=("header $h")
done
if [ ${#missing[@]} -gt 0 ]; then
  say "missing: ${missing[*]}"
  exit 1
fi
TORCH_PREFIX=$(python3 -c 'import torch; print(torch.utils.cmake_prefix_path)')
say "machine: $(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | head -1)"
say "torch $(python3 -c 'import torch; print(torch.__version__)'), $(nvcc --version | tail -1), $(cmake --version | head -1)"
# A copy without .git (the device tool's carry) names its commit in SANASTREAM_COMMIT.
say "commit ${SANASTREAM_COMMIT:-$(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet 2>/dev/null || echo ' (dirty)')}"

# 2. Configure and build.
BUILD=${BUILD_DIR:-build-gpu}
cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH="$TORCH_PREFIX" \
  -DSANASTREAM_CUDA=ON -DSANASTREAM_FFMPEG=OFF -DSANASTREAM_OPENCV=OFF -DCMAKE_CUDA_ARCHITECTURES=90a \
  ${GPU_CMAKE_ARGS:-} >"$OUT/configure.log" 2>&1 || { say "configure FAILED (configure.log)"; tail -30 "$OUT/configure.log"; exit 1; }
b0=$(date +%s)
cmake --build "$BUILD" >"$OUT/build.log" 2>&1 || { say "build FAILED (build.log)"; grep -m 20 -B2 -A6 "error" "$OUT/build.log"; exit 1; }
say "build: $(( $(date +%s) - b0 )) s"

# 3. Tests (GPU tests included) and golden-check on CUDA.
export SANASTREAM_GOLDEN=${SANASTREAM_GOLDEN:-$PWD/.golden}
status=0
if [ "${GPU_TESTS:-1}" != 0 ]; then
filter=()
[ "${GPU_TESTS:-1}" = gpu ] && filter=(-R "Gpu|Cuda")
(cd "$BUILD" && OMP_NUM_THREADS=2 ctest --output-on-failure -j 8 "${filter[@]}") >"$OUT/ctest.log" 2>&1 || status=1
say "ctest: $(grep -E 'tests passed|tests failed' "$OUT/ctest.log" | tail -1)"
grep -E "\(Failed\)|\(SEGFAULT\)|\(Timeout\)|Skipped" "$OUT/ctest.log" | sed 's/^/[gpu]   /' | tee -a "$SUMMARY"
SANASTREAM="$BUILD/apps/cli/sanastream"
for dt in fp32 bf16; do
  "$SANASTREAM" golden-check "$SANASTREAM_GOLDEN" --device cuda --dtype "$dt" --list --json "$OUT/golden_cuda_$dt.json" \
    >"$OUT/golden_cuda_$dt.log" 2>&1 || status=1
  grep -vE "^    " "$OUT/golden_cuda_$dt.log" | sed 's/^/[gpu]   /' | tee -a "$SUMMARY"
done
fi

# 4. Extra commands (benchmarks, profiles).
if [ $# -gt 0 ]; then
  say "extra: $*"
  (export PATH="$PWD/$BUILD/apps/cli:$PATH"; "$@") >"$OUT/extra.log" 2>&1 || status=1
  tail -40 "$OUT/extra.log"
fi
say "total: $(( $(date +%s) - start )) s, status $status"
exit $status
