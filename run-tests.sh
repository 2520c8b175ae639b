#!/usr/bin/env bash
# Builds everything and runs all tests: unit, golden (vs Hugging Face transformers fixtures),
# CLI contracts and bad input (ctest), then each libFuzzer target for a short smoke run.
set -euo pipefail
cd "$(dirname "$0")"
bash tools/install-deps.sh
jobs=$(nproc)
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
ninja -C build -j"$jobs"
(cd build && ctest --output-on-failure -j"$jobs")

# Fuzz smoke run (longer runs are manual: ./build-fuzz/fuzz/fuzz_NAME -max_total_time=600 CORPUS).
if command -v clang++ >/dev/null; then
  CC=clang CXX=clang++ cmake -S . -B build-fuzz -G Ninja -DGDN_FUZZ=ON -DGDN_TESTS=OFF -DGDN_NATIVE=OFF -DGDN_CUDA=OFF \
    -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
  # Only the fuzz targets (and what they compile), not the whole tree a second time.
  fuzz_targets=$(ninja -C build-fuzz -t targets all | grep -oE '^fuzz_[a-z_]+:' | tr -d ':' | sort -u)
  ninja -C build-fuzz -j"$jobs" $fuzz_targets
  for f in build-fuzz/fuzz/fuzz_*; do
    [ -x "$f" ] || continue
    name=$(basename "$f" | sed 's/^fuzz_//')
    corpus=$(mktemp -d)
    seeds=fuzz/corpus/$name
    [ -d "$seeds" ] || seeds=fuzz/corpus/${name%%_*}  # e.g. safetensors_header → safetensors
    cp -r "$seeds"/. "$corpus"/ 2>/dev/null || true
    echo "fuzzing $(basename "$f") for 20 s"
    "$f" -max_total_time=20 -print_final_stats=0 "$corpus" 2>&1 | tail -n 2
    rm -rf "$corpus"
  done
fi
