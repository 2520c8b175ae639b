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

// NVFP4 activations (static global scale gx = G_x), as kernels/cpu/quant.cpp: per 16-block the scale
// s = e4m3(min(amax·gx / 6, 448)), each value e2m1_rn(clamp(v·gx / s, ±6))·s — exact in BF16 — or
// 0 when s is 0 (the 1/gx goes into the GEMM epilogue). Shared by linear_act.cu and the producers.
__device__ __forceinline__ float nvfp4_act_scale(float amax, float gx) {
  return e4m3_to_f32(f32_to_e4m3(fminf(amax * gx / 6.f, 448.f)));
}
__device__ __forceinline__ float nvfp4_act_value(float v, float s, float gx) {
  if (s == 0.f) return 0.f;
  const float t = fminf(fmaxf(v * gx / s, -6.f), 6.f);
  const float mag = e2m1_round_magnitude(fabsf(t));
  return (t < 0.f ? -mag : mag) * s;
}
// A 16-block spread over `LANES` consecutive lanes (4 values each: 4 lanes; 1 value: 16 lanes),
// every lane of the warp taking part: the block's amax.
template <int LANES>
__device__ __forceinline__ float nvfp4_block_amax(float a) {
#pragma unroll
  for (int o = 1; o < LANES; o <<= 1) a = fmaxf(a, __shfl_xor_sync(0xffffffffu, a, o));
  return a;
}

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
