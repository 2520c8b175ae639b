// Activation pre-kernels of the linear layers (quantize x the way the checkpoint declares, into the
// padded layouts the GEMMs read) and the NVFP4 → BF16 dequantization of weight slices (large M).
//
// Numerics replicate kernels/cpu/quant.cpp exactly: the same scale expressions evaluated in the
// same order with IEEE division (nvcc's default -prec-div=true), E4M3 via the hardware RNE
// saturating conversion (== float_to_fp8_e4m3), E2M1 with the same thresholds. GPU and CPU thus
// feed identical quantized operands to their dot products.
//
// Each pre-kernel lets the following GEMM launch early (programmatic dependent launch): the GEMM
// streams its first weights while this kernel runs, then waits for its memory.
#include <cuda_bf16.h>

#include <algorithm>

#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/act_fp8.cuh"
#include "kernels/cuda/fp_codecs.cuh"
#include "kernels/cuda/launch_pdl.h"
#include "kernels/cuda/linear_internal.h"

namespace gdn::cuda::detail {

namespace {

__global__ void act_copy_kernel(const __nv_bfloat16* x, int64_t M, int64_t K, __nv_bfloat16* out, int64_t ldo) {
  griddep_wait();
  griddep_launch_dependents();
  const int64_t m = blockIdx.y;
  for (int64_t k = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; k < ldo; k += int64_t(gridDim.x) * blockDim.x)
    out[m * ldo + k] = (m < M && k < K) ? x[m * K + k] : __float2bfloat16(0.f);
}

// One CTA per token, single pass: the row stays in registers (16-byte loads, ≤ kTokVec per thread),
// amax over the CTA, then 8 codes per 8-byte store. Rows too long or misaligned for it use the
// two-pass kernel below.
constexpr int kTokThreads = 512, kTokVec = 8;  // K ≤ 512·8·8 = 32768
__global__ void __launch_bounds__(kTokThreads) act_fp8_token_vec_kernel(const __nv_bfloat16* x, int64_t M, int64_t K,
                                                                        uint8_t* out, float* sx, int64_t ldo) {
  __shared__ float smem[32];
  griddep_wait();
  griddep_launch_dependents();
  const int64_t m = blockIdx.x;
  uint2* o = reinterpret_cast<uint2*>(out + m * ldo);
  const int64_t n8 = K / 8;
  uint4 v[kTokVec];
  float amax = 0.f;
#pragma unroll
  for (int j = 0; j < kTokVec; ++j) {
    const int64_t q = threadIdx.x + int64_t(j) * kTokThreads;
    v[j] = (m < M && q < n8) ? *reinterpret_cast<const uint4*>(x + m * K + 8 * q) : make_uint4(0, 0, 0, 0);
    const __nv_bfloat162* h = reinterpret_cast<const __nv_bfloat162*>(&v[j]);
#pragma unroll
    for (int e = 0; e < 4; ++e) {
      const float2 f = __bfloat1622float2(h[e]);
      amax = fmaxf(amax, fmaxf(fabsf(f.x), fabsf(f.y)));
    }
  }
  amax = cta_max(amax, smem);
  const float s = fp8_token_scale(amax);  // == quant.cpp's per-token scale
#pragma unroll
  for (int j = 0; j < kTokVec; ++j) {
    const int64_t q = threadIdx.x + int64_t(j) * kTokThreads;
    if (q >= ldo / 8) continue;
    const __nv_bfloat162* h = reinterpret_cast<const __nv_bfloat162*>(&v[j]);
    uint32_t lo = 0, hi = 0;
#pragma unroll
    for (int e = 0; e < 4; ++e) {
      const float2 f = __bfloat1622float2(h[e]);
      const uint32_t pair = f32_to_e4m3(f.x / s) | (f32_to_e4m3(f.y / s) << 8);
      if (e < 2) lo |= pair << (16 * e);
      else hi |= pair << (16 * (e - 2));
    }
    o[q] = m < M ? make_uint2(lo, hi) : make_uint2(0, 0);
  }
  // Padding beyond what the registers covered (ldo > 8·kTokVec·kTokThreads never happens: checked by the launcher).
  if (threadIdx.x == 0) sx[m] = m < M ? s : 0.f;
}

// One CTA per token: amax over the row, then codes. 4 elements per thread and step (32-bit stores).
__global__ void act_fp8_token_kernel(const __nv_bfloat16* x, int64_t M, int64_t K, uint8_t* out, float* sx,
                                     int64_t ldo) {
  __shared__ float smem[32];
  griddep_wait();
  griddep_launch_dependents();
  const int64_t m = blockIdx.x;
  uint32_t* o = reinterpret_cast<uint32_t*>(out + m * ldo);
  if (m >= M) {
    for (int64_t k = threadIdx.x; k < ldo / 4; k += blockDim.x) o[k] = 0;
    if (threadIdx.x == 0) sx[m] = 0.f;
    return;
  }
  const __nv_bfloat16* xr = x + m * K;
  float amax = 0.f;
  for (int64_t k = threadIdx.x; k < K; k += blockDim.x) amax = fmaxf(amax, fabsf(__bfloat162float(xr[k])));
  amax = cta_max(amax, smem);
  const float s = fp8_token_scale(amax);  // == quant.cpp's per-token scale
  for (int64_t q = threadIdx.x; q < ldo / 4; q += blockDim.x) {
    uint32_t packed = 0;
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      const int64_t k = 4 * q + i;
      const uint32_t c = k < K ? f32_to_e4m3(__bfloat162float(xr[k]) / s) : 0u;
      packed |= c << (8 * i);
    }
    o[q] = packed;
  }
  if (threadIdx.x == 0) sx[m] = s;
}

// One warp per (token, 128-wide K group); lane handles 4 consecutive elements.
// Scales of tokens < split go to sx[kb][sx_ld], the others to tail[kb][tail_ld] (cuBLASLt takes a
// multiple of 4 tokens; the ≤ 3 left over run through the small-M kernel with their own scales).
__global__ void act_fp8_group_kernel(const __nv_bfloat16* x, int64_t M, int64_t K, uint8_t* out, float* sx,
                                     int64_t sx_ld, int64_t split, float* tail, int64_t tail_ld, int64_t ldo) {
  griddep_wait();
  griddep_launch_dependents();
  const int64_t m = blockIdx.x;
  const int lane = threadIdx.x & 31;
  const int64_t kb = int64_t(blockIdx.y) * (blockDim.x >> 5) + (threadIdx.x >> 5);
  if (kb * 128 >= ldo) return;
  float v[4];
  float amax = 0.f;
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const int64_t k = kb * 128 + 4 * lane + i;
    v[i] = (m < M && k < K) ? __bfloat162float(x[m * K + k]) : 0.f;
    amax = fmaxf(amax, fabsf(v[i]));
  }
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) amax = fmaxf(amax, __shfl_xor_sync(0xffffffffu, amax, o));
  const float s = fmaxf(amax, 1e-10f) / 448.f;  // == std::max(amax, 1e-10f) / 448.f
  uint32_t packed = 0;
#pragma unroll
  for (int i = 0; i < 4; ++i) packed |= f32_to_e4m3(v[i] / s) << (8 * i);
  *reinterpret_cast<uint32_t*>(out + m * ldo + kb * 128 + 4 * lane) = packed;
  if (lane == 0) {
    float* dst = m < split ? sx + kb * sx_ld + m : tail + kb * tail_ld + (m - split);
    *dst = m < M ? s : 0.f;
  }
}

// NVFP4 16-blocks with the static global scale: 4 lanes per block, 4 elements per lane.
__global__ void act_nvfp4_kernel(const __nv_bfloat16* x, int64_t M, int64_t K, float gx, __nv_bfloat16* out,
                                 int64_t ldo) {
  griddep_wait();
  griddep_launch_dependents();
  const int64_t m = blockIdx.x;
  const int64_t k0 = (int64_t(blockIdx.y) * blockDim.x + threadIdx.x) * 4;
  if (k0 >= ldo) return;  // ldo is a multiple of 256 and blockDim of 64: whole blocks exit together
  float v[4];
  float amax = 0.f;
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    v[i] = (m < M && k0 + i < K) ? __bfloat162float(x[m * K + k0 + i]) : 0.f;
    amax = fmaxf(amax, fabsf(v[i]));
  }
  amax = fmaxf(amax, __shfl_xor_sync(0xffffffffu, amax, 1));
  amax = fmaxf(amax, __shfl_xor_sync(0xffffffffu, amax, 2));
  const float s = nvfp4_act_scale(amax, gx);
  __nv_bfloat16 q[4];
#pragma unroll
  for (int i = 0; i < 4; ++i) q[i] = __float2bfloat16_rn(nvfp4_act_value(v[i], s, gx));
  *reinterpret_cast<uint2*>(out + m * ldo + k0) = *reinterpret_cast<const uint2*>(q);
}

// One thread per 16-byte weight piece (32 elements) → 4 × 16-byte BF16 stores in natural order.
__global__ void nvfp4_dequant_kernel(const uint8_t* w, int64_t ldw, const uint8_t* bs, int64_t ld_bs,
                                     int64_t r0, int64_t nrows, __nv_bfloat16* out, int64_t ldo) {
  const int64_t pieces = ldw / 16;
  const int64_t p = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (p >= nrows * pieces) return;
  const int64_t r = r0 + p / pieces, o = (p % pieces) * 16;
  const int64_t g = o / 128, c = (o % 128) / 64, t = (o % 64) / 16;
  const uint4 u = *reinterpret_cast<const uint4*>(w + r * ldw + o);
  const uint32_t sc = *reinterpret_cast<const uint32_t*>(bs + r * ld_bs + g * 16 + 4 * t) >> (16 * c);
  const __nv_bfloat162 s_lo = nvfp4_scale_pair<0>(sc), s_hi = nvfp4_scale_pair<1>(sc);
  const uint32_t words[4] = {u.x, u.y, u.z, u.w};
  uint32_t d[16];
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const __nv_bfloat162 s = i < 2 ? s_lo : s_hi;
    uint32_t raw[4];
    nvfp4_word_raw(words[i], raw);
#pragma unroll
    for (int k = 0; k < 4; ++k) d[4 * i + k] = bf16x2_bits(__hmul2(bits_bf16x2(raw[k]), s));
  }
  uint4* dst = reinterpret_cast<uint4*>(out + (r - r0) * ldo + g * 256 + c * 128 + t * 32);
#pragma unroll
  for (int i = 0; i < 4; ++i) dst[i] = make_uint4(d[4 * i], d[4 * i + 1], d[4 * i + 2], d[4 * i + 3]);
}

}  // namespace

void launch_act_copy(const __nv_bfloat16* x, int64_t M, int64_t K, __nv_bfloat16* out, int64_t rows_out, int64_t ldo,
                     cudaStream_t s, bool pdl) {
  const unsigned bx = unsigned(std::min<int64_t>((ldo + 255) / 256, 64));
  launch_pdl(act_copy_kernel, dim3(bx, unsigned(rows_out)), dim3(256), 0, s, pdl, x, M, K, out, ldo);
}

void launch_act_fp8_token(const __nv_bfloat16* x, int64_t M, int64_t K, uint8_t* out, float* sx, int64_t rows_out,
                          int64_t ldo, cudaStream_t s, bool pdl) {
  const bool vec = K % 8 == 0 && (reinterpret_cast<uintptr_t>(x) & 15) == 0 && ldo <= int64_t(8) * kTokVec * kTokThreads;
  if (vec)
    launch_pdl(act_fp8_token_vec_kernel, dim3(unsigned(rows_out)), dim3(kTokThreads), 0, s, pdl, x, M, K, out, sx, ldo);
  else
    launch_pdl(act_fp8_token_kernel, dim3(unsigned(rows_out)), dim3(512), 0, s, pdl, x, M, K, out, sx, ldo);
}

void launch_act_fp8_group(const __nv_bfloat16* x, int64_t M, int64_t K, uint8_t* out, float* sx, int64_t sx_ld,
                          int64_t split, float* tail, int64_t tail_ld, int64_t rows_out, int64_t ldo, cudaStream_t s,
                          bool pdl) {
  const int64_t L = ldo / 128;
  launch_pdl(act_fp8_group_kernel, dim3(unsigned(rows_out), unsigned((L + 7) / 8)), dim3(256), 0, s, pdl, x, M, K, out, sx,
         sx_ld, split, tail, tail_ld, ldo);
}

void launch_act_nvfp4(const __nv_bfloat16* x, int64_t M, int64_t K, float gx, __nv_bfloat16* out, int64_t rows_out,
                      int64_t ldo, cudaStream_t s, bool pdl) {
  launch_pdl(act_nvfp4_kernel, dim3(unsigned(rows_out), unsigned((ldo / 4 + 63) / 64)), dim3(64), 0, s, pdl, x, M, K, gx,
         out, ldo);
}

void launch_nvfp4_dequant(const DeviceLinear& w, int64_t r0, int64_t nrows, __nv_bfloat16* out, cudaStream_t s) {
  const int64_t ldw = w.cols_pad / 2, pieces = nrows * (ldw / 16);
  launch_pdl(nvfp4_dequant_kernel, dim3(unsigned((pieces + 255) / 256)), dim3(256), 0, s, false,
         static_cast<const uint8_t*>(w.weight), ldw, w.block_scales, w.cols_pad / 16, r0, nrows, out, w.cols_pad);
}

}  // namespace gdn::cuda::detail
