#!/usr/bin/env bash
# Shows that tests catch what they guard: runs a gtest filter on the tree as is, then on
# deliberately broken copies of one source file each, which must fail. Sources are restored.
#   run(command="bash tools/device/mutation.sh", carry=[".deps/debs"])
# Sets (GDN_MUTATION_SETS, default "scale act"):
#  scale: CodecWeightDecode.Nvfp4EveryScaleByteExact vs the NVFP4 device scale encoding in
#         linear_upload.cpp (sign not folded into the codes, a wrong subnormal entry, zero mapped
#         like the smallest subnormal);
#  act:   the producers' NVFP4 activation quantization (OpsNvfp4Out.*, GpuModel.FusedNvfp4...) vs a
#         16-block amax taken over half the block, in the norms/SwiGLU (ops.cu) and in the DeltaNet
#         gated norm (gdn_recurrent.cu).
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
source tools/device/common.sh
gdn_unpack_deps /tmp/gdn-deps >/dev/null || true
BUILD="${GDN_BUILD_DIR:-$ROOT/build-gpu}"
cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_POLICY_VERSION_MINIMUM=3.5 "${CMAKE_DEPS[@]}" >/tmp/m.log 2>&1

run_case() {  # name file sed-expression(empty: unchanged) gtest-filter expected(pass|fail)
  local name=$1 file=$2 expr=$3 filter=$4 want=$5
  cp "$file" /tmp/mutation.orig
  [[ -n "$expr" ]] && sed -i "$expr" "$file"
  if ! ninja -C "$BUILD" -j16 gdn_gpu_tests >>/tmp/m.log 2>&1; then
    echo "[mutation] $name: BUILD FAILED"
  else
    local got=pass
    "$BUILD/gdn_gpu_tests" --gtest_filter="$filter" >"/tmp/m_$name.log" 2>&1 || got=fail
    echo "[mutation] $name: ${got} (expected $want); failed: $(grep -E '^\[  FAILED  \] [A-Za-z]' "/tmp/m_$name.log" | sed 's/ (.*//; s/.*\] //' | sort -u | tr '\n' ' ')"
  fi
  cp /tmp/mutation.orig "$file"
}

for set in ${GDN_MUTATION_SETS:-scale act}; do
  case $set in
    scale)
      F=src/kernels/cuda/linear_upload.cpp T='CodecWeightDecode.Nvfp4EveryScaleByteExact'
      run_case scale_unchanged $F "" "$T" pass
      run_case no_sign_fold $F 's/(s \& 0x80) != 0 \&\& (s \& 0x7F) != 0x7F/false/' "$T" fail
      run_case bad_subnormal $F 's/{0, 0, 8, 12, 16, 18, 20, 22}/{0, 0, 8, 12, 16, 18, 20, 23}/' "$T" fail
      run_case zero_as_min_subnormal $F 's/if (mag == 0) return 0xA0;/if (mag == 0) return 0x00;/' "$T" fail
      ;;
    act)
      T='OpsNvfp4Out.*:GpuModel.FusedNvfp4ActQuantEqualsPreKernel'
      run_case act_unchanged src/kernels/cuda/ops.cu "" "$T" pass
      run_case norm_swiglu_half_block_amax src/kernels/cuda/ops.cu 's/nvfp4_block_amax<4>/nvfp4_block_amax<2>/' "$T" fail
      run_case gated_half_block_amax src/kernels/cuda/gdn_recurrent.cu 's/nvfp4_block_amax<16>/nvfp4_block_amax<8>/' "$T" fail
      ;;
  esac
done
ninja -C "$BUILD" -j16 gdn_gpu_tests >>/tmp/m.log 2>&1
