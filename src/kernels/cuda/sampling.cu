// GPU token sampling (sampling_cuda.h) with the semantics of runtime/sampler.cpp.
//
// Four kernels per call:
//  1. penalty_kernel (one CTA per row): repetition, then frequency/presence on the listed tokens
//     (the entries of a row are distinct tokens, so every entry is one independent update).
//     freq·count + pres is one FMA: sampler.cpp's expression is contracted by GCC (C++ defaults to
//     -ffp-contract=fast, and the build uses -march=native, which has FMA on the x86 hosts).
//  2. argmax_partial_kernel (C chunks × R rows, C·R ≈ 2 waves): NaN → −inf in place, and per chunk
//     the max with ties to the lowest id.
//  3. prepare_kernel (same C × R grid): each CTA reduces its row's chunk maxima; stochastic rows are
//     scaled by 1/T in place (like the CPU); rows without top_k/top_p run the whole draw here (the
//     chunk's best race score, below); filtered rows add their chunk's bucket histogram (below) to
//     the row's histogram in the workspace.
//  4. sample_kernel (one 512-thread CTA per row): greedy rows write the argmax; unfiltered rows
//     reduce the chunk race winners; filtered rows find the kept set and draw among it.
//
// Kept set, exactly as sampler.cpp defines it. Every filter keeps a prefix of the order "scaled
// logit descending, id ascending", which is the order of the unique 64-bit key
// K = (order-preserving bits of the logit) << 32 | (2³²−1 − id); so each filter is a threshold on K:
//  * top_k: the k-th largest K over the finite logits (all of them if fewer than k);
//  * top_p: the first K (descending) at which the cumulative weight reaches top_p · mass;
//    alone, the candidates are those with w ≥ min_p and mass is the full Σw; after top_k, mass is
//    the top-k set's and min_p is applied afterwards — as in sampler.cpp;
//  * min_p: w ≥ min_p where w = exp(l − max) (the argmax has w = 1).
// Thresholds are found like the CPU does it, without a sort: a histogram over the distance to the
// max (32 buckets per nat) gives the bucket `cut` where the count (top_k) or mass (top_p) is
// reached; the candidates in buckets ≤ cut (usually a few hundred) are compacted into shared memory
// and an 8-level radix select on K (counts or double masses per 8-bit digit) finds the threshold.
// If more than kCap candidates qualify (very flat rows, huge top_k), the radix select runs over the
// row in global memory instead (one pass per digit): slower, same result.
// Masses are summed in 2⁻⁴⁴ fixed point (64-bit integer atomics): exact and independent of the
// order, so the result is deterministic; each weight is rounded by ≤ 3e-14 (the CPU sums floats in
// double), so the kept set can differ from the CPU's only when a cumulative mass lands within
// ~1e-9 relative of its target — far below the GPU expf's own ≤ 2 ulp difference from std::exp.
//
// Draw: an exponential race — token i gets score w_i / E_i with E_i ~ Exp(1), the argmax is a
// sample of w / Σw over the kept set (exact in distribution, no normalisation or prefix sum, and
// independent of how the work is split). E_i comes from Philox4x32-10 (curand's), key = seed,
// counter = (i / 4, 0, offset_lo, offset_hi), output i mod 4: a token's random number depends only
// on (seed, offset, i), so the draw is deterministic and independent of the batch.
#include <cuda_runtime.h>
#include <curand_kernel.h>

#include <algorithm>
#include <climits>
#include <cstdint>
#include <string>

#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/device.h"
#include "kernels/cuda/sampling_cuda.h"
#include "kernels/cuda/sampling_internal.cuh"

namespace gdn::cuda {

namespace {

constexpr int kMaxChunks = 128;
constexpr int kArgmaxThreads = 256;
constexpr int kRowThreads = 512;
constexpr int kBuckets = 1024;  // as sampler.cpp
constexpr float kPerNat = 32.f;
constexpr int kCap = 12288;  // candidates held in shared memory (12 B each)
constexpr float kNegInf = -__builtin_huge_valf();

constexpr float kFxScale = 0x1p44f;  // weights ≤ 1: Σ over 2^18 tokens < 2^62

__device__ __forceinline__ unsigned long long fx_of(float w) { return __float2ull_rn(__fmul_rn(w, kFxScale)); }

struct ArgMax {
  float v;
  int i;
};

__device__ __forceinline__ bool better(float v, int i, float bv, int bi) { return v > bv || (v == bv && i < bi); }

// ---------------------------------------------------------------------------------------------
// Block reductions (every thread gets the result; same summation order in every thread).

__device__ double block_sum(double v, double* scratch) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xFFFFFFFFu, v, o);
  __syncthreads();
  if (threadIdx.x % 32 == 0) scratch[threadIdx.x / 32] = v;
  __syncthreads();
  double s = 0;
  for (int w = 0; w < int(blockDim.x / 32); ++w) s += scratch[w];
  return s;
}

__device__ unsigned long long block_sum_u64(unsigned long long v, unsigned long long* scratch) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xFFFFFFFFu, v, o);
  __syncthreads();
  if (threadIdx.x % 32 == 0) scratch[threadIdx.x / 32] = v;
  __syncthreads();
  unsigned long long s = 0;
  for (int w = 0; w < int(blockDim.x / 32); ++w) s += scratch[w];
  return s;
}

__device__ void block_argmax(float& v, int& i, float* sv, int* si) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) {
    const float ov = __shfl_xor_sync(0xFFFFFFFFu, v, o);
    const int oi = __shfl_xor_sync(0xFFFFFFFFu, i, o);
    if (better(ov, oi, v, i)) v = ov, i = oi;
  }
  __syncthreads();
  if (threadIdx.x % 32 == 0) sv[threadIdx.x / 32] = v, si[threadIdx.x / 32] = i;
  __syncthreads();
  v = sv[0], i = si[0];
  for (int w = 1; w < int(blockDim.x / 32); ++w)
    if (better(sv[w], si[w], v, i)) v = sv[w], i = si[w];
}

// Four consecutive logits from i (−inf past the end); vector load when rows are 16-byte aligned.
__device__ __forceinline__ void load4(const float* row, int i, int V, bool vec, float (&x)[4]) {
  if (vec) {
    const float4 q = *reinterpret_cast<const float4*>(row + i);
    x[0] = q.x, x[1] = q.y, x[2] = q.z, x[3] = q.w;
  } else {
#pragma unroll
    for (int k = 0; k < 4; ++k) x[k] = i + k < V ? row[i + k] : kNegInf;
  }
}
__device__ __forceinline__ void store4(float* row, int i, int V, bool vec, const float (&x)[4]) {
  if (vec) {
    *reinterpret_cast<float4*>(row + i) = make_float4(x[0], x[1], x[2], x[3]);
  } else {
#pragma unroll
    for (int k = 0; k < 4; ++k)
      if (i + k < V) row[i + k] = x[k];
  }
}

// ---------------------------------------------------------------------------------------------
// Keys, buckets, random numbers.

__device__ __forceinline__ uint64_t order_key(float l, int id) {
  const uint32_t u = __float_as_uint(l == 0.f ? 0.f : l);  // −0 == +0 for the CPU's comparisons
  const uint32_t f = (u & 0x80000000u) ? ~u : (u | 0x80000000u);
  return (uint64_t(f) << 32) | uint64_t(0xFFFFFFFFu - uint32_t(id));
}
__device__ __forceinline__ int key_id(uint64_t k) { return int(0xFFFFFFFFu - uint32_t(k)); }

// sampler.cpp's bucket_of (d = top − l; −inf logits land in the last bucket).
__device__ __forceinline__ int bucket_of(float top, float l) {
  const float d = __fsub_rn(top, l);
  return d < float(kBuckets - 1) / kPerNat ? int(__fmul_rn(d, kPerNat)) : kBuckets - 1;
}

__device__ __forceinline__ float weight_of(float l, float top) { return expf(__fsub_rn(l, top)); }

__device__ __forceinline__ uint4 philox_group(uint64_t seed, uint64_t offset, int group) {
  return curand_Philox4x32_10(make_uint4(uint32_t(group), 0u, uint32_t(offset), uint32_t(offset >> 32)),
                              make_uint2(uint32_t(seed), uint32_t(seed >> 32)));
}
__device__ __forceinline__ uint32_t pick(uint4 r, int k) { return k == 0 ? r.x : k == 1 ? r.y : k == 2 ? r.z : r.w; }

// Exp(1) from 32 random bits, −log(u) with u ∈ (0, 1) never 0 or 1: the upper half goes through
// log1p(−v), v = 1 − u, so values near 0 keep their relative precision (E > 1e-10 always).
__device__ __forceinline__ float exp1_of(uint32_t x) {
  if (x < 0x80000000u) return -logf(__fmul_rn(__fadd_rn(__uint2float_rn(x), 0.5f), 0x1p-32f));
  return -log1pf(-__fmul_rn(__fadd_rn(__uint2float_rn(0xFFFFFFFFu - x), 0.5f), 0x1p-32f));
}
__device__ __forceinline__ float race_score(float w, uint32_t x) { return __fdiv_rn(w, exp1_of(x)); }

// ---------------------------------------------------------------------------------------------
// 1. Penalties.

__global__ void penalty_kernel(float* __restrict__ logits, int V, const GpuSamplingRow* __restrict__ rows,
                               const PenaltyEntry* __restrict__ pen) {
  const GpuSamplingRow p = rows[blockIdx.x];
  const float rep = p.repetition_penalty, freq = p.frequency_penalty, pres = p.presence_penalty;
  const bool rep_on = rep != 1.f, fp_on = freq != 0.f || pres != 0.f;
  if (!rep_on && !fp_on) return;
  float* row = logits + int64_t(blockIdx.x) * V;
  for (int e = p.penalty_begin + int(threadIdx.x); e < p.penalty_end; e += blockDim.x) {
    const PenaltyEntry q = pen[e];
    if (q.token < 0 || q.token >= V) continue;
    float l = row[q.token];
    if (rep_on) l = l > 0.f ? __fdiv_rn(l, rep) : __fmul_rn(l, rep);
    if (fp_on && q.out_count > 0) l = __fsub_rn(l, __fmaf_rn(freq, float(q.out_count), pres));
    row[q.token] = l;
  }
}

// ---------------------------------------------------------------------------------------------
// 2. NaN → −inf and chunk maxima.

__global__ void __launch_bounds__(kArgmaxThreads) argmax_partial_kernel(float* __restrict__ logits, int V, int C,
                                                                        ArgMax* __restrict__ part) {
  __shared__ float sv[32];
  __shared__ int si[32];
  const int r = blockIdx.y, c = blockIdx.x;
  const int chunk = ((V + C - 1) / C + 3) / 4 * 4;
  const int begin = c * chunk, end = min(V, begin + chunk);
  float* row = logits + int64_t(r) * V;
  const bool vec = V % 4 == 0;
  float bv = kNegInf;
  int bi = INT_MAX;
  for (int i = begin + 4 * int(threadIdx.x); i < end; i += 4 * kArgmaxThreads) {
    float x[4];
    load4(row, i, V, vec, x);
    bool fix = false;
#pragma unroll
    for (int k = 0; k < 4; ++k) {
      if (x[k] != x[k]) x[k] = kNegInf, fix = true;
      if (i + k < end && better(x[k], i + k, bv, bi)) bv = x[k], bi = i + k;
    }
    if (fix) store4(row, i, V, vec, x);
  }
  block_argmax(bv, bi, sv, si);
  if (threadIdx.x == 0) part[r * C + c] = ArgMax{bv, bi};
}

// ---------------------------------------------------------------------------------------------
// 3. Per-row filtering and draw.

struct Smem {
  uint32_t hist_cnt[kBuckets];
  unsigned long long hist_mass[kBuckets];
  uint32_t rad_cnt[256];
  unsigned long long rad_mass[256];
  double red_d[32];
  unsigned long long red_u[32];
  float red_f[32];
  int red_i[32];
  int n_buf;
  int b_bin;
  int b_cut;
  int b_ncand;
  double b_before;
};
constexpr size_t kKeyOffset = (sizeof(Smem) + 15) / 16 * 16;
constexpr size_t kSmemBytes = kKeyOffset + size_t(kCap) * 12;

// Candidates {finite, bucket ≤ cut, w ≥ min_w} straight from the (already scaled) row.
struct RowSource {
  const float* row;
  int V;
  bool vec;
  float top;
  int cut;
  float min_w;
  template <class F>
  __device__ void each(F&& f) const {
    for (int i = 4 * int(threadIdx.x); i < V; i += 4 * kRowThreads) {
      float x[4];
      load4(row, i, V, vec, x);
#pragma unroll
      for (int k = 0; k < 4; ++k) {
        const float l = x[k];
        if (l == kNegInf || bucket_of(top, l) > cut) continue;
        const float w = weight_of(l, top);
        if (w >= min_w) f(order_key(l, i + k), w);
      }
    }
  }
};

// The same candidates compacted into shared memory.
struct SmemSource {
  const uint64_t* key;
  const float* w;
  int n;
  template <class F>
  __device__ void each(F&& f) const {
    for (int j = threadIdx.x; j < n; j += kRowThreads) f(key[j], w[j]);
  }
};

// One warp: the first bin (in ascending or descending bin order) at which the running sum of h
// reaches target; *before = the sum of the bins ahead of it. −1 when never reached.
template <class T>
__device__ int warp_find(const T* h, int n, bool desc, double target, double* before) {
  const int lane = threadIdx.x % 32, per = n / 32;
  auto bin = [&](int p) { return desc ? n - 1 - p : p; };
  // Integer sums (counts, or fixed-point masses): exact, so the walk agrees with the scan.
  unsigned long long local = 0;
  for (int j = 0; j < per; ++j) local += h[bin(lane * per + j)];
  unsigned long long incl = local;
#pragma unroll
  for (int o = 1; o < 32; o <<= 1) {
    const unsigned long long t = __shfl_up_sync(0xFFFFFFFFu, incl, o);
    if (lane >= o) incl += t;
  }
  const unsigned m = __ballot_sync(0xFFFFFFFFu, double(incl) >= target);
  if (m == 0) return -1;
  const int L = __ffs(m) - 1;
  int res = -1;
  unsigned long long bef = 0;
  if (lane == L) {
    unsigned long long cum = incl - local;
    for (int j = 0; j < per && res < 0; ++j) {
      const int b = bin(lane * per + j);
      if (double(cum + h[b]) >= target) res = b, bef = cum;
      cum += h[b];
    }
  }
  res = __shfl_sync(0xFFFFFFFFu, res, L);
  bef = __shfl_sync(0xFFFFFFFFu, bef, L);
  *before = double(bef);
  return res;
}

// The threshold key of a prefix of the candidates with key ≥ t_lo, in descending key order:
// count mode: the target-th largest key; mass mode: the first key at which the cumulative weight
// reaches target. Never reached (fewer candidates / rounding): keeps all remaining (returns t_lo or
// the prefix of the bin range that was being refined).
template <class Src>
__device__ uint64_t radix_select(Smem& sm, const Src& src, uint64_t t_lo, bool mass_mode, double target) {
  uint64_t prefix = 0;
  for (int level = 7; level >= 0; --level) {
    const int shift = 8 * level;
    const uint64_t hi_mask = level == 7 ? 0ull : (~0ull << (shift + 8));
    for (int b = threadIdx.x; b < 256; b += kRowThreads) sm.rad_cnt[b] = 0, sm.rad_mass[b] = 0;
    __syncthreads();
    src.each([&](uint64_t k, float w) {
      if (k < t_lo || (k & hi_mask) != prefix) return;
      const int b = int(k >> shift) & 255;
      if (mass_mode)
        atomicAdd(&sm.rad_mass[b], fx_of(w));
      else
        atomicAdd(&sm.rad_cnt[b], 1u);
    });
    __syncthreads();
    if (threadIdx.x < 32) {
      double before = 0;
      // A target ≤ 0 would pick an empty bin: any positive mass reaches 0.5.
      const int b = mass_mode ? warp_find(sm.rad_mass, 256, true, fmax(target, 0.5), &before)
                              : warp_find(sm.rad_cnt, 256, true, target, &before);
      if (threadIdx.x == 0) sm.b_bin = b, sm.b_before = before;
    }
    __syncthreads();
    const int b = sm.b_bin;
    const double before = sm.b_before;
    if (b < 0) return prefix > t_lo ? prefix : t_lo;
    prefix |= uint64_t(b) << shift;
    target -= before;
  }
  return prefix > t_lo ? prefix : t_lo;
}

// Σ w (fixed point) over the candidates with key ≥ t_lo.
template <class Src>
__device__ double mass_above(Smem& sm, const Src& src, uint64_t t_lo) {
  unsigned long long s = 0;
  src.each([&](uint64_t k, float w) {
    if (k >= t_lo) s += fx_of(w);
  });
  return double(block_sum_u64(s, sm.red_u));
}

// Draw among candidates with key ≥ t and w ≥ min_p (and w > 0); optional debug probabilities.
template <class Src>
__device__ int draw(Smem& sm, const Src& src, uint64_t t, float min_p, const GpuSamplingRow& p, float* dbg, int V) {
  float bs = -1.f;
  int bi = INT_MAX;
  src.each([&](uint64_t k, float w) {
    if (k < t || !(w >= min_p) || !(w > 0.f)) return;
    const int id = key_id(k);
    const float s = race_score(w, pick(philox_group(p.seed, p.offset, id >> 2), id & 3));
    if (better(s, id, bs, bi)) bs = s, bi = id;
  });
  block_argmax(bs, bi, sm.red_f, sm.red_i);
  if (dbg) {
    double sum = 0;
    src.each([&](uint64_t k, float w) {
      if (k >= t && w >= min_p && w > 0.f) sum += double(w);
    });
    sum = block_sum(sum, sm.red_d);
    for (int i = threadIdx.x; i < V; i += kRowThreads) dbg[i] = 0.f;
    __syncthreads();
    src.each([&](uint64_t k, float w) {
      if (k >= t && w >= min_p && w > 0.f) dbg[key_id(k)] = float(double(w) / sum);
    });
  }
  return bi;
}

// What a row does after the argmax; the same decision in prepare_kernel and sample_kernel.
enum RowMode { kGreedy = 0, kOverflow = 1, kUnfiltered = 2, kFiltered = 3 };
__device__ __forceinline__ int row_mode(const GpuSamplingRow& p, float best_v, int V, float* inv_t, float* top) {
  if (p.temperature == 0.f || best_v == kNegInf || best_v == -kNegInf) return kGreedy;
  *inv_t = __fdiv_rn(1.f, p.temperature);
  *top = __fmul_rn(best_v, *inv_t);
  if (!isfinite(*top)) return kOverflow;  // max/T overflows: the CPU scales in place, then returns the argmax
  const bool k_on = p.top_k > 0 && p.top_k < V, p_on = p.top_p < 1.f;
  return (k_on || p_on) ? kFiltered : kUnfiltered;
}

// Every CTA of a row reduces the row's chunk maxima (C ≤ 128 entries).
__device__ void row_argmax(const ArgMax* part, int r, int C, float& best_v, int& best, float* sv, int* si) {
  best_v = kNegInf, best = INT_MAX;
  for (int c = threadIdx.x; c < C; c += blockDim.x) {
    const ArgMax a = part[r * C + c];
    if (better(a.v, a.i, best_v, best)) best_v = a.v, best = a.i;
  }
  block_argmax(best_v, best, sv, si);
}

// Row workspace of the filtered rows: bucket histogram (counts of candidates, fixed-point masses)
// and [total mass, candidate count].
struct RowHist {
  uint32_t* cnt;             // [R][kBuckets]
  unsigned long long* mass;  // [R][kBuckets]
  unsigned long long* tot;   // [R][2]
};

__global__ void __launch_bounds__(kArgmaxThreads) prepare_kernel(float* __restrict__ logits, int V, int C,
                                                                 const ArgMax* __restrict__ part,
                                                                 const GpuSamplingRow* __restrict__ rows,
                                                                 ArgMax* __restrict__ race, RowHist hist) {
  __shared__ uint32_t s_cnt[kBuckets];
  __shared__ unsigned long long s_mass[kBuckets];
  __shared__ float sv[32];
  __shared__ int si[32];
  __shared__ unsigned long long su[32];
  const int r = blockIdx.y, c = blockIdx.x;
  const GpuSamplingRow p = rows[r];
  float best_v;
  int best;
  row_argmax(part, r, C, best_v, best, sv, si);
  float inv_t = 1.f, top = 0.f;
  const int mode = row_mode(p, best_v, V, &inv_t, &top);
  if (mode == kGreedy || mode == kOverflow) return;
  const int chunk = ((V + C - 1) / C + 3) / 4 * 4;
  const int begin = c * chunk, end = min(V, begin + chunk);
  float* row = logits + int64_t(r) * V;
  const bool vec = V % 4 == 0;

  if (mode == kUnfiltered) {  // scale in place, min_p mask, race (Philox once per 4 tokens)
    float bs = -1.f;
    int bi = INT_MAX;
    for (int i = begin + 4 * int(threadIdx.x); i < end; i += 4 * kArgmaxThreads) {
      float x[4];
      load4(row, i, V, vec, x);
#pragma unroll
      for (int j = 0; j < 4; ++j) x[j] = __fmul_rn(x[j], inv_t);
      store4(row, i, V, vec, x);  // i < end ≤ V; past V nothing is stored
      const uint4 rnd = philox_group(p.seed, p.offset, i >> 2);
#pragma unroll
      for (int j = 0; j < 4; ++j) {
        const float w = weight_of(x[j], top);
        if (i + j >= V || !(w >= p.min_p) || !(w > 0.f)) continue;
        const float s = race_score(w, pick(rnd, j));
        if (better(s, i + j, bs, bi)) bs = s, bi = i + j;
      }
    }
    block_argmax(bs, bi, sv, si);
    if (threadIdx.x == 0) race[r * C + c] = ArgMax{bs, bi};
    return;
  }

  // Filtered: scale in place; bucket histogram of the candidates (count) and, for top_p alone, of
  // the unmasked mass (the CPU's hist_mass, which places the cut) and the total mass.
  const bool k_on = p.top_k > 0 && p.top_k < V;
  const float min_w = k_on ? 0.f : p.min_p;  // candidate filter; after top_k, min_p is applied at the end
  for (int b = threadIdx.x; b < kBuckets; b += kArgmaxThreads) s_cnt[b] = 0, s_mass[b] = 0;
  __syncthreads();
  unsigned long long total = 0, n_fin = 0;
  for (int i = begin + 4 * int(threadIdx.x); i < end; i += 4 * kArgmaxThreads) {
    float x[4];
    load4(row, i, V, vec, x);
#pragma unroll
    for (int j = 0; j < 4; ++j) x[j] = __fmul_rn(x[j], inv_t);
    store4(row, i, V, vec, x);
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      if (x[j] == kNegInf || i + j >= end) continue;
      const float w = weight_of(x[j], top);
      const int b = bucket_of(top, x[j]);
      // The last bucket is open-ended and needs no entry: the cut lands there exactly when the
      // buckets before it do not reach the target.
      if (w >= min_w) {
        ++n_fin;
        if (b < kBuckets - 1) atomicAdd(&s_cnt[b], 1u);
      }
      if (!k_on) {
        const unsigned long long f = fx_of(w);
        total += f;
        if (b < kBuckets - 1 && f) atomicAdd(&s_mass[b], f);
      }
    }
  }
  __syncthreads();
  for (int b = threadIdx.x; b < kBuckets; b += kArgmaxThreads) {
    if (s_cnt[b]) atomicAdd(&hist.cnt[r * kBuckets + b], s_cnt[b]);
    if (s_mass[b]) atomicAdd(&hist.mass[r * kBuckets + b], s_mass[b]);
  }
  total = block_sum_u64(total, su);
  n_fin = block_sum_u64(n_fin, su);
  if (threadIdx.x == 0) {
    if (total) atomicAdd(&hist.tot[2 * r], total);
    if (n_fin) atomicAdd(&hist.tot[2 * r + 1], n_fin);
  }
}

__global__ void __launch_bounds__(kRowThreads, 1)
    sample_kernel(float* __restrict__ logits, int V, int C, const ArgMax* __restrict__ part,
                  const GpuSamplingRow* __restrict__ rows, const ArgMax* __restrict__ race, RowHist hist,
                  int32_t* __restrict__ out, float* __restrict__ dbg_all) {
  extern __shared__ __align__(16) unsigned char smem_raw[];
  Smem& sm = *reinterpret_cast<Smem*>(smem_raw);
  uint64_t* buf_key = reinterpret_cast<uint64_t*>(smem_raw + kKeyOffset);
  float* buf_w = reinterpret_cast<float*>(buf_key + kCap);
  const int r = blockIdx.x;
  float* row = logits + int64_t(r) * V;
  float* dbg = dbg_all ? dbg_all + int64_t(r) * V : nullptr;
  const GpuSamplingRow p = rows[r];
  const bool vec = V % 4 == 0;

  float best_v;
  int best;
  row_argmax(part, r, C, best_v, best, sm.red_f, sm.red_i);
  float inv_t = 1.f, top = 0.f;
  const int mode = row_mode(p, best_v, V, &inv_t, &top);
  if (mode == kOverflow) {
    for (int i = 4 * threadIdx.x; i < V; i += 4 * kRowThreads) {
      float x[4];
      load4(row, i, V, vec, x);
#pragma unroll
      for (int k = 0; k < 4; ++k) x[k] = __fmul_rn(x[k], inv_t);
      store4(row, i, V, vec, x);
    }
  }
  if (mode == kGreedy || mode == kOverflow) {
    if (threadIdx.x == 0) out[r] = best;
    if (dbg)
      for (int i = threadIdx.x; i < V; i += kRowThreads) dbg[i] = i == best ? 1.f : 0.f;
    return;
  }

  const int k = p.top_k;
  const bool k_on = k > 0 && k < V, p_on = p.top_p < 1.f;
  const float min_p = p.min_p;

  if (mode == kUnfiltered) {  // the chunks' race winners (prepare_kernel scaled the row)
    float bs = -1.f;
    int bi = INT_MAX;
    for (int c = threadIdx.x; c < C; c += kRowThreads) {
      const ArgMax a = race[r * C + c];
      if (better(a.v, a.i, bs, bi)) bs = a.v, bi = a.i;
    }
    block_argmax(bs, bi, sm.red_f, sm.red_i);
    if (threadIdx.x == 0) out[r] = bi;
    if (dbg) {
      double sum = 0;
      for (int i = threadIdx.x; i < V; i += kRowThreads) {
        const float w = weight_of(row[i], top);
        if (w >= min_p && w > 0.f) sum += double(w);
      }
      sum = block_sum(sum, sm.red_d);
      for (int i = threadIdx.x; i < V; i += kRowThreads) {
        const float w = weight_of(row[i], top);
        dbg[i] = (w >= min_p && w > 0.f) ? float(double(w) / sum) : 0.f;
      }
    }
    return;
  }

  // ---- Filtered: the cut bucket from the row histogram (prepare_kernel).
  const float min_w = k_on ? 0.f : min_p;
  for (int b = threadIdx.x; b < kBuckets; b += kRowThreads)
    sm.hist_cnt[b] = hist.cnt[r * kBuckets + b], sm.hist_mass[b] = hist.mass[r * kBuckets + b];
  if (threadIdx.x == 0) sm.n_buf = 0;
  const double total = double(hist.tot[2 * r]);
  const unsigned long long n_fin = hist.tot[2 * r + 1];
  __syncthreads();
  if (threadIdx.x < 32) {
    double before = 0;
    const double target = k_on ? double(k) : double(p.top_p) * total;
    int cut = k_on ? warp_find(sm.hist_cnt, kBuckets, false, target, &before)
                   : warp_find(sm.hist_mass, kBuckets, false, target, &before);
    if (cut < 0) cut = kBuckets - 1;
    // Candidates in buckets ≤ cut.
    unsigned long long n = 0;
    for (int b = threadIdx.x; b <= cut && b < kBuckets - 1; b += 32) n += sm.hist_cnt[b];
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) n += __shfl_xor_sync(0xFFFFFFFFu, n, o);
    if (threadIdx.x == 0) sm.b_cut = cut, sm.b_ncand = int(umin(unsigned(cut == kBuckets - 1 ? n_fin : n), unsigned(INT_MAX)));
  }
  __syncthreads();
  const int cut = sm.b_cut, n_cand = sm.b_ncand;
  const RowSource rs{row, V, vec, top, cut, min_w};

  auto finish = [&](const auto& src) {
    const double target1 = k_on ? double(k) : double(p.top_p) * total;
    uint64_t t = radix_select(sm, src, 0, !k_on, target1);
    if (k_on && p_on) {  // top_p over the renormalised top-k set
      const double mass = mass_above(sm, src, t);
      t = radix_select(sm, src, t, true, double(p.top_p) * mass);
    }
    const int tok = draw(sm, src, t, min_p, p, dbg, V);
    if (threadIdx.x == 0) out[r] = tok;
  };

  if (n_cand <= kCap) {  // compact the candidates into shared memory (one read of the row)
    rs.each([&](uint64_t key, float w) {
      const int pos = atomicAdd(&sm.n_buf, 1);
      if (pos < kCap) buf_key[pos] = key, buf_w[pos] = w;
    });
    __syncthreads();
    finish(SmemSource{buf_key, buf_w, min(sm.n_buf, kCap)});
  } else {
    finish(rs);
  }
}

// Workspace: chunk maxima and race winners [R][kMaxChunks] each, then the row histograms.
size_t hist_offset(int R) { return (size_t(R) * kMaxChunks * sizeof(ArgMax) * 2 + 255) / 256 * 256; }
size_t hist_bytes(int R) { return size_t(R) * (kBuckets * (4 + 8) + 16); }

void sample_impl(float* logits, int R, int V, const GpuSamplingRow* rows, const PenaltyEntry* penalties, int32_t* out,
                 float* dbg, void* workspace, size_t workspace_bytes, cudaStream_t stream) {
  if (R <= 0) return;
  if (V <= 0) {  // the CPU sampler returns 0 for an empty vocabulary
    GDN_CUDA_CHECK(cudaMemsetAsync(out, 0, size_t(R) * sizeof(int32_t), stream));
    return;
  }
  const int sms = device_info().sm_count;
  int C = std::clamp((2 * sms + R - 1) / R, 1, kMaxChunks);
  C = std::min(C, std::max(1, (V + 1023) / 1024));  // at least ~1K tokens per chunk
  const size_t need = hist_offset(R) + hist_bytes(R);
  if (workspace_bytes < need || !workspace)
    throw CudaError("sample_tokens: workspace of " + std::to_string(workspace_bytes) + " bytes, " +
                    std::to_string(need) + " needed for " + std::to_string(R) + " rows (sampling_workspace_bytes)");
  auto* part = static_cast<ArgMax*>(workspace);
  ArgMax* race = part + size_t(R) * kMaxChunks;
  auto* hb = static_cast<uint8_t*>(workspace) + hist_offset(R);
  RowHist hist;
  hist.mass = reinterpret_cast<unsigned long long*>(hb);
  hist.tot = hist.mass + size_t(R) * kBuckets;
  hist.cnt = reinterpret_cast<uint32_t*>(hist.tot + size_t(R) * 2);
  GDN_CUDA_CHECK(cudaMemsetAsync(hb, 0, hist_bytes(R), stream));
  penalty_kernel<<<R, 128, 0, stream>>>(logits, V, rows, penalties);
  GDN_CUDA_CHECK_LAUNCH();
  const dim3 grid{unsigned(C), unsigned(R), 1u};
  argmax_partial_kernel<<<grid, kArgmaxThreads, 0, stream>>>(logits, V, C, part);
  GDN_CUDA_CHECK_LAUNCH();
  prepare_kernel<<<grid, kArgmaxThreads, 0, stream>>>(logits, V, C, part, rows, race, hist);
  GDN_CUDA_CHECK_LAUNCH();
  GDN_CUDA_CHECK(cudaFuncSetAttribute(sample_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(kSmemBytes)));
  sample_kernel<<<R, kRowThreads, kSmemBytes, stream>>>(logits, V, C, part, rows, race, hist, out, dbg);
  GDN_CUDA_CHECK_LAUNCH();
}

}  // namespace

size_t sampling_workspace_bytes(int max_rows, int vocab) {
  (void)vocab;
  const int R = std::max(max_rows, 1);
  return hist_offset(R) + hist_bytes(R);
}

void sample_tokens(float* logits, int R, int V, const GpuSamplingRow* rows, const PenaltyEntry* penalties, int32_t* out,
                   void* workspace, size_t workspace_bytes, cudaStream_t stream) {
  sample_impl(logits, R, V, rows, penalties, out, nullptr, workspace, workspace_bytes, stream);
}

void sampling_kept_probs(float* logits, int R, int V, const GpuSamplingRow* rows, const PenaltyEntry* penalties,
                         int32_t* out, float* probs, void* workspace, size_t workspace_bytes, cudaStream_t stream) {
  sample_impl(logits, R, V, rows, penalties, out, probs, workspace, workspace_bytes, stream);
}

}  // namespace gdn::cuda
