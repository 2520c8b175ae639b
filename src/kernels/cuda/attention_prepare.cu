// attention_prepare (model.md §3.4 steps 1–4): per-head zero-centred RMSNorm of q and k, rotate-half
// RoPE, q → bf16, k and v → the paged cache (BF16 or FP8 E4M3). Also kv_block_bytes.
//
// Grid (token, group of kPrepWarps head-vectors): one warp per head-vector (q heads, then k heads,
// then v heads), so a decode step's single token still spreads over several CTAs. The norm is a
// warp reduction; RoPE pairs element i with i ± rotary_dim/2, so the normalised row goes through a
// per-warp shared buffer. inv_freq is computed on the host exactly like kernels/cpu/attention.cpp
// (same powf) and passed by value; angles are the same fp32 product pos·inv_freq, cos/sin are the
// accurate (non-intrinsic) cosf/sinf.
#include <cmath>
#include <stdexcept>
#include <string>

#include "kernels/cuda/attention_common.cuh"
#include "kernels/cuda/fp_codecs.cuh"
#include "kernels/cuda/launch_pdl.h"
#include "kernels/cuda/cuda_check.h"

namespace gdn::cuda {
namespace {

constexpr int kMaxHeadDim = 256;
constexpr int kPrepWarps = 8;

struct InvFreq {
  float v[kMaxHeadDim / 2];
};

struct PrepareArgs {
  const float* qkv;
  int64_t ld;
  const int32_t* positions;
  const int32_t* slots;
  const float* q_norm_w;
  const float* k_norm_w;
  void* k_cache;
  void* v_cache;
  __nv_bfloat16* q_out;
  int heads, kv_heads, head_dim, rotary_dim, num_slots;
  float eps, k_scale, v_scale;
  bool fp8;
};

template <bool kFp8>
__device__ __forceinline__ void store_cache(void* cache, size_t idx, float v, float scale) {
  if constexpr (kFp8) {
    static_cast<uint8_t*>(cache)[idx] = static_cast<uint8_t>(detail::f32_to_e4m3(v / scale));
  } else {
    static_cast<__nv_bfloat16*>(cache)[idx] = __float2bfloat16_rn(v);
  }
}

// kPreW (decode-sized steps): the norm weights go to registers before waiting for the previous
// kernel (PDL). Large steps read them in the loop instead (the 16 registers cost the 8K prefill
// 263 → 370 µs per layer in occupancy).
template <bool kFp8, bool kPreW>
__global__ void __launch_bounds__(kPrepWarps * 32) attention_prepare_kernel(PrepareArgs a, InvFreq inv_freq) {
  __shared__ float row_buf[kPrepWarps][kMaxHeadDim];
  const int t = blockIdx.x;
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int D = a.head_dim, H = a.heads, KVH = a.kv_heads;
  // The norm weights of this lane's elements (i = lane + 32·k), fetched before waiting (PDL).
  constexpr int kPerLane = kPreW ? kMaxHeadDim / 32 : 1;
  float wq[kPerLane], wk[kPerLane];
  if constexpr (kPreW) {
#pragma unroll
    for (int k = 0; k < kPerLane; ++k) {
      const int i = lane + 32 * k;
      wq[k] = i < D ? __ldg(a.q_norm_w + i) : 0.f;
      wk[k] = i < D ? __ldg(a.k_norm_w + i) : 0.f;
    }
  }
  detail::griddep_wait();  // launched with PDL
  detail::griddep_launch_dependents();
  const int half = a.rotary_dim / 2;
  const int pos = a.positions[t];
  const int slot = a.slots[t];
  const bool write_kv = slot >= 0 && slot < a.num_slots;
  const float* row = a.qkv + t * a.ld;
  float* buf = row_buf[warp];
  const int units = H + 2 * KVH;

  for (int u = blockIdx.y * kPrepWarps + warp; u < min(units, int(blockIdx.y + 1) * kPrepWarps); u += kPrepWarps) {
    const bool is_q = u < H, is_k = !is_q && u < H + KVH, is_v = u >= H + KVH;
    if (!is_q && !write_kv) continue;
    const int kvh = is_k ? u - H : u - H - KVH;
    const float* src = is_q ? row + size_t(u) * 2 * D : row + size_t(2 * H) * D + size_t(is_k ? kvh : KVH + kvh) * D;
    const size_t cache_base = is_q ? 0 : ((size_t(slot / kKvBlockTokens) * KVH + kvh) * kKvBlockTokens + slot % kKvBlockTokens) * D;
    if (is_v) {
      for (int i = lane; i < D; i += 32) store_cache<kFp8>(a.v_cache, cache_base + i, src[i], a.v_scale);
      continue;
    }
    // zero-centred RMSNorm: x · rsqrt(mean(x²) + eps) · (1 + w)
    float ss = 0.f;
    for (int i = lane; i < D; i += 32) ss += src[i] * src[i];
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) ss += __shfl_xor_sync(0xffffffffu, ss, o);
    const float inv_rms = 1.f / sqrtf(ss / float(D) + a.eps);
    if constexpr (kPreW) {
#pragma unroll
      for (int k = 0; k < kPerLane; ++k) {
        const int i = lane + 32 * k;
        if (i < D) buf[i] = (src[i] * inv_rms) * (1.f + (is_q ? wq[k] : wk[k]));
      }
    } else {
      const float* w = is_q ? a.q_norm_w : a.k_norm_w;
      for (int i = lane; i < D; i += 32) buf[i] = (src[i] * inv_rms) * (1.f + w[i]);
    }
    __syncwarp();
    for (int i = lane; i < D; i += 32) {
      float y = buf[i];
      if (i < 2 * half) {
        const int j = i < half ? i : i - half;
        const float ang = float(pos) * inv_freq.v[j];
        const float c = cosf(ang), s = sinf(ang);
        // x'_j = x_j cos − x_{j+half} sin ; x'_{j+half} = x_{j+half} cos + x_j sin
        y = i < half ? __fsub_rn(__fmul_rn(buf[i], c), __fmul_rn(buf[i + half], s))
                     : __fadd_rn(__fmul_rn(buf[i], c), __fmul_rn(buf[j], s));
      }
      if (is_q)
        a.q_out[(size_t(t) * H + u) * D + i] = __float2bfloat16_rn(y);
      else
        store_cache<kFp8>(a.k_cache, cache_base + i, y, a.k_scale);
    }
    __syncwarp();
  }
}

}  // namespace

size_t kv_block_bytes(const AttnDims& d, KvDtype dt) {
  const size_t elem = dt == KvDtype::Fp8E4m3 ? 1 : 2;
  return 2 * size_t(d.kv_heads) * kKvBlockTokens * size_t(d.head_dim) * elem;
}

void attention_prepare(const AttnDims& d, const float* qkv, int64_t ld, const StepMeta& m, const float* q_norm_w,
                       const float* k_norm_w, const KvLayerView& kv, __nv_bfloat16* q_out, cudaStream_t stream) {
  if (m.num_tokens <= 0) return;
  if (d.head_dim <= 0 || d.head_dim > kMaxHeadDim || d.rotary_dim < 0 || d.rotary_dim % 2 != 0 ||
      d.rotary_dim > d.head_dim || d.heads <= 0 || d.kv_heads <= 0)
    throw std::invalid_argument("attention_prepare: unsupported dims (head_dim " + std::to_string(d.head_dim) +
                                ", rotary_dim " + std::to_string(d.rotary_dim) + ")");
  InvFreq inv{};
  const int half = d.rotary_dim / 2;
  // Exactly kernels/cpu/attention.cpp apply_rope: fp32 powf.
  for (int i = 0; i < half; ++i) inv.v[i] = 1.f / std::pow(float(d.rope_theta), float(2 * i) / float(d.rotary_dim));
  PrepareArgs a{};
  a.qkv = qkv;
  a.ld = ld;
  a.positions = m.positions;
  a.slots = m.slot_mapping;
  a.q_norm_w = q_norm_w;
  a.k_norm_w = k_norm_w;
  a.k_cache = kv.k;
  a.v_cache = kv.v;
  a.q_out = q_out;
  a.heads = d.heads;
  a.kv_heads = d.kv_heads;
  a.head_dim = d.head_dim;
  a.rotary_dim = d.rotary_dim;
  a.num_slots = kv.num_blocks * kKvBlockTokens;
  a.eps = d.norm_eps;
  a.k_scale = kv.k_scale;
  a.v_scale = kv.v_scale;
  a.fp8 = kv.dtype == KvDtype::Fp8E4m3;
  const dim3 grid(unsigned(m.num_tokens), unsigned((d.heads + 2 * d.kv_heads + kPrepWarps - 1) / kPrepWarps));
  const bool small = m.num_tokens <= detail::kPreWaitMaxRows;
  auto kernel = a.fp8 ? (small ? attention_prepare_kernel<true, true> : attention_prepare_kernel<true, false>)
                      : (small ? attention_prepare_kernel<false, true> : attention_prepare_kernel<false, false>);
  detail::launch_pdl(kernel, grid, dim3(kPrepWarps * 32), 0, stream, true, a, inv);
  GDN_CUDA_CHECK_LAUNCH();
}

}  // namespace gdn::cuda
