// Per-token FP8 E4M3 activation quantization as device helpers, shared by the linear layers'
// pre-kernel (linear_act.cu) and the producers that quantize their own output for the next linear
// (add_rmsnorm, swiglu, the DeltaNet gated norm: ops_cuda.h Fp8RowOut). Both give the same codes
// and scale, bit for bit, as kernels/cpu/quant.cpp applied to the row's BF16 values:
//   s = max(amax / 448, 1 / (448·512))   (vLLM's minimum scaling factor), code = e4m3_rn_sat(x / s).
#pragma once

#include <cuda_bf16.h>

#include <cstdint>

#include "kernels/cuda/fp_codecs.cuh"

namespace gdn::cuda::detail {

__device__ __forceinline__ float fp8_token_scale(float amax) { return fmaxf(amax / 448.f, 1.f / (448.f * 512.f)); }

// Four BF16 values → four E4M3 codes (little-endian in a word).
__device__ __forceinline__ uint32_t fp8_codes4(float a, float b, float c, float d, float s) {
  return f32_to_e4m3(a / s) | (f32_to_e4m3(b / s) << 8) | (f32_to_e4m3(c / s) << 16) | (f32_to_e4m3(d / s) << 24);
}

// Maximum over the CTA (every thread gets it). smem: ≥ 32 floats; blockDim a multiple of 32.
// Starts with a barrier so the scratch can be reused across calls.
__device__ __forceinline__ float cta_max(float v, float* smem) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, nw = blockDim.x >> 5;
  __syncthreads();
  if (lane == 0) smem[warp] = v;
  __syncthreads();
  v = lane < nw ? smem[lane] : 0.f;
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

}  // namespace gdn::cuda::detail
