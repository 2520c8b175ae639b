// Small fused ops of the GPU forward (ops_cuda.h): embedding lookup, residual add + zero-centred
// RMSNorm, SwiGLU.
//
// Numerics follow kernels/cpu bit for bit where IEEE allows it, on inputs rounded to BF16 where
// the ops take a GEMM output (the residual add's delta, SwiGLU's gate and up): every arithmetic step is written
// with the _rn intrinsics so nvcc cannot contract a multiply and an add into an FMA the CPU does not
// do (the CPU build is ISO C++, i.e. -ffp-contract=off); the RMSNorm sum of squares is accumulated in
// double like elementwise.cpp's inv_rms, so the fp32 scale is the same float except when the two
// double sums (different order) round to different floats. SwiGLU's expf differs from std::exp by
// ≤ 2 ulp, hence ~1e-7 relative.
#include <cooperative_groups.h>
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <string>

#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/act_fp8.cuh"
#include "kernels/cuda/fp_codecs.cuh"
#include "kernels/cuda/launch_pdl.h"
#include "kernels/cuda/linear_internal.h"
#include "kernels/cuda/ops_cuda.h"

namespace gdn::cuda {

namespace {

namespace cg = cooperative_groups;

// ---------------------------------------------------------------------------------------------
// Embedding lookup. One CTA per token; each thread decodes 8 consecutive elements per step with
// one vector load (16 B of BF16, 8 B of FP8, 4 B of NVFP4).

struct EmbedParams {
  const void* weight = nullptr;
  int64_t cols = 0, cols_pad = 0;
  int kind = 0;  // DeviceWeightKind
  const float* scales = nullptr;
  int block128 = 0;
  int64_t scale_ld = 0;
  const uint8_t* block_scales = nullptr;
  int parts = 1;
  int64_t part_begin[DeviceLinear::kMaxParts + 1] = {};
  float part_divisor[DeviceLinear::kMaxParts] = {};
};

__device__ __forceinline__ float e2m1_value(uint32_t nib) {
  const float m = (nib & 7u) < 4u ? float(nib & 7u) * 0.5f : ((nib & 7u) == 4u ? 2.f : (nib & 7u) == 5u ? 3.f : (nib & 7u) == 6u ? 4.f : 6.f);
  return (nib & 8u) ? -m : m;
}

__device__ __forceinline__ void store8(float* out, int64_t c, int64_t cols, const float (&v)[8]) {
  if (c + 8 <= cols && (reinterpret_cast<uintptr_t>(out + c) & 15) == 0) {
    reinterpret_cast<float4*>(out + c)[0] = make_float4(v[0], v[1], v[2], v[3]);
    reinterpret_cast<float4*>(out + c)[1] = make_float4(v[4], v[5], v[6], v[7]);
  } else {
#pragma unroll
    for (int j = 0; j < 8; ++j)
      if (c + j < cols) out[c + j] = v[j];
  }
}

__global__ void embed_kernel(EmbedParams p, const int32_t* __restrict__ ids, float* __restrict__ out) {
  const int t = blockIdx.x;
  const int64_t r = ids[t];
  float* o = out + int64_t(t) * p.cols;
  if (p.kind == int(DeviceWeightKind::Bf16)) {
    const auto* row = static_cast<const uint4*>(p.weight) + r * (p.cols_pad / 8);
    for (int64_t g = threadIdx.x; g * 8 < p.cols; g += blockDim.x) {
      const uint4 q = row[g];
      const uint32_t w[4] = {q.x, q.y, q.z, q.w};
      float v[8];
#pragma unroll
      for (int j = 0; j < 4; ++j) {
        v[2 * j] = __uint_as_float(w[j] << 16);
        v[2 * j + 1] = __uint_as_float(w[j] & 0xFFFF0000u);
      }
      store8(o, g * 8, p.cols, v);
    }
  } else if (p.kind == int(DeviceWeightKind::Fp8)) {
    const auto* row = static_cast<const uint2*>(p.weight) + r * (p.cols_pad / 8);
    const float* srow = p.block128 ? p.scales + (r / 128) * p.scale_ld : p.scales + r;
    for (int64_t g = threadIdx.x; g * 8 < p.cols; g += blockDim.x) {
      const uint2 q = row[g];
      const float s = p.block128 ? srow[(g * 8) / 128] : srow[0];  // 8 elements never straddle a 128 block
      float v[8];
#pragma unroll
      for (int j = 0; j < 8; ++j) v[j] = __fmul_rn(detail::e4m3_to_f32(((j < 4 ? q.x : q.y) >> (8 * (j & 3))) & 0xFF), s);
      store8(o, g * 8, p.cols, v);
    }
  } else {  // NVFP4: W = (e2m1 · s_block) / divisor, the CPU's order of operations
    float divisor = p.part_divisor[0];
    for (int i = 1; i < p.parts; ++i)
      if (r >= p.part_begin[i]) divisor = p.part_divisor[i];
    const auto* row = static_cast<const uint32_t*>(p.weight) + r * (p.cols_pad / 8);
    const uint8_t* bs = p.block_scales + r * (p.cols_pad / 16);
    for (int64_t g = threadIdx.x; g * 8 < p.cols; g += blockDim.x) {
      const uint32_t w = row[g];
      // Natural 16-block nb = 8c + 2t + b of a 128-byte group sits at byte 4t + 2c + b (linear_cuda.h).
      const int64_t nb = (g * 8) / 16, grp = nb / 16, q = nb % 16;
      const int64_t pos = grp * 16 + 4 * ((q % 8) / 2) + 2 * (q / 8) + (q % 2);
      const float s = detail::nvfp4_scale_value(bs[pos]);
      uint32_t raw[4];  // BF16 pairs whose bits 8..6 / 15 (and 24..22 / 31) are the codes' magnitude / sign
      detail::nvfp4_word_raw(w, raw);
      float v[8];
#pragma unroll
      for (int k = 0; k < 4; ++k) {
        const uint32_t lo = ((raw[k] >> 6) & 7u) | ((raw[k] >> 12) & 8u), hi = ((raw[k] >> 22) & 7u) | ((raw[k] >> 28) & 8u);
        v[2 * k] = __fdiv_rn(__fmul_rn(e2m1_value(lo), s), divisor);
        v[2 * k + 1] = __fdiv_rn(__fmul_rn(e2m1_value(hi), s), divisor);
      }
      store8(o, g * 8, p.cols, v);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Residual add + RMSNorm: one CTA per output row, the row held in registers between the two passes
// (H ≤ kMaxPerThread · 4 · blockDim).

constexpr int kNormThreads = 256;
constexpr int kMaxVec = 8;  // float4 per thread: H ≤ 8192 with 256 threads

// Warp sums, then the warps' sums by a second shuffle tree (every warp computes the same tree, so
// every thread gets the same bits; no serial chain of 32 dependent adds at 1024 threads).
__device__ __forceinline__ double block_sum_double(double v, double* scratch) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xFFFFFFFFu, v, o);
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, nw = blockDim.x / 32;
  __syncthreads();  // scratch may still be read from a previous call
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  double s = lane < nw ? scratch[lane] : 0.0;
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) s += __shfl_xor_sync(0xFFFFFFFFu, s, o);
  return s;
}

__device__ __forceinline__ void store_bf16x4(__nv_bfloat16* p, float4 v) {
  const __nv_bfloat162 a = __floats2bfloat162_rn(v.x, v.y), b = __floats2bfloat162_rn(v.z, v.w);
  uint2 u;
  u.x = *reinterpret_cast<const uint32_t*>(&a);
  u.y = *reinterpret_cast<const uint32_t*>(&b);
  *reinterpret_cast<uint2*>(p) = u;
}

__device__ __forceinline__ uint32_t pack_bf16x2(float a, float b) {
  const __nv_bfloat162 v = __floats2bfloat162_rn(a, b);
  return *reinterpret_cast<const uint32_t*>(&v);
}

__device__ __forceinline__ float4 bf16_round4(float4 v) {
  return make_float4(__bfloat162float(__float2bfloat16_rn(v.x)), __bfloat162float(__float2bfloat16_rn(v.y)),
                     __bfloat162float(__float2bfloat16_rn(v.z)), __bfloat162float(__float2bfloat16_rn(v.w)));
}

// A value as BF16 holds it: fp32 rounded to nearest, BF16 as is (the outputs the large-M GEMMs write
// in BF16 and the small-M kernels in fp32 give their consumers the same numbers).
__device__ __forceinline__ float bf16r(float v) { return __bfloat162float(__float2bfloat16_rn(v)); }
__device__ __forceinline__ float bf16r(__nv_bfloat16 v) { return __bfloat162float(v); }
__device__ __forceinline__ float4 load4_bf16r(const float* p) {
  return bf16_round4(*reinterpret_cast<const float4*>(p));
}
__device__ __forceinline__ float4 load4_bf16r(const __nv_bfloat16* p) {
  const uint2 r = *reinterpret_cast<const uint2*>(p);
  return make_float4(__uint_as_float(r.x << 16), __uint_as_float(r.x & 0xFFFF0000u), __uint_as_float(r.y << 16),
                     __uint_as_float(r.y & 0xFFFF0000u));
}

// VEC: H % 4 == 0 (float4 loads, bf16x4 stores); otherwise scalar with the same per-element order.
// Fp8 (VEC only): the row's BF16 values also go out quantized per token (act_fp8.cuh) for the next
// linear. Launched with PDL: it waits for the previous kernel, then lets the next one (a GEMM
// streaming its weights) start.
struct Fp8Rows {
  uint8_t* codes = nullptr;
  float* scales = nullptr;
  int64_t ld = 0, kpad = 0;
};

// Row `row` of q from the BF16-rounded values a thread holds: groups g = threadIdx.x + j·blockDim.x
// (j < N, g < n4) of 4; zeros in [4·n4, kpad); the scale.
template <int N>
__device__ __forceinline__ void store_fp8_row(const Fp8Rows& q, int64_t row, const float4 (&v)[N], int n4, float s) {
  uint8_t* r = q.codes + row * q.ld;
#pragma unroll
  for (int j = 0; j < N; ++j) {
    const int g = int(threadIdx.x) + j * int(blockDim.x);
    if (g < n4) reinterpret_cast<uint32_t*>(r)[g] = detail::fp8_codes4(v[j].x, v[j].y, v[j].z, v[j].w, s);
  }
  for (int64_t b = 4 * int64_t(n4) + threadIdx.x; b < q.kpad; b += blockDim.x) r[b] = 0;
  if (threadIdx.x == 0) q.scales[row] = s;
}

// NVFP4 activations of the four BF16 values of float4 group g of row `row`; the 16-block's other
// 12 values are in lanes g ^ 1, 2, 3 (every lane of the warp must call this).
__device__ __forceinline__ void store_nvfp4x4(const Nvfp4Acts& nv, int64_t row, int g, float4 b) {
  const float s = detail::nvfp4_act_scale(
      detail::nvfp4_block_amax<4>(fmaxf(fmaxf(fabsf(b.x), fabsf(b.y)), fmaxf(fabsf(b.z), fabsf(b.w)))), nv.gx);
  store_bf16x4(nv.x + row * nv.ld + 4 * int64_t(g),
               make_float4(detail::nvfp4_act_value(b.x, s, nv.gx), detail::nvfp4_act_value(b.y, s, nv.gx),
                           detail::nvfp4_act_value(b.z, s, nv.gx), detail::nvfp4_act_value(b.w, s, nv.gx)));
}

// THREADS: 256, or 1024 for a few rows (decode: one CTA per row is latency-bound, so more threads
// with fewer loads each).
template <bool VEC, int THREADS, typename TD>
__global__ void __launch_bounds__(THREADS) add_rmsnorm_kernel(float* __restrict__ residual, const TD* __restrict__ delta,
                                                                   const float* __restrict__ w, int H, float eps,
                                                                   __nv_bfloat16* __restrict__ out_bf16,
                                                                   float* __restrict__ out_f32,
                                                                   const int32_t* __restrict__ rows, Fp8Rows q,
                                                                   Nvfp4Acts nv) {
  // float4 groups per thread: H ≤ 8192 (the host checks) needs 8 at 256 threads, 2 at 1024.
  constexpr int NV = THREADS >= 1024 ? 2 : kMaxVec;
  static_assert(NV * 4 * THREADS >= kMaxVec * 4 * kNormThreads, "rows up to the host's bound must fit");
  __shared__ double scratch[32];
  // The decode variant (1024 threads, a few rows) fetches the weights before waiting for the
  // previous kernel (PDL): they do not depend on it. The prefill variant reads them after the
  // reduction (registers for all 8 groups cost it occupancy: measured 206 → 272 µs per 8K-row call).
  constexpr bool kPreW = VEC && THREADS >= 1024;
  const int n4 = VEC ? H / 4 : (H + 3) / 4;
  float4 wv[kPreW ? NV : 1];
  if constexpr (kPreW) {
#pragma unroll
    for (int j = 0; j < NV; ++j) {
      const int g = threadIdx.x + j * THREADS;
      wv[j] = g < n4 ? __ldg(reinterpret_cast<const float4*>(w) + g) : make_float4(0.f, 0.f, 0.f, 0.f);
    }
  }
  detail::griddep_wait();
  detail::griddep_launch_dependents();
  const int orow = blockIdx.x;
  const int64_t src = rows ? rows[orow] : orow;
  float* x = residual + src * H;
  const TD* d = delta ? delta + src * H : nullptr;
  float4 v[NV];
  double ss = 0;
#pragma unroll
  for (int j = 0; j < NV; ++j) {
    const int g = threadIdx.x + j * THREADS;
    if (g >= n4) break;
    float e[4];
    if (VEC) {
      const float4 a = reinterpret_cast<const float4*>(x)[g];
      e[0] = a.x, e[1] = a.y, e[2] = a.z, e[3] = a.w;
      if (d) {
        const float4 b = load4_bf16r(d + 4 * g);
        e[0] = __fadd_rn(e[0], b.x), e[1] = __fadd_rn(e[1], b.y), e[2] = __fadd_rn(e[2], b.z), e[3] = __fadd_rn(e[3], b.w);
        reinterpret_cast<float4*>(x)[g] = make_float4(e[0], e[1], e[2], e[3]);
      }
    } else {
#pragma unroll
      for (int k = 0; k < 4; ++k) {
        const int i = 4 * g + k;
        e[k] = 0.f;
        if (i < H) {
          e[k] = x[i];
          if (d) x[i] = e[k] = __fadd_rn(e[k], bf16r(d[i]));
        }
      }
    }
#pragma unroll
    for (int k = 0; k < 4; ++k) ss += double(e[k]) * double(e[k]);
    v[j] = make_float4(e[0], e[1], e[2], e[3]);
  }
  ss = block_sum_double(ss, scratch);
  const float s = __fdiv_rn(1.f, __fsqrt_rn(__fadd_rn(float(ss / double(H)), eps)));
#pragma unroll
  for (int j = 0; j < NV; ++j) {
    const int g = threadIdx.x + j * THREADS;
    if (g >= n4) break;
    float e[4] = {v[j].x, v[j].y, v[j].z, v[j].w};
    if (VEC) {
      float4 w4;
      if constexpr (kPreW) w4 = wv[j];
      else w4 = __ldg(reinterpret_cast<const float4*>(w) + g);
      const float wk[4] = {w4.x, w4.y, w4.z, w4.w};
#pragma unroll
      for (int k = 0; k < 4; ++k) e[k] = __fmul_rn(__fmul_rn(e[k], s), __fadd_rn(1.f, wk[k]));
    } else {
#pragma unroll
      for (int k = 0; k < 4; ++k) {
        const int i = 4 * g + k;
        e[k] = i < H ? __fmul_rn(__fmul_rn(e[k], s), __fadd_rn(1.f, w[i])) : 0.f;
      }
    }
    const int64_t ob = int64_t(orow) * H;
    if (VEC) {
      const float4 y = make_float4(e[0], e[1], e[2], e[3]);
      if (out_bf16) store_bf16x4(out_bf16 + ob + 4 * g, y);
      if (out_f32) reinterpret_cast<float4*>(out_f32 + ob)[g] = y;
      if (q.codes) v[j] = bf16_round4(y);  // kept for the quantization below
      if (nv.x) store_nvfp4x4(nv, orow, g, bf16_round4(y));  // whole warps here (host: H % 128 == 0)
    } else {
#pragma unroll
      for (int k = 0; k < 4; ++k) {
        const int i = 4 * g + k;
        if (i >= H) break;
        if (out_bf16) out_bf16[ob + i] = __float2bfloat16_rn(e[k]);
        if (out_f32) out_f32[ob + i] = e[k];
      }
    }
  }
  if (VEC && q.codes) {
    const int n4q = H / 4;
    float amax = 0.f;
#pragma unroll
    for (int j = 0; j < NV; ++j)
      if (threadIdx.x + j * THREADS < n4q)
        amax = fmaxf(amax, fmaxf(fmaxf(fabsf(v[j].x), fabsf(v[j].y)), fmaxf(fabsf(v[j].z), fabsf(v[j].w))));
    __shared__ float qmax[32];
    const float qs = detail::fp8_token_scale(detail::cta_max(amax, qmax));
    store_fp8_row(q, orow, v, n4q, qs);
  }
}

// residual += delta over all T rows (only used when the norm gathers rows: the add must cover rows
// the gather does not read, and must finish before a gathered row is read).
template <typename TD>
__global__ void add_kernel(float* __restrict__ a, const TD* __restrict__ b, int64_t n) {
  const int64_t i = (int64_t(blockIdx.x) * blockDim.x + threadIdx.x) * 4;
  if (i + 4 <= n && (n % 4) == 0) {
    const float4 x = *reinterpret_cast<const float4*>(a + i), y = load4_bf16r(b + i);
    *reinterpret_cast<float4*>(a + i) = make_float4(__fadd_rn(x.x, y.x), __fadd_rn(x.y, y.y), __fadd_rn(x.z, y.z), __fadd_rn(x.w, y.w));
  } else {
    for (int64_t k = i; k < i + 4 && k < n; ++k) a[k] = __fadd_rn(a[k], bf16r(b[k]));
  }
}

// ---------------------------------------------------------------------------------------------
// SwiGLU: out[t, i] = bf16(silu(g) · u), silu(g) = g / (1 + exp(−g)) as in elementwise.h, of the
// gate and up values rounded to BF16 first — what a BF16 GEMM output holds, so an fp32 gate|up
// (small-M kernels) and a BF16 one (cuBLASLt at large M: half the bytes) give the same result.

__device__ __forceinline__ float silu_mul(float g, float u) {
  return __fmul_rn(__fdiv_rn(g, __fadd_rn(1.f, expf(-g))), u);
}

__device__ __forceinline__ float4 silu_mul4(float4 a, float4 b) {
  return make_float4(silu_mul(a.x, b.x), silu_mul(a.y, b.y), silu_mul(a.z, b.z), silu_mul(a.w, b.w));
}

template <bool VEC, typename In>
__global__ void swiglu_kernel(const In* __restrict__ gu, int I, __nv_bfloat16* __restrict__ out, Nvfp4Acts nv) {
  detail::griddep_wait();
  detail::griddep_launch_dependents();
  const int t = blockIdx.y;
  const In* g = gu + int64_t(t) * 2 * I;
  const In* u = g + I;
  __nv_bfloat16* o = out ? out + int64_t(t) * I : nullptr;
  const int i = (blockIdx.x * blockDim.x + threadIdx.x) * 4;
  if (i >= I) return;
  if (VEC) {
    const float4 y = silu_mul4(load4_bf16r(g + i), load4_bf16r(u + i));
    if (out) store_bf16x4(o + i, y);
    if (nv.x) store_nvfp4x4(nv, t, i / 4, bf16_round4(y));  // whole warps here (host: I % 128 == 0)
  } else {
    for (int k = i; k < i + 4 && k < I; ++k) o[k] = __float2bfloat16_rn(silu_mul(bf16r(g[k]), bf16r(u[k])));
  }
}

// SwiGLU whose output also goes out quantized per token, for decode-sized steps (≤ 64 tokens): a
// cluster of kSwParts CTAs per token, each loading and computing 1/kSwParts of the row; the row's
// absolute maximum (the FP8 scale) is the maximum of the CTAs' maxima, exchanged through
// distributed shared memory. One CTA per token (the kernel this replaced) pulled a whole row of
// 17,408 gate and up values through a single SM: ~4.5 µs per layer at batch 1 on the H100.
constexpr int kSwThreads = 1024, kSwVec = 8;  // row bound: I ≤ 4 · kSwThreads · kSwVec (fp8_row_fusable)
constexpr int kSwParts = 8, kSwPartThreads = 256;
constexpr int kSwPartVec = kSwThreads * kSwVec / (kSwParts * kSwPartThreads);
template <typename In>
__global__ void __cluster_dims__(kSwParts, 1, 1) __launch_bounds__(kSwPartThreads)
    swiglu_fp8_cluster_kernel(const In* __restrict__ gu, int I, __nv_bfloat16* __restrict__ out, Fp8Rows q) {
  __shared__ float qmax[32];
  __shared__ float part_max;
  cg::cluster_group cluster = cg::this_cluster();
  detail::griddep_wait();
  detail::griddep_launch_dependents();
  const int p = int(blockIdx.x), t = int(blockIdx.y), n4 = I / 4;
  const int per = (n4 + kSwParts - 1) / kSwParts, g0 = p * per, g1 = min(n4, g0 + per);
  const In* g = gu + int64_t(t) * 2 * I;
  const In* u = g + I;
  float4 v[kSwPartVec];
  float amax = 0.f;
#pragma unroll
  for (int j = 0; j < kSwPartVec; ++j) {
    const int gi = g0 + int(threadIdx.x) + j * kSwPartThreads;
    v[j] = make_float4(0.f, 0.f, 0.f, 0.f);
    if (gi >= g1) continue;
    const float4 y = silu_mul4(load4_bf16r(g + 4 * gi), load4_bf16r(u + 4 * gi));
    if (out) store_bf16x4(out + int64_t(t) * I + 4 * gi, y);
    v[j] = bf16_round4(y);
    amax = fmaxf(amax, fmaxf(fmaxf(fabsf(v[j].x), fabsf(v[j].y)), fmaxf(fabsf(v[j].z), fabsf(v[j].w))));
  }
  amax = detail::cta_max(amax, qmax);
  if (threadIdx.x == 0) part_max = amax;
  cluster.sync();
  float m = (threadIdx.x & 31) < kSwParts ? *cluster.map_shared_rank(&part_max, threadIdx.x & 31) : 0.f;
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) m = fmaxf(m, __shfl_xor_sync(0xffffffffu, m, o));
  cluster.sync();  // no CTA leaves while another still reads its part_max
  const float qs = detail::fp8_token_scale(m);
  uint8_t* r = q.codes + int64_t(t) * q.ld;
#pragma unroll
  for (int j = 0; j < kSwPartVec; ++j) {
    const int gi = g0 + int(threadIdx.x) + j * kSwPartThreads;
    if (gi < g1) reinterpret_cast<uint32_t*>(r)[gi] = detail::fp8_codes4(v[j].x, v[j].y, v[j].z, v[j].w, qs);
  }
  if (p == kSwParts - 1)
    for (int64_t b = 4 * int64_t(n4) + threadIdx.x; b < q.kpad; b += kSwPartThreads) r[b] = 0;
  if (p == 0 && threadIdx.x == 0) q.scales[t] = qs;
}

// The same for large steps (prefill): 512 threads per token keep the row's BF16 values in shared
// memory instead of registers, so four CTAs share an SM and one token's loads overlap another's
// reduction and stores (the register kernel, one 1024-thread CTA per SM, took 537 µs per 8K-token
// 27B layer on the H100 with BF16 input). Same values, same scale, same codes.
constexpr int kSwRowThreads = 512;
template <typename In>
__global__ void __launch_bounds__(kSwRowThreads) swiglu_fp8_rows_kernel(const In* __restrict__ gu, int I,
                                                                        __nv_bfloat16* __restrict__ out, Fp8Rows q) {
  extern __shared__ __align__(16) unsigned char sw_smem[];
  auto* row = reinterpret_cast<uint2*>(sw_smem);  // 4 BF16 values per group
  __shared__ float qmax[32];
  detail::griddep_wait();
  detail::griddep_launch_dependents();
  const int t = blockIdx.x, n4 = I / 4;
  const In* g = gu + int64_t(t) * 2 * I;
  const In* u = g + I;
  float amax = 0.f;
#pragma unroll 4
  for (int gi = threadIdx.x; gi < n4; gi += kSwRowThreads) {
    const float4 y = bf16_round4(silu_mul4(load4_bf16r(g + 4 * gi), load4_bf16r(u + 4 * gi)));
    uint2 b;
    b.x = pack_bf16x2(y.x, y.y);
    b.y = pack_bf16x2(y.z, y.w);
    row[gi] = b;
    if (out) reinterpret_cast<uint2*>(out + int64_t(t) * I)[gi] = b;
    amax = fmaxf(amax, fmaxf(fmaxf(fabsf(y.x), fabsf(y.y)), fmaxf(fabsf(y.z), fabsf(y.w))));
  }
  const float s = detail::fp8_token_scale(detail::cta_max(amax, qmax));  // its barriers also publish row
  uint8_t* r = q.codes + int64_t(t) * q.ld;
  for (int gi = threadIdx.x; gi < n4; gi += kSwRowThreads) {
    const uint2 b = row[gi];
    reinterpret_cast<uint32_t*>(r)[gi] =
        detail::fp8_codes4(__uint_as_float(b.x << 16), __uint_as_float(b.x & 0xFFFF0000u), __uint_as_float(b.y << 16),
                           __uint_as_float(b.y & 0xFFFF0000u), s);
  }
  for (int64_t b = 4 * int64_t(n4) + threadIdx.x; b < q.kpad; b += kSwRowThreads) r[b] = 0;
  if (threadIdx.x == 0) q.scales[t] = s;
}

Fp8Rows fp8_rows(const Fp8TokenActs& q) { return Fp8Rows{q.codes, q.scales, q.ld, q.kpad}; }

// Not fusable: the BF16 output, then the linear layers' own per-token quantization of it.
void quantize_after(const __nv_bfloat16* out, int T, int64_t cols, const Fp8TokenActs& q, cudaStream_t s,
                    const char* what) {
  if (!out) throw CudaError(std::string(what) + ": FP8 output of " + std::to_string(cols) + " columns needs the BF16 one");
  detail::launch_act_fp8_token(out, T, cols, q.codes, q.scales, T, q.ld, s, true);
}

// The same for NVFP4 activations: the linear layers' pre-kernel on the BF16 output.
void nvfp4_after(const __nv_bfloat16* out, int T, int64_t cols, const Nvfp4Acts& nv, cudaStream_t s, const char* what) {
  if (!out || nv.ld % 256 != 0)
    throw CudaError(std::string(what) + ": NVFP4 output of " + std::to_string(cols) + " columns into rows of " +
                    std::to_string(nv.ld) + " needs the BF16 one and rows padded to a multiple of 256");
  detail::launch_act_nvfp4(out, T, cols, nv.gx, nv.x, T, nv.ld, s, true);
}

}  // namespace

bool nvfp4_row_fusable(const Nvfp4Acts& nv, int64_t cols) {
  // Whole warps of 4-value groups (the block amax is a shuffle) and no padding to zero.
  return nv && cols % 128 == 0 && nv.ld == cols && (reinterpret_cast<uintptr_t>(nv.x) & 7) == 0;
}

bool fp8_row_fusable(int64_t cols) { return cols % 4 == 0 && cols <= int64_t(kSwThreads) * kSwVec * 4; }

void embed_lookup(const DeviceLinear& table, const int32_t* ids, int T, float* out, cudaStream_t stream) {
  if (T <= 0) return;
  EmbedParams p;
  p.weight = table.weight;
  p.cols = table.cols;
  p.cols_pad = table.cols_pad;
  p.kind = int(table.kind);
  p.scales = table.scales;
  p.block128 = table.scheme.weight == WeightFormat::Fp8Block128;
  p.scale_ld = table.scale_ld;
  p.block_scales = table.block_scales;
  p.parts = table.parts;
  for (int i = 0; i <= table.parts && i <= DeviceLinear::kMaxParts; ++i) p.part_begin[i] = table.part_begin[i];
  for (int i = 0; i < table.parts && i < DeviceLinear::kMaxParts; ++i) p.part_divisor[i] = table.part_weight_divisor[i];
  if (table.parts <= 1) p.part_divisor[0] = table.nvfp4_weight_divisor;
  const int threads = table.cols >= 2048 ? 256 : 128;
  embed_kernel<<<T, threads, 0, stream>>>(p, ids, out);
  GDN_CUDA_CHECK_LAUNCH();
}

namespace {

template <typename TD>
void add_rmsnorm_impl(float* residual, const TD* delta, const float* w, int T, int H, float eps, __nv_bfloat16* out_bf16,
                      float* out_f32, cudaStream_t stream, const int32_t* rows, int R, const Fp8TokenActs& q,
                      const Nvfp4Acts& nv) {
  if (T <= 0 || H <= 0) return;
  if (q) check_fp8_token_out(q, H, "add_rmsnorm");
  if (H > kMaxVec * 4 * kNormThreads)
    throw CudaError("add_rmsnorm: H = " + std::to_string(H) + " exceeds " + std::to_string(kMaxVec * 4 * kNormThreads));
  int out_rows = T;
  if (rows) {
    if (delta) {  // the add covers all T rows before the gathered norm reads any of them
      const int64_t n = int64_t(T) * H;
      add_kernel<TD><<<unsigned((n / 4 + 255) / 256 + 1), 256, 0, stream>>>(residual, delta, n);
      GDN_CUDA_CHECK_LAUNCH();
      delta = nullptr;
    }
    out_rows = R;
  }
  if (out_rows <= 0) return;
  // Vector rows (H % 4 == 0, float4 weights) quantize in the kernel (H ≤ 8192 < fp8_row_fusable's
  // bound); otherwise afterwards.
  const bool vec = H % 4 == 0 && (reinterpret_cast<uintptr_t>(w) & 15) == 0;
  const Fp8Rows fq = q && vec ? fp8_rows(q) : Fp8Rows{};
  const Nvfp4Acts fnv = nvfp4_row_fusable(nv, H) && vec ? nv : Nvfp4Acts{};
  if (vec && out_rows <= detail::kPreWaitMaxRows)
    detail::launch_pdl(add_rmsnorm_kernel<true, 1024, TD>, dim3(unsigned(out_rows)), dim3(1024), 0, stream, true,
                       residual, delta, w, H, eps, out_bf16, out_f32, rows, fq, fnv);
  else if (vec)
    detail::launch_pdl(add_rmsnorm_kernel<true, kNormThreads, TD>, dim3(unsigned(out_rows)), dim3(kNormThreads), 0, stream,
                       true, residual, delta, w, H, eps, out_bf16, out_f32, rows, fq, fnv);
  else
    detail::launch_pdl(add_rmsnorm_kernel<false, kNormThreads, TD>, dim3(unsigned(out_rows)), dim3(kNormThreads), 0,
                       stream, true, residual, delta, w, H, eps, out_bf16, out_f32, rows, fq, Nvfp4Acts{});
  GDN_CUDA_CHECK_LAUNCH();
  if (q && !vec) quantize_after(out_bf16, out_rows, H, q, stream, "add_rmsnorm");
  if (nv && !fnv) nvfp4_after(out_bf16, out_rows, H, nv, stream, "add_rmsnorm");
}

}  // namespace

void add_rmsnorm(float* residual, GemmOut delta, const float* w, int T, int H, float eps, __nv_bfloat16* out_bf16,
                 float* out_f32, cudaStream_t stream, const int32_t* rows, int R, const Fp8TokenActs& q,
                 const Nvfp4Acts& nv) {
  if (delta.bf16)
    add_rmsnorm_impl(residual, static_cast<const __nv_bfloat16*>(delta.p), w, T, H, eps, out_bf16, out_f32, stream, rows,
                     R, q, nv);
  else
    add_rmsnorm_impl(residual, static_cast<const float*>(delta.p), w, T, H, eps, out_bf16, out_f32, stream, rows, R, q,
                     nv);
}

namespace {

template <typename In>
void swiglu_impl(const In* gu, int T, int I, __nv_bfloat16* out, cudaStream_t stream, const Fp8TokenActs& q,
                 const Nvfp4Acts& nv) {
  if (T <= 0 || I <= 0) return;
  if (q) check_fp8_token_out(q, I, "swiglu");
  if (nv && !q && nvfp4_row_fusable(nv, I)) {
    constexpr int kThreads = 256;
    const dim3 grid(unsigned(I / (4 * kThreads) + (I % (4 * kThreads) != 0)), unsigned(T));
    detail::launch_pdl(swiglu_kernel<true, In>, grid, dim3(kThreads), 0, stream, true, gu, I, out, nv);
    GDN_CUDA_CHECK_LAUNCH();
    return;
  }
  if (q && fp8_row_fusable(I) && T > detail::kPreWaitMaxRows) {
    static bool attr_set = false;
    if (!attr_set) {
      GDN_CUDA_CHECK(cudaFuncSetAttribute(swiglu_fp8_rows_kernel<In>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                          kSwThreads * kSwVec * 8));
      attr_set = true;
    }
    detail::launch_pdl(swiglu_fp8_rows_kernel<In>, dim3(unsigned(T)), dim3(kSwRowThreads), size_t(I / 4) * 8, stream,
                       true, gu, I, out, fp8_rows(q));
    GDN_CUDA_CHECK_LAUNCH();
    return;
  }
  if (q && fp8_row_fusable(I)) {
    detail::launch_pdl(swiglu_fp8_cluster_kernel<In>, dim3(kSwParts, unsigned(T)), dim3(kSwPartThreads), 0, stream,
                       true, gu, I, out, fp8_rows(q));
    GDN_CUDA_CHECK_LAUNCH();
    return;
  }
  if (!out) throw CudaError("swiglu: no BF16 output");
  constexpr int kThreads = 256;
  const dim3 grid(unsigned((I + 4 * kThreads - 1) / (4 * kThreads)), unsigned(T));
  if (I % 4 == 0)
    detail::launch_pdl(swiglu_kernel<true, In>, grid, dim3(kThreads), 0, stream, true, gu, I, out, Nvfp4Acts{});
  else
    detail::launch_pdl(swiglu_kernel<false, In>, grid, dim3(kThreads), 0, stream, true, gu, I, out, Nvfp4Acts{});
  GDN_CUDA_CHECK_LAUNCH();
  if (q) quantize_after(out, T, I, q, stream, "swiglu");
  if (nv) nvfp4_after(out, T, I, nv, stream, "swiglu");
}

}  // namespace

void swiglu(GemmOut gu, int T, int I, __nv_bfloat16* out, cudaStream_t stream, const Fp8TokenActs& q,
            const Nvfp4Acts& nv) {
  if (gu.bf16)
    swiglu_impl(static_cast<const __nv_bfloat16*>(gu.p), T, I, out, stream, q, nv);
  else
    swiglu_impl(static_cast<const float*>(gu.p), T, I, out, stream, q, nv);
}

}  // namespace gdn::cuda
