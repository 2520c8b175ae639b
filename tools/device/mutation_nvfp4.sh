#!/usr/bin/env bash
# Shows that CodecWeightDecode.Nvfp4EveryScaleByteExact catches a broken NVFP4 device scale
# encoding: runs it on the tree as is, then on three deliberately broken copies of the encoder in
# linear_upload.cpp (sign not folded into the codes, a wrong subnormal entry, zero mapped like the
# smallest subnormal), each of which must fail. The source is restored at the end.
#   run(command="bash tools/device/mutation_nvfp4.sh", carry=[".deps/debs"])
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
source tools/device/common.sh
gdn_unpack_deps /tmp/gdn-deps >/dev/null || true
BUILD="${GDN_BUILD_DIR:-$ROOT/build-gpu}"
F=src/kernels/cuda/linear_upload.cpp
cp "$F" /tmp/linear_upload.orig
cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_POLICY_VERSION_MINIMUM=3.5 "${CMAKE_DEPS[@]}" >/tmp/m.log 2>&1
run_case() {  # name sed-expression expected(pass|fail)
  cp /tmp/linear_upload.orig "$F"
  [[ -n "$2" ]] && sed -i "$2" "$F"
  if ! ninja -C "$BUILD" -j16 gdn_gpu_tests >>/tmp/m.log 2>&1; then echo "[mutation] $1: BUILD FAILED"; return; fi
  if "$BUILD/gdn_gpu_tests" --gtest_filter='CodecWeightDecode.Nvfp4EveryScaleByteExact' >/tmp/m_$1.log 2>&1; then got=pass; else got=fail; fi
  echo "[mutation] $1: test ${got} (expected $3) $(grep -m1 -o 'weight \[.*' /tmp/m_$1.log | cut -c1-110)"
}
run_case unchanged "" pass
run_case no_sign_fold 's/(s \& 0x80) != 0 \&\& (s \& 0x7F) != 0x7F/false/' fail
run_case bad_subnormal 's/{0, 0, 8, 12, 16, 18, 20, 22}/{0, 0, 8, 12, 16, 18, 20, 23}/' fail
run_case zero_as_min_subnormal 's/if (mag == 0) return 0xA0;/if (mag == 0) return 0x00;/' fail
cp /tmp/linear_upload.orig "$F"
ninja -C "$BUILD" -j16 gdn_gpu_tests >>/tmp/m.log 2>&1
