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
#  bf16:  the consumers of BF16 GEMM outputs vs not rounding an fp32 input (SwiGLU and the residual
#         add in ops.cu, the gated norm's z, the conv's x) and linear_forward_bf16 never applying (at
#         large M; at small M); the FP8 wgmma kernel's BF16 store truncating instead of rounding;
#         the decode SwiGLU's cluster exchange of the row maximum vs each CTA using its own.
#  attn:  the wgmma attention prefill vs not zeroing V rows past the last key, and a wrong leading
#         byte offset of the N-major V descriptor.
#  gemv:  the NVFP4 GEMV (1-3 tokens) vs reading the codes unswizzled, row g's scales for row g+8,
#         one partial slot for both segments of a CTA, and every token's activations from token 0.
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
    bf16)
      run_case bf16_unchanged src/kernels/cuda/ops.cu "" 'OpsSwiglu.*:OpsRmsnorm.*:GdnNorm.*:GdnConv.*:Layouts/LinearBf16Out.*' pass
      run_case fp32_in_not_rounded src/kernels/cuda/ops.cu 's/return bf16_round4(\*reinterpret_cast<const float4\*>(p));/return *reinterpret_cast<const float4*>(p);/' \
        'OpsSwiglu.Bf16InputEqualsFp32:OpsRmsnorm.Bf16DeltaEqualsFp32' fail
      run_case z_not_rounded src/kernels/cuda/gdn_recurrent.cu 's/float zval(float v) { return __bfloat162float(__float2bfloat16_rn(v)); }/float zval(float v) { return v; }/' \
        'GdnNorm.Bf16ZEqualsFp32' fail
      run_case conv_x_not_rounded src/kernels/cuda/gdn_conv.cu 's/r.v\[i\] = __bfloat162float(__float2bfloat16_rn(r.v\[i\]));/r.v[i] = r.v[i];/' \
        'GdnConv.Bf16InputEqualsFp32' fail
      run_case bf16_out_never src/kernels/cuda/linear_forward.cpp 's/  return lt_token_count(w, M) == M \&\& /  return false \&\& /' \
        'Layouts/LinearBf16Out.*' fail
      run_case bf16_small_truncated src/kernels/cuda/linear_wgmma.cu 's/__float2bfloat16_rn(out)/__float2bfloat16_rz(out)/' \
        'LinearWgmmaLayouts/LinearWgmma.Bf16OutputIsRoundedFp32/*:GpuModel.Bf16GemmOutputsEqualFp32' fail
      run_case bf16_small_never src/kernels/cuda/linear_forward.cpp 's/if (c.small) return small_bf16_applies(w, M, c.fast);/if (c.small) return false;/' \
        'LinearWgmmaLayouts/LinearWgmma.Bf16OutputIsRoundedFp32/*' fail
      run_case swiglu_cluster_own_max src/kernels/cuda/ops.cu 's/(threadIdx.x \& 31) < kSwParts ?/(threadIdx.x \& 31) < 1 ?/' \
        'OpsFp8Out.Swiglu' fail
      ;;
    gemv)
      F=src/kernels/cuda/linear_nvfp4_gemv.cu T='Layouts/Linear27B.*nvfp4*:Layouts/Nvfp4Gemv.*:Layouts/FusedLinear.*nvfp4*'
      run_case gemv_unchanged $F "" "$T" pass
      run_case gemv_no_swizzle $F 's/const uint32_t u0 = uint32_t(tq ^ pr) << 4/const uint32_t u0 = uint32_t(tq) << 4/' "$T" fail
      run_case gemv_scale_of_row_a $F 's/rb_row \* 16 + 4 \* tq/ra_row * 16 + 4 * tq/' "$T" fail
      run_case gemv_split_slot src/kernels/cuda/wgmma_ptx.cuh 's/(seg == i0 ? 0 : 1)) \* NR/(0)) * NR/' "$T" fail
      run_case gemv_token_row $F 's/(gq < p.M ? gq : 0) \* 128/0 * 128/' "$T" fail
      ;;
    attn)
      T='AttnPrefill.*Bf16'
      run_case attn_unchanged src/kernels/cuda/attention_prefill_wgmma.cu "" "$T" pass
      run_case attn_no_v_zeroing src/kernels/cuda/attention_prefill_wgmma.cu 's/if (valid < kBlk) {  \/\/ rows past/if (false) {  \/\/ rows past/' "$T" fail
      run_case attn_v_lbo src/kernels/cuda/attention_prefill_wgmma.cu 's/sw128_desc_mn(v_s + kk \* 2048, kColBlock)/sw128_desc_mn(v_s + kk * 2048, kColBlock \/ 2)/' "$T" fail
      ;;
  esac
done
ninja -C "$BUILD" -j16 gdn_gpu_tests >>/tmp/m.log 2>&1
