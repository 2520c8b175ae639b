// Causal depthwise conv1d + SiLU of the Gated DeltaNet input, varlen with per-slot conv state
// (deltanet_cuda.h; CPU reference kernels/cpu/conv.cpp).
//
// Two strategies, chosen by the host field max_q_len:
//  * short sequences (decode, speculative steps): one thread per (sequence, 4 channels) walks the
//    whole sequence with the K−1 history in registers, reading the old state first and writing the
//    new one last — one kernel, no race, each input read once.
//  * prefill: one thread per (32-token tile of the flattened batch, 4 channels) for the outputs,
//    then a small kernel that writes each sequence's last K−1 inputs to its slot. The split is
//    needed because a sequence's first tokens (which read the old state) and its last token
//    (which would write the new state) can live in different tiles/CTAs.
// Channels are the fastest thread index, so every load/store is a coalesced 16-byte access.
#include <stdexcept>
#include <string>

#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/deltanet_cuda.h"
#include "kernels/cuda/gdn_internal.h"
#include "kernels/cuda/fp_codecs.cuh"
#include "kernels/cuda/launch_pdl.h"

namespace gdn::cuda {
namespace {

using detail::gdn_silu;

constexpr int kConvThreads = 128;
constexpr int kConvTileTokens = 32;
constexpr int kConvSeqKernelMaxLen = 8;  // max_q_len up to this uses the per-sequence kernel

template <int VEC>
struct Vec {
  float v[VEC];
};

template <int VEC>
__device__ __forceinline__ Vec<VEC> vload(const float* p) {
  Vec<VEC> r;
  if constexpr (VEC == 4) {
    const float4 f = __ldg(reinterpret_cast<const float4*>(p));
    r.v[0] = f.x, r.v[1] = f.y, r.v[2] = f.z, r.v[3] = f.w;
  } else {
#pragma unroll
    for (int i = 0; i < VEC; ++i) r.v[i] = __ldg(p + i);
  }
  return r;
}
// Loads of the state, which the same launch may write (no read-only cache path).
template <int VEC>
__device__ __forceinline__ Vec<VEC> vload_rw(const float* p) {
  Vec<VEC> r;
  if constexpr (VEC == 4) {
    const float4 f = *reinterpret_cast<const float4*>(p);
    r.v[0] = f.x, r.v[1] = f.y, r.v[2] = f.z, r.v[3] = f.w;
  } else {
#pragma unroll
    for (int i = 0; i < VEC; ++i) r.v[i] = p[i];
  }
  return r;
}
// An input row of the conv (in_proj's qkv output) as BF16 holds it: fp32 rounded to nearest, or BF16
// as the large-M GEMM writes it — the same numbers either way (the conv state keeps these values).
template <int VEC>
__device__ __forceinline__ Vec<VEC> xload(const float* p) {
  Vec<VEC> r = vload<VEC>(p);
#pragma unroll
  for (int i = 0; i < VEC; ++i) r.v[i] = __bfloat162float(__float2bfloat16_rn(r.v[i]));
  return r;
}
template <int VEC>
__device__ __forceinline__ Vec<VEC> xload(const __nv_bfloat16* p) {
  Vec<VEC> r;
  if constexpr (VEC == 4) {
    const uint2 u = __ldg(reinterpret_cast<const uint2*>(p));
    r.v[0] = __uint_as_float(u.x << 16), r.v[1] = __uint_as_float(u.x & 0xFFFF0000u);
    r.v[2] = __uint_as_float(u.y << 16), r.v[3] = __uint_as_float(u.y & 0xFFFF0000u);
  } else {
#pragma unroll
    for (int i = 0; i < VEC; ++i) r.v[i] = __bfloat162float(p[i]);
  }
  return r;
}

template <int VEC>
__device__ __forceinline__ void vstore(float* p, const Vec<VEC>& r) {
  if constexpr (VEC == 4) {
    *reinterpret_cast<float4*>(p) = make_float4(r.v[0], r.v[1], r.v[2], r.v[3]);
  } else {
#pragma unroll
    for (int i = 0; i < VEC; ++i) p[i] = r.v[i];
  }
}
template <int VEC>
__device__ __forceinline__ Vec<VEC> vzero() {
  Vec<VEC> r;
#pragma unroll
  for (int i = 0; i < VEC; ++i) r.v[i] = 0.f;
  return r;
}

template <typename In>
struct ConvParams {
  const In* x;
  int64_t ld;
  const float* w;  // [K, C]
  const int32_t* cu_seqlens;
  const int32_t* state_slots;
  float* state;  // [slots, K−1, C]
  float* out;    // [T, C]
  int C, S, T;
};

// out = silu(Σ_{i<K−1} w_i·h_i + w_{K−1}·x), the CPU's summation order (tap 0 first).
template <int K, int VEC>
__device__ __forceinline__ Vec<VEC> conv_point(const Vec<VEC> (&w)[K], const Vec<VEC> (&h)[K - 1], const Vec<VEC>& x) {
  Vec<VEC> o;
#pragma unroll
  for (int e = 0; e < VEC; ++e) {
    float acc = 0.f;
#pragma unroll
    for (int i = 0; i < K - 1; ++i) acc += w[i].v[e] * h[i].v[e];
    acc += w[K - 1].v[e] * x.v[e];
    o.v[e] = gdn_silu(acc);
  }
  return o;
}

template <int K, int VEC, typename In>
__global__ void __launch_bounds__(kConvThreads) conv_seq_kernel(ConvParams<In> p) {
  const int c = (blockIdx.x * kConvThreads + threadIdx.x) * VEC;
  const int s = blockIdx.y;
  Vec<VEC> w[K];  // the weights are read-only: fetched before waiting for the previous kernel (PDL)
  if (c < p.C) {
#pragma unroll
    for (int i = 0; i < K; ++i) w[i] = vload<VEC>(p.w + int64_t(i) * p.C + c);
  }
  detail::griddep_wait();  // launched with PDL (decode): the projections it reads come from the previous kernel
  detail::griddep_launch_dependents();
  if (c >= p.C) return;
  const int slot = p.state_slots[s];
  if (slot < 0) return;
  const int bos = p.cu_seqlens[s], len = p.cu_seqlens[s + 1] - bos;
  if (len <= 0) return;
  float* st = p.state + (int64_t(slot) * (K - 1)) * p.C + c;
  Vec<VEC> h[K - 1];
#pragma unroll
  for (int i = 0; i < K - 1; ++i) h[i] = vload_rw<VEC>(st + int64_t(i) * p.C);
  for (int t = 0; t < len; ++t) {
    const Vec<VEC> xv = xload<VEC>(p.x + int64_t(bos + t) * p.ld + c);
    vstore<VEC>(p.out + int64_t(bos + t) * p.C + c, conv_point<K, VEC>(w, h, xv));
#pragma unroll
    for (int i = 0; i < K - 2; ++i) h[i] = h[i + 1];
    h[K - 2] = xv;
  }
#pragma unroll
  for (int i = 0; i < K - 1; ++i) vstore<VEC>(st + int64_t(i) * p.C, h[i]);
}

// Largest s with cu[s] ≤ t (skips empty sequences).
__device__ __forceinline__ int seq_of(const int32_t* cu, int S, int t) {
  int lo = 0, hi = S;
  while (lo < hi) {
    const int mid = (lo + hi + 1) >> 1;
    if (__ldg(cu + mid) <= t) lo = mid; else hi = mid - 1;
  }
  return lo;
}

template <int K, int VEC, typename In>
__global__ void __launch_bounds__(kConvThreads) conv_tile_kernel(ConvParams<In> p) {
  const int c = (blockIdx.x * kConvThreads + threadIdx.x) * VEC;
  if (c >= p.C) return;
  const int t0 = blockIdx.y * kConvTileTokens, t1 = min(t0 + kConvTileTokens, p.T);
  Vec<VEC> w[K], h[K - 1];
#pragma unroll
  for (int i = 0; i < K; ++i) w[i] = vload<VEC>(p.w + int64_t(i) * p.C + c);
  int s = seq_of(p.cu_seqlens, p.S, t0);
  int bos = 0, end = -1, slot = -1;
  for (int t = t0; t < t1; ++t) {
    if (t >= end) {  // first token of this tile in sequence s: rebuild the history
      while (__ldg(p.cu_seqlens + s + 1) <= t) ++s;
      bos = __ldg(p.cu_seqlens + s);
      end = __ldg(p.cu_seqlens + s + 1);
      slot = __ldg(p.state_slots + s);
      const int pos = t - bos;
#pragma unroll
      for (int i = 0; i < K - 1; ++i) {
        const int vp = pos - (K - 1) + i;  // position of history entry i in the sequence
        if (vp >= 0) h[i] = xload<VEC>(p.x + int64_t(bos + vp) * p.ld + c);
        else if (slot >= 0) h[i] = vload_rw<VEC>(p.state + (int64_t(slot) * (K - 1) + (K - 1) + vp) * p.C + c);
        else h[i] = vzero<VEC>();
      }
    }
    const Vec<VEC> xv = xload<VEC>(p.x + int64_t(t) * p.ld + c);
    if (slot >= 0) vstore<VEC>(p.out + int64_t(t) * p.C + c, conv_point<K, VEC>(w, h, xv));
#pragma unroll
    for (int i = 0; i < K - 2; ++i) h[i] = h[i + 1];
    h[K - 2] = xv;
  }
}

// After conv_tile_kernel: new state = the last K−1 rows of [old state; x] of each sequence.
template <int K, int VEC, typename In>
__global__ void __launch_bounds__(kConvThreads) conv_state_kernel(ConvParams<In> p) {
  const int c = (blockIdx.x * kConvThreads + threadIdx.x) * VEC;
  const int s = blockIdx.y;
  if (c >= p.C) return;
  const int slot = p.state_slots[s];
  if (slot < 0) return;
  const int bos = p.cu_seqlens[s], len = p.cu_seqlens[s + 1] - bos;
  if (len <= 0) return;
  float* st = p.state + (int64_t(slot) * (K - 1)) * p.C + c;
  Vec<VEC> nw[K - 1];
#pragma unroll
  for (int r = 0; r < K - 1; ++r) {
    const int v = len + r;  // row of the virtual sequence [state; x]
    nw[r] = v < K - 1 ? vload_rw<VEC>(st + int64_t(v) * p.C) : xload<VEC>(p.x + int64_t(bos + v - (K - 1)) * p.ld + c);
  }
#pragma unroll
  for (int r = 0; r < K - 1; ++r) vstore<VEC>(st + int64_t(r) * p.C, nw[r]);
}

template <int K, int VEC, typename In>
void launch_conv(const ConvParams<In>& p, int max_q_len, cudaStream_t stream) {
  const int blocks_c = (p.C / VEC + kConvThreads - 1) / kConvThreads;
  if (max_q_len <= kConvSeqKernelMaxLen) {
    detail::launch_pdl(conv_seq_kernel<K, VEC, In>, dim3(blocks_c, p.S), dim3(kConvThreads), 0, stream, true, p);
    GDN_CUDA_CHECK_LAUNCH();
    return;
  }
  conv_tile_kernel<K, VEC, In><<<dim3(blocks_c, (p.T + kConvTileTokens - 1) / kConvTileTokens), kConvThreads, 0, stream>>>(p);
  GDN_CUDA_CHECK_LAUNCH();
  conv_state_kernel<K, VEC, In><<<dim3(blocks_c, p.S), kConvThreads, 0, stream>>>(p);
  GDN_CUDA_CHECK_LAUNCH();
}

template <int VEC, typename In>
void launch_conv_k(int K, const ConvParams<In>& p, int max_q_len, cudaStream_t stream) {
  switch (K) {
    case 2: return launch_conv<2, VEC>(p, max_q_len, stream);
    case 3: return launch_conv<3, VEC>(p, max_q_len, stream);
    case 4: return launch_conv<4, VEC>(p, max_q_len, stream);
    default: throw CudaError("gdn_conv1d_silu: conv_kernel " + std::to_string(K) + " not supported (2..4)");
  }
}

bool aligned16(const void* p) { return (reinterpret_cast<uintptr_t>(p) & 15) == 0; }

}  // namespace

size_t gdn_slot_bytes(const GdnDims& d) {
  return (size_t(d.conv_kernel - 1) * size_t(d.conv_dim()) + size_t(d.value_heads) * d.key_dim * d.value_dim) *
         sizeof(float);
}

namespace {

template <typename In>
void conv1d_silu(const GdnDims& d, const In* x, int64_t ld, const float* weight_kc, const StepMeta& m, GdnStateView st,
                 float* out, cudaStream_t stream) {
  if (m.num_seqs <= 0 || m.num_tokens <= 0) return;
  ConvParams<In> p{x, ld, weight_kc, m.cu_seqlens, m.state_slots, st.conv, out, d.conv_dim(), m.num_seqs, m.num_tokens};
  const bool vec4 = p.C % 4 == 0 && ld % 4 == 0 && aligned16(x) && aligned16(weight_kc) && aligned16(st.conv) &&
                    aligned16(out);
  if (vec4) launch_conv_k<4>(d.conv_kernel, p, m.max_q_len, stream);
  else launch_conv_k<1>(d.conv_kernel, p, m.max_q_len, stream);
}

}  // namespace

void gdn_conv1d_silu(const GdnDims& d, GemmOut x, int64_t ld, const float* weight_kc, const StepMeta& m,
                     GdnStateView st, float* out, cudaStream_t stream) {
  if (x.bf16)
    conv1d_silu(d, static_cast<const __nv_bfloat16*>(x.p), ld, weight_kc, m, st, out, stream);
  else
    conv1d_silu(d, static_cast<const float*>(x.p), ld, weight_kc, m, st, out, stream);
}

}  // namespace gdn::cuda
