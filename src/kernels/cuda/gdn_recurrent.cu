// Gated delta rule, decode form (one token per sequence), the gated RMSNorm, and the dispatcher
// gdn_delta_rule (deltanet_cuda.h). CPU reference: kernels/cpu/delta_rule.cpp recurrent_tile.
//
// The recurrent step is memory-bound: each (sequence, value head) state [DK, DV] fp32 is read once
// and written once. The DV columns of S are independent, so a CTA owns a 32-column slice of one
// head's state: thread (row group rg = tid/8, column quad cq = tid%8) keeps rows rg, rg+32, rg+64,
// rg+96 × 4 columns in registers (a warp touches 4 rows × 128 contiguous bytes per load). The
// output uses Sᵀ_new q = α·Sᵀ_old q + (k·q)·δ (as the CPU reference), so both reductions over the
// rows (Sᵀk and Sᵀq) come from the single pass over the old state.
#include <cmath>
#include <stdexcept>
#include <string>

#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/deltanet_cuda.h"
#include "kernels/cuda/act_fp8.cuh"
#include "kernels/cuda/gdn_internal.h"
#include "kernels/cuda/launch_pdl.h"
#include "kernels/cuda/linear_internal.h"

namespace gdn::cuda {
namespace detail {
namespace {

constexpr int kRecThreads = 256;
constexpr int kRecCols = 32;  // state columns per CTA (8 quads)

__global__ void __launch_bounds__(kRecThreads) gdn_recurrent_kernel(DeltaParams p) {
  const int s = blockIdx.z, j = blockIdx.y, c0 = blockIdx.x * kRecCols;
  // Before waiting for the previous kernel (PDL): the weights, the step's metadata (uploaded before
  // the step's first kernel) and this head's state (last written by this layer in an earlier step)
  // — the state streaming, the bulk of the traffic, overlaps the projections still running.
  const float nA = __ldg(p.neg_exp_A + j), dtb = __ldg(p.dt_bias + j);
  const int bos = p.cu_seqlens[s];
  if (p.cu_seqlens[s + 1] - bos != 1) return;  // longer sequences: chunked kernel
  const int slot = p.state_slots[s];
  if (slot < 0) return;
  const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;
  const int rg = tid >> 3, c = (tid & 7) * 4;
  const bool col_ok = c0 + c < p.DV;  // DV % 4 == 0: a quad is all in or all out
  const int DK = p.DK, DV = p.DV;

  // Issue the state loads first: they are the only large traffic; the rest hides behind them.
  float* Sg = p.state + (int64_t(slot) * p.HV + j) * int64_t(DK) * DV + c0 + c;
  float4 sv[4];
#pragma unroll
  for (int u = 0; u < 4; ++u) {
    const int i = rg + 32 * u;
    sv[u] = (i < DK && col_ok) ? *reinterpret_cast<const float4*>(Sg + int64_t(i) * DV) : make_float4(0.f, 0.f, 0.f, 0.f);
  }
  griddep_wait();  // q, k, v and b, a come from the preceding kernels
  griddep_launch_dependents();

  __shared__ float sq[128], sk[128], red[3];
  __shared__ float4 redk[8][8], redq[8][8];
  const float* row = p.qkv + int64_t(bos) * p.conv_dim;
  const int kh = j / (p.HV / p.HK);
  // The small inputs too, before the first barrier, so that their latencies overlap.
  const float4 v4 = col_ok ? *reinterpret_cast<const float4*>(row + 2 * int64_t(p.HK) * DK + int64_t(j) * DV + c0 + c)
                           : make_float4(0.f, 0.f, 0.f, 0.f);
  const float* bar = p.ba + int64_t(bos) * p.ba_ld;
  const float b_in = bar[j], a_in = bar[p.HV + j];
  if (tid < 128) sq[tid] = tid < DK ? row[kh * DK + tid] : 0.f;
  else sk[tid - 128] = tid - 128 < DK ? row[int64_t(p.HK) * DK + kh * DK + tid - 128] : 0.f;
  __syncthreads();
  if (warp < 3) {
    float acc = 0.f;
    for (int i = lane; i < DK; i += 32) acc += warp == 0 ? sq[i] * sq[i] : warp == 1 ? sk[i] * sk[i] : sq[i] * sk[i];
    acc = gdn_warp_sum(acc);
    if (lane == 0) red[warp] = acc;
  }
  __syncthreads();
  // Reference l2norm: x · scale / sqrt(Σx² + eps).
  const float qinv = p.q_scale / sqrtf(red[0] + kGdnL2Eps), kinv = 1.f / sqrtf(red[1] + kGdnL2Eps);
  const float kq = red[2] * qinv * kinv;
  const float beta = gdn_sigmoid(b_in);
  const float alpha = expf(nA * gdn_softplus(a_in + dtb));

  float4 ak = make_float4(0.f, 0.f, 0.f, 0.f), aq = ak;
#pragma unroll
  for (int u = 0; u < 4; ++u) {
    const int i = rg + 32 * u;
    if (i < DK) {
      const float ki = sk[i] * kinv, qi = sq[i] * qinv;
      ak.x += ki * sv[u].x, ak.y += ki * sv[u].y, ak.z += ki * sv[u].z, ak.w += ki * sv[u].w;
      aq.x += qi * sv[u].x, aq.y += qi * sv[u].y, aq.z += qi * sv[u].z, aq.w += qi * sv[u].w;
    }
  }
  // Rows of a warp: lanes l, l^8, l^16, l^24 share a column quad.
#pragma unroll
  for (int o = 8; o < 32; o <<= 1) {
    ak.x += __shfl_xor_sync(0xffffffffu, ak.x, o), ak.y += __shfl_xor_sync(0xffffffffu, ak.y, o);
    ak.z += __shfl_xor_sync(0xffffffffu, ak.z, o), ak.w += __shfl_xor_sync(0xffffffffu, ak.w, o);
    aq.x += __shfl_xor_sync(0xffffffffu, aq.x, o), aq.y += __shfl_xor_sync(0xffffffffu, aq.y, o);
    aq.z += __shfl_xor_sync(0xffffffffu, aq.z, o), aq.w += __shfl_xor_sync(0xffffffffu, aq.w, o);
  }
  if (lane < 8) redk[warp][lane] = ak, redq[warp][lane] = aq;
  __syncthreads();
  float sk4[4] = {0.f, 0.f, 0.f, 0.f}, sq4[4] = {0.f, 0.f, 0.f, 0.f};
#pragma unroll
  for (int w = 0; w < 8; ++w) {
    const float4 a = redk[w][tid & 7], b = redq[w][tid & 7];
    sk4[0] += a.x, sk4[1] += a.y, sk4[2] += a.z, sk4[3] += a.w;
    sq4[0] += b.x, sq4[1] += b.y, sq4[2] += b.z, sq4[3] += b.w;
  }
  if (!col_ok) return;
  const float vin[4] = {v4.x, v4.y, v4.z, v4.w};
  // kv_mem = (αS)ᵀk; δ = β(v − kv_mem); o = α·Sᵀq + (k·q)·δ; S ← αS + k δᵀ.
  float delta[4], o[4];
#pragma unroll
  for (int e = 0; e < 4; ++e) {
    delta[e] = (vin[e] - alpha * sk4[e]) * beta;
    o[e] = alpha * sq4[e] + kq * delta[e];
  }
  if (rg == 0)
    *reinterpret_cast<float4*>(p.out + (int64_t(bos) * p.HV + j) * DV + c0 + c) = make_float4(o[0], o[1], o[2], o[3]);
#pragma unroll
  for (int u = 0; u < 4; ++u) {
    const int i = rg + 32 * u;
    if (i < DK) {
      const float ki = sk[i] * kinv;
      const float4 nv = make_float4(alpha * sv[u].x + ki * delta[0], alpha * sv[u].y + ki * delta[1],
                                    alpha * sv[u].z + ki * delta[2], alpha * sv[u].w + ki * delta[3]);
      *reinterpret_cast<float4*>(Sg + int64_t(i) * DV) = nv;
    }
  }
}

// y = w · (o · rsqrt(mean(o²) + eps)) · silu(z) over one value head's DV values, by one warp: the
// scale, then element i. Shared by both kernels below so their values are the same floats.
__device__ __forceinline__ float gated_norm_inv(const float* orow, int DV, float eps, int lane) {
  float ss = 0.f;
  for (int i = lane; i < DV; i += 32) ss += orow[i] * orow[i];
  ss = gdn_warp_sum(ss);
  return 1.f / sqrtf(ss / float(DV) + eps);
}
__device__ __forceinline__ float gated_norm_value(float o, float z, float wi, float inv) {
  return wi * (o * inv) * gdn_silu(z);
}

// DV == 128 (every published Qwen3.5 / 3.6): lane l holds elements 4l..4l+3 of a head as one float4
// of o and one of z, loaded once (16-byte loads, no second pass over o); the sum of squares is
// taken in that layout. Both kernels use it for DV == 128, so their values stay the same floats.
constexpr int kVecDV = 128;
__device__ __forceinline__ float gated_norm_inv4(float4 o, float eps) {
  float ss = __fmaf_rn(o.w, o.w, __fmaf_rn(o.z, o.z, __fmaf_rn(o.y, o.y, __fmul_rn(o.x, o.x))));
  ss = gdn_warp_sum(ss);
  return 1.f / sqrtf(ss / float(kVecDV) + eps);
}
__device__ __forceinline__ float4 gated_norm_bf16x4(float4 o, float4 z, float4 w, float inv) {
  auto r = [](float v) { return __bfloat162float(__float2bfloat16_rn(v)); };
  return make_float4(r(gated_norm_value(o.x, z.x, w.x, inv)), r(gated_norm_value(o.y, z.y, w.y, inv)),
                     r(gated_norm_value(o.z, z.z, w.z, inv)), r(gated_norm_value(o.w, z.w, w.w, inv)));
}
__device__ __forceinline__ float4 ld4(const float* p) { return *reinterpret_cast<const float4*>(p); }
// z (in_proj_z's output) as BF16 holds it: fp32 rounded to nearest, or BF16 as the large-M GEMM
// writes it — the same numbers.
__device__ __forceinline__ float zval(float v) { return __bfloat162float(__float2bfloat16_rn(v)); }
__device__ __forceinline__ float zval(__nv_bfloat16 v) { return __bfloat162float(v); }
__device__ __forceinline__ float4 zload4(const float* p) {
  const float4 v = ld4(p);
  return make_float4(zval(v.x), zval(v.y), zval(v.z), zval(v.w));
}
__device__ __forceinline__ float4 zload4(const __nv_bfloat16* p) {
  const uint2 u = *reinterpret_cast<const uint2*>(p);
  return make_float4(__uint_as_float(u.x << 16), __uint_as_float(u.x & 0xFFFF0000u), __uint_as_float(u.y << 16),
                     __uint_as_float(u.y & 0xFFFF0000u));
}
__device__ __forceinline__ void st_bf16x4(__nv_bfloat16* p, float4 v) {  // v already BF16 values
  const __nv_bfloat162 a = __floats2bfloat162_rn(v.x, v.y), b = __floats2bfloat162_rn(v.z, v.w);
  uint2 u;
  u.x = *reinterpret_cast<const uint32_t*>(&a);
  u.y = *reinterpret_cast<const uint32_t*>(&b);
  *reinterpret_cast<uint2*>(p) = u;
}

// One warp per (token, value head) group of DV. kVec: DV == kVecDV, z rows 16-byte aligned.
constexpr int kNormWarps = 8;
template <bool kVec, typename TZ>
__global__ void __launch_bounds__(kNormWarps * 32) gdn_gated_rmsnorm_kernel(const float* o, const TZ* z, int64_t z_ld,
                                                                            const float* w, int rows, int HV, int DV,
                                                                            float eps, __nv_bfloat16* y,
                                                                            Nvfp4Acts nv) {
  griddep_wait();
  griddep_launch_dependents();
  const int r = blockIdx.x * kNormWarps + (threadIdx.x >> 5), lane = threadIdx.x & 31;
  if (r >= rows) return;
  const int t = r / HV, h = r % HV;
  const float* orow = o + int64_t(r) * DV;
  const TZ* zrow = z + int64_t(t) * z_ld + int64_t(h) * DV;
  __nv_bfloat16* yrow = y ? y + int64_t(r) * DV : nullptr;
  if constexpr (kVec) {
    const int i = 4 * lane;
    const float4 ov = ld4(orow + i), zv = zload4(zrow + i), wv = ld4(w + i);
    const float4 b = gated_norm_bf16x4(ov, zv, wv, gated_norm_inv4(ov, eps));
    if (y) st_bf16x4(yrow + i, b);
    if (nv.x) {  // a 16-block is 4 lanes
      const float s = nvfp4_act_scale(
          nvfp4_block_amax<4>(fmaxf(fmaxf(fabsf(b.x), fabsf(b.y)), fmaxf(fabsf(b.z), fabsf(b.w)))), nv.gx);
      st_bf16x4(nv.x + int64_t(t) * nv.ld + int64_t(h) * DV + i,
                make_float4(nvfp4_act_value(b.x, s, nv.gx), nvfp4_act_value(b.y, s, nv.gx),
                            nvfp4_act_value(b.z, s, nv.gx), nvfp4_act_value(b.w, s, nv.gx)));
    }
    return;
  }
  const float inv = gated_norm_inv(orow, DV, eps, lane);
  for (int i = lane; i < DV; i += 32) {
    const __nv_bfloat16 b = __float2bfloat16_rn(gated_norm_value(orow[i], zval(zrow[i]), w[i], inv));
    if (y) yrow[i] = b;
    if (nv.x) {  // a 16-block is 16 lanes of one iteration (host: DV % 32 == 0)
      const float v = __bfloat162float(b), s = nvfp4_act_scale(nvfp4_block_amax<16>(fabsf(v)), nv.gx);
      nv.x[int64_t(t) * nv.ld + int64_t(h) * DV + i] = __float2bfloat16_rn(nvfp4_act_value(v, s, nv.gx));
    }
  }
}

// The same, one CTA per token, the row's BF16 values also quantized per token for out_proj
// (act_fp8.cuh numerics). Warp wp owns heads wp, wp + kQWarps, ...; lane holds element
// lane + 32·k of each (kVec: the float4 4·lane..4·lane+3): HV ≤ kQWarps·kQHeads,
// DV ≤ 32·kQPerLane.
// kPreW (decode-sized steps): the norm weights go to registers before waiting for the previous
// kernel (PDL); large steps read them where they are used (as registers they cost the 8K prefill
// 324 → 349 µs per layer, scalar layout).
constexpr int kQWarps = 16, kQHeads = 4, kQPerLane = 4;
template <bool kPreW, bool kVec, typename TZ>
__global__ void __launch_bounds__(kQWarps * 32) gdn_gated_rmsnorm_fp8_kernel(const float* o, const TZ* z, int64_t z_ld,
                                                                             const float* w, int HV, int DV, float eps,
                                                                             __nv_bfloat16* y, uint8_t* codes,
                                                                             float* scales, int64_t ld, int64_t kpad) {
  __shared__ float qmax[32];
  const int t = blockIdx.x, wp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  float amax = 0.f;
  uint8_t* r = codes + int64_t(t) * ld;
  if constexpr (kVec) {
    const int i = 4 * lane;
    float4 wv = make_float4(0.f, 0.f, 0.f, 0.f);
    if constexpr (kPreW) wv = ld4(w + i);
    griddep_wait();
    griddep_launch_dependents();
    if constexpr (!kPreW) wv = ld4(w + i);
    // Every head's o and z of this lane in flight at once, then the norms from registers.
    float4 ov[kQHeads], zv[kQHeads];
#pragma unroll
    for (int hh = 0; hh < kQHeads; ++hh) {
      const int h = wp + hh * kQWarps;
      if (h < HV) {
        ov[hh] = ld4(o + (int64_t(t) * HV + h) * kVecDV + i);
        zv[hh] = zload4(z + int64_t(t) * z_ld + int64_t(h) * kVecDV + i);
      }
    }
    float4 v[kQHeads];
#pragma unroll
    for (int hh = 0; hh < kQHeads; ++hh) {
      const int h = wp + hh * kQWarps;
      if (h >= HV) break;
      v[hh] = gated_norm_bf16x4(ov[hh], zv[hh], wv, gated_norm_inv4(ov[hh], eps));
      if (y) st_bf16x4(y + (int64_t(t) * HV + h) * kVecDV + i, v[hh]);
      amax = fmaxf(amax, fmaxf(fmaxf(fabsf(v[hh].x), fabsf(v[hh].y)), fmaxf(fabsf(v[hh].z), fabsf(v[hh].w))));
    }
    const float s = fp8_token_scale(cta_max(amax, qmax));
#pragma unroll
    for (int hh = 0; hh < kQHeads; ++hh) {
      const int h = wp + hh * kQWarps;
      if (h >= HV) break;
      *reinterpret_cast<uint32_t*>(r + h * kVecDV + i) = fp8_codes4(v[hh].x, v[hh].y, v[hh].z, v[hh].w, s);
    }
    for (int64_t b = int64_t(HV) * DV + threadIdx.x; b < kpad; b += blockDim.x) r[b] = 0;
    if (threadIdx.x == 0) scales[t] = s;
    return;
  }
  float wl[kQPerLane];  // the norm weights of this lane's elements
  if constexpr (kPreW) {
#pragma unroll
    for (int k = 0; k < kQPerLane; ++k) wl[k] = lane + 32 * k < DV ? __ldg(w + lane + 32 * k) : 0.f;
  }
  griddep_wait();
  griddep_launch_dependents();
  // Touch every input this thread reads first (all heads' o and z in flight at once: at one token
  // per step this kernel is latency-bound), then the per-head norms from L1.
#pragma unroll
  for (int hh = 0; hh < kQHeads; ++hh) {
    const int h = wp + hh * kQWarps;
    if (h < HV)
#pragma unroll
      for (int k = 0; k < kQPerLane; ++k) {
        const int i = lane + 32 * k;
        if (i < DV) {
          asm volatile("prefetch.global.L1 [%0];" ::"l"(o + (int64_t(t) * HV + h) * DV + i));
          asm volatile("prefetch.global.L1 [%0];" ::"l"(z + int64_t(t) * z_ld + int64_t(h) * DV + i));
        }
      }
  }
  float v[kQHeads][kQPerLane];
#pragma unroll
  for (int hh = 0; hh < kQHeads; ++hh) {
    const int h = wp + hh * kQWarps;
    if (h >= HV) break;
    const float* orow = o + (int64_t(t) * HV + h) * DV;
    const TZ* zrow = z + int64_t(t) * z_ld + int64_t(h) * DV;
    const float inv = gated_norm_inv(orow, DV, eps, lane);
#pragma unroll
    for (int k = 0; k < kQPerLane; ++k) {
      const int i = lane + 32 * k;
      if (i >= DV) break;
      const __nv_bfloat16 b = __float2bfloat16_rn(gated_norm_value(orow[i], zval(zrow[i]), kPreW ? wl[k] : w[i], inv));
      if (y) y[(int64_t(t) * HV + h) * DV + i] = b;
      v[hh][k] = __bfloat162float(b);
      amax = fmaxf(amax, fabsf(v[hh][k]));
    }
  }
  const float s = fp8_token_scale(cta_max(amax, qmax));
#pragma unroll
  for (int hh = 0; hh < kQHeads; ++hh) {
    const int h = wp + hh * kQWarps;
    if (h >= HV) break;
#pragma unroll
    for (int k = 0; k < kQPerLane; ++k) {
      const int i = lane + 32 * k;
      if (i >= DV) break;
      r[h * DV + i] = uint8_t(f32_to_e4m3(v[hh][k] / s));
    }
  }
  for (int64_t b = int64_t(HV) * DV + threadIdx.x; b < kpad; b += blockDim.x) r[b] = 0;
  if (threadIdx.x == 0) scales[t] = s;
}

}  // namespace

void launch_recurrent(const DeltaParams& p, int num_seqs, cudaStream_t stream) {
  const dim3 grid((p.DV + kRecCols - 1) / kRecCols, p.HV, num_seqs);
  launch_pdl(gdn_recurrent_kernel, grid, dim3(kRecThreads), 0, stream, true, p);
  GDN_CUDA_CHECK_LAUNCH();
}

}  // namespace detail

size_t gdn_workspace_bytes(const GdnDims& d, int max_tokens, int max_seqs) {
  // The recurrent kernel needs none (q/k norms and gates on the fly); the split chunked form keeps
  // its per-chunk T, M and scale factors there.
  return detail::split_scratch_bytes(d, max_tokens, max_seqs);
}

void gdn_delta_rule(const GdnDims& d, const float* qkv, const float* ba, int64_t ba_ld, const float* neg_exp_A,
                    const float* dt_bias, const StepMeta& m, GdnStateView st, float* out, void* workspace,
                    size_t workspace_bytes, cudaStream_t stream) {
  if (m.num_seqs <= 0 || m.num_tokens <= 0) return;
  if (d.key_dim > 128 || d.key_dim % 4 != 0 || d.value_dim % 4 != 0 || d.key_heads <= 0 ||
      d.value_heads % d.key_heads != 0)
    throw CudaError("gdn_delta_rule: unsupported dims DK " + std::to_string(d.key_dim) + " DV " +
                    std::to_string(d.value_dim) + " HK " + std::to_string(d.key_heads) + " HV " +
                    std::to_string(d.value_heads) + " (need DK ≤ 128, DK, DV multiples of 4, HK | HV)");
  detail::DeltaParams p;
  p.qkv = qkv;
  p.conv_dim = d.conv_dim();
  p.ba = ba;
  p.ba_ld = ba_ld;
  p.neg_exp_A = neg_exp_A;
  p.dt_bias = dt_bias;
  p.cu_seqlens = m.cu_seqlens;
  p.state_slots = m.state_slots;
  p.state = st.recurrent;
  p.out = out;
  p.HK = d.key_heads, p.HV = d.value_heads, p.DK = d.key_dim, p.DV = d.value_dim;
  p.q_scale = 1.f / std::sqrt(float(d.key_dim));
  p.max_q_len = m.max_q_len;
  p.scratch = static_cast<float*>(workspace);
  p.scratch_bytes = workspace_bytes;
  // Every sequence takes exactly one of the two kernels (length 1 vs ≥ 2); they touch disjoint slots.
  detail::launch_recurrent(p, m.num_seqs, stream);
  if (m.max_q_len > 1) detail::launch_chunked(p, m.num_seqs, stream);
}

namespace {

template <typename TZ>
void gated_rmsnorm(const GdnDims& d, const float* o, const TZ* z, int64_t z_ld, const float* w, int T, __nv_bfloat16* y,
                   cudaStream_t stream, const Fp8TokenActs& q, const Nvfp4Acts& nv) {
  if (T <= 0) return;
  const int64_t cols = d.value_dim * d.value_heads;
  if (q) check_fp8_token_out(q, cols, "gdn_gated_rmsnorm");
  const bool nv_fused = !q && gdn_gated_rmsnorm_nvfp4_fusable(d, nv);
  // The float4 layout where DV == 128 and every row start is 16-byte aligned.
  const bool vec = d.value_dim == detail::kVecDV && z_ld % 4 == 0 && (reinterpret_cast<uintptr_t>(o) & 15) == 0 &&
                   (reinterpret_cast<uintptr_t>(z) & 15) == 0 && (reinterpret_cast<uintptr_t>(w) & 15) == 0 &&
                   (!y || (reinterpret_cast<uintptr_t>(y) & 15) == 0) && (!q || q.ld % 4 == 0) &&
                   (!nv_fused || (reinterpret_cast<uintptr_t>(nv.x) & 15) == 0);
  if (q && gdn_gated_rmsnorm_fusable(d)) {
    const bool pre_w = T <= detail::kPreWaitMaxRows;
    auto kernel = vec ? (pre_w ? detail::gdn_gated_rmsnorm_fp8_kernel<true, true, TZ>
                               : detail::gdn_gated_rmsnorm_fp8_kernel<false, true, TZ>)
                      : (pre_w ? detail::gdn_gated_rmsnorm_fp8_kernel<true, false, TZ>
                               : detail::gdn_gated_rmsnorm_fp8_kernel<false, false, TZ>);
    detail::launch_pdl(kernel, dim3(unsigned(T)), dim3(detail::kQWarps * 32), 0, stream, true, o, z, z_ld, w,
                       int(d.value_heads), int(d.value_dim), float(d.norm_eps), y, q.codes, q.scales, q.ld, q.kpad);
    GDN_CUDA_CHECK_LAUNCH();
    return;
  }
  if (!y && !nv_fused) throw CudaError("gdn_gated_rmsnorm: no BF16 output");
  const int rows = T * d.value_heads;
  detail::launch_pdl(vec ? detail::gdn_gated_rmsnorm_kernel<true, TZ> : detail::gdn_gated_rmsnorm_kernel<false, TZ>,
                     dim3(unsigned((rows + detail::kNormWarps - 1) / detail::kNormWarps)), dim3(detail::kNormWarps * 32),
                     0, stream, true, o, z, z_ld, w, rows, int(d.value_heads), int(d.value_dim), float(d.norm_eps), y,
                     nv_fused ? nv : Nvfp4Acts{});
  GDN_CUDA_CHECK_LAUNCH();
  if (q) detail::launch_act_fp8_token(y, T, cols, q.codes, q.scales, T, q.ld, stream, true);
  if (nv && !nv_fused) {
    if (nv.ld % 256 != 0) throw CudaError("gdn_gated_rmsnorm: NVFP4 rows must be padded to a multiple of 256");
    detail::launch_act_nvfp4(y, T, cols, nv.gx, nv.x, T, nv.ld, stream, true);
  }
}

}  // namespace

void gdn_gated_rmsnorm(const GdnDims& d, const float* o, GemmOut z, int64_t z_ld, const float* w, int T,
                       __nv_bfloat16* y, cudaStream_t stream, const Fp8TokenActs& q, const Nvfp4Acts& nv) {
  if (z.bf16)
    gated_rmsnorm(d, o, static_cast<const __nv_bfloat16*>(z.p), z_ld, w, T, y, stream, q, nv);
  else
    gated_rmsnorm(d, o, static_cast<const float*>(z.p), z_ld, w, T, y, stream, q, nv);
}

bool gdn_gated_rmsnorm_nvfp4_fusable(const GdnDims& d, const Nvfp4Acts& nv) {
  return nv && d.value_dim % 32 == 0 && nv.ld == int64_t(d.value_dim) * d.value_heads;
}

bool gdn_gated_rmsnorm_fusable(const GdnDims& d) {
  return d.value_heads <= detail::kQWarps * detail::kQHeads && d.value_dim <= 32 * detail::kQPerLane;
}

}  // namespace gdn::cuda
