// Small-M linear kernels (decode, M ≤ 64 tokens per launch): stream the weight once at memory
// bandwidth and do the math on tensor cores with mma.sync. Two schedules share the per-K-group
// math (compute_group, linear_smallm_math.cuh): the persistent stream-K kernel described here, and
// the decode kernel of linear_decode.cu (M ≤ 8, and narrow NVFP4 weights up to 16).
//
// Roofline: at M ≤ 16 a layer is pure weight streaming (≤ 32 FLOP per weight byte, far below the
// tensor cores' ~300 FLOP/B), so the design goal is bytes in flight and no idle SM:
//  * persistent "stream-K" schedule: exactly as many warps as fit on the GPU at once, each taking an
//    equal contiguous share of the flattened (row tile, 128-byte K group) iteration space, so there
//    is no wave quantization and no SM idles at the tail; a warp crossing a row-tile boundary
//    flushes that tile's partial sums;
//  * each thread streams its own 16-byte pieces of two rows (g, g+8) into a private, thread-
//    interleaved shared-memory ring with cp.async (L1 bypassed, 2-3 groups in flight), so it needs
//    no barrier: it only ever reads what it copied itself;
//  * "swap AB": the weight is the MMA's A operand (16 rows), tokens are its n = 8 columns, so M = 1
//    wastes MMA issue slots, never bandwidth; a quad reads 64 contiguous bytes of a row per chunk;
//  * K order inside a chunk is permuted consistently for A and B (a dot product does not care), so
//    both fragments come straight from the 16-byte pieces with no shuffles;
//  * a row tile split between warps is reduced by the last warp to finish it (per-tile counter,
//    partials summed in warp order: deterministic, no atomics on y; the counter is reset by it).
// FP8×FP8 uses m16n8k32 E4M3 with the tensor-core accumulator promoted every 128 K into FP32
// registers (where the 128×128 block scales are applied; Hopper's FP8 MMA accumulates with reduced
// internal precision, so long K never stays inside it).
// NVFP4: no FP4 tensor cores on Hopper. E2M1 nibbles and the E4M3 block scale are decoded in
// registers into BF16 (the product e2m1·s has ≤ 6 significant bits: exact in BF16), then BF16
// m16n8k16; the global scales (and 2⁸ of the decode) are one FP32 multiply in the epilogue.
#include <cuda_bf16.h>

#include <algorithm>
#include <cstdlib>

#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/device.h"
#include "kernels/cuda/fp_codecs.cuh"
#include "kernels/cuda/launch_pdl.h"
#include "kernels/cuda/linear_internal.h"
#include "kernels/cuda/linear_smallm_math.cuh"

namespace gdn::cuda::detail {

namespace {

constexpr int kWarps = 4;  // warps per CTA (the schedule is per warp; CTAs only package them)

// Shared-memory ring geometry: per thread and stage, MT·4 weight pieces (+ one for NVFP4 scales).
template <SmFmt F, int MT>
constexpr int kSlot = MT * 4 + (F == SmFmt::Nvfp4 ? 1 : 0);
// 3 (4) stages keep ≥ 8 KB per warp in flight while 4 (5-6) CTAs fit per SM: more warps hide the
// per-instruction latencies that limited a deeper ring at 3 CTAs per SM (Nsight Compute, H100).
template <int MT>
constexpr int kStages = MT == 2 ? 3 : 4;
template <SmFmt F, int MT>
constexpr size_t ring_bytes() {
  return size_t(kStages<MT>) * kSlot<F, MT> * 16 * kWarps * 32;
}

__device__ __forceinline__ void cp_async16(uint32_t saddr, const void* gmem) {
  asm volatile("cp.async.cg.shared.global.L2::256B [%0], [%1], 16;" ::"r"(saddr), "l"(gmem) : "memory");
}
__device__ __forceinline__ void cp_async4(uint32_t saddr, const void* gmem) {
  asm volatile("cp.async.ca.shared.global [%0], [%1], 4;" ::"r"(saddr), "l"(gmem) : "memory");
}
__device__ __forceinline__ void cp_commit() { asm volatile("cp.async.commit_group;" ::: "memory"); }
template <int N>
__device__ __forceinline__ void cp_wait() {
  asm volatile("cp.async.wait_group %0;" ::"n"(N) : "memory");
}

// First iteration of warp w, and the warp owning iteration i (ranges [w·I/W, (w+1)·I/W), W ≤ I).
__device__ __forceinline__ int64_t range_start(int64_t w, int64_t I, int64_t W) { return w * I / W; }
__device__ __forceinline__ int64_t owner(int64_t i, int64_t I, int64_t W) { return ((i + 1) * W - 1) / I; }

template <SmFmt F, int MT, int NT>
__global__ void __launch_bounds__(kWarps * 32) small_m_kernel(const SmallMParams p) {
  constexpr int SLOT = kSlot<F, MT>, ST = kStages<MT>, ACC = MT * NT * 4, T = kWarps * 32;
  extern __shared__ uint4 ring[];  // [stage][piece][thread]: consecutive threads, consecutive 16 bytes
  const int lane = threadIdx.x & 31, gq = lane >> 2, tq = lane & 3;
  const int gw = blockIdx.x * kWarps + (threadIdx.x >> 5);
  if (gw >= p.warps) return;
  const int64_t I = int64_t(p.rtiles) * p.KG, W = p.warps;
  const int i0 = int(range_start(gw, I, W)), i1 = int(range_start(gw + 1, I, W));

  // Producer: row pointers of the tile being issued, advanced by one group per iteration (address
  // arithmetic off the per-iteration path), and this thread's shared address of stage 0, piece 0.
  constexpr uint32_t kPiece = T * 16, kStage = SLOT * T * 16;
  const uint32_t sbase = static_cast<uint32_t>(__cvta_generic_to_shared(ring)) + threadIdx.x * 16;
  int n_i = i0, n_g = i0 % p.KG, n_tile = i0 / p.KG;
  uint32_t n_soff = 0;
  const uint8_t* nrow[MT][2];
  const uint8_t* nsc[MT][2];
  auto set_rows = [&]() {
#pragma unroll
    for (int mt = 0; mt < MT; ++mt)
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        const int64_t r = int64_t(n_tile) * 16 * MT + mt * 16 + h * 8 + gq;
        nrow[mt][h] = p.w + r * p.ldw + int64_t(n_g) * kGroupBytes + 16 * tq;
        nsc[mt][h] = F == SmFmt::Nvfp4 ? p.nvfp4_scales + r * p.ld_bs + n_g * 16 + 4 * tq : nullptr;
      }
  };
  set_rows();
  auto issue = [&]() {
    if (n_i < i1) {
#pragma unroll
      for (int mt = 0; mt < MT; ++mt)
#pragma unroll
        for (int h = 0; h < 2; ++h) {
          const uint32_t d = sbase + n_soff + (mt * 2 + h) * 2 * kPiece;
          cp_async16(d, nrow[mt][h]);
          cp_async16(d + kPiece, nrow[mt][h] + 64);
          if constexpr (F == SmFmt::Nvfp4) cp_async4(sbase + n_soff + MT * 4 * kPiece + 4 * (mt * 2 + h), nsc[mt][h]);
        }
    }
    cp_commit();  // empty groups past the range keep the wait_group arithmetic uniform
    ++n_i;
    if (++n_g == p.KG) {
      n_g = 0, ++n_tile;
      set_rows();
    } else {
#pragma unroll
      for (int mt = 0; mt < MT; ++mt)
#pragma unroll
        for (int h = 0; h < 2; ++h) {
          nrow[mt][h] += kGroupBytes;
          if constexpr (F == SmFmt::Nvfp4) nsc[mt][h] += 16;
        }
    }
    n_soff = n_soff + kStage == ST * kStage ? 0 : n_soff + kStage;
  };

  // Activation row pointers (NT ≤ 2: the tokens of this thread's B fragments).
  const uint8_t* xrow[NT <= 2 ? NT : 1];
#pragma unroll
  for (int nt = 0; nt < (NT <= 2 ? NT : 1); ++nt) xrow[nt] = act_row<F>(p, nt * 8 + gq, tq);

#pragma unroll
  for (int s = 0; s < ST - 1; ++s) issue();
  griddep_wait();  // weights are in flight; activations come from the preceding pre-kernel
  griddep_launch_dependents();  // the next kernel may launch and wait for us (PDL)

  float acc[MT][NT][4];
#pragma unroll
  for (int mt = 0; mt < MT; ++mt)
#pragma unroll
    for (int nt = 0; nt < NT; ++nt)
#pragma unroll
      for (int i = 0; i < 4; ++i) acc[mt][nt][i] = 0.f;

  int tile = i0 / p.KG, g = i0 % p.KG, s = 0, seg = i0;
  for (int i = i0; i < i1; ++i) {
    cp_wait<ST - 2>();  // this thread's copies for iteration i have landed
    issue();            // refill the stage consumed one iteration ago
    ActPre<F, NT> pre;
    preload_acts<F, NT>(pre, xrow, g);
    WFrag<MT> f;
    const uint4* sp = ring + s * SLOT * T + threadIdx.x;
#pragma unroll
    for (int mt = 0; mt < MT; ++mt)
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        f.w[mt][h][0] = sp[((mt * 2 + h) * 2) * T];
        f.w[mt][h][1] = sp[((mt * 2 + h) * 2 + 1) * T];
        if constexpr (F == SmFmt::Nvfp4) f.sc[mt][h] = word(sp[MT * 4 * T], mt * 2 + h);
      }
    compute_group<F, MT, NT>(f, pre, p, tile * 16 * MT, g, gq, tq, acc);
    if (++s == ST) s = 0;

    if (g + 1 == p.KG || i + 1 == i1) {  // end of this warp's segment of the row tile
      float v[ACC];
#pragma unroll
      for (int mt = 0; mt < MT; ++mt)
#pragma unroll
        for (int nt = 0; nt < NT; ++nt)
#pragma unroll
          for (int c = 0; c < 4; ++c) v[(mt * NT + nt) * 4 + c] = acc[mt][nt][c], acc[mt][nt][c] = 0.f;
      const int row0 = tile * 16 * MT;
      if (i + 1 - seg == p.KG) {
        store_y<F, MT, NT>(p, v, row0, gq, tq);  // the whole tile: no partials
      } else {
        // Partial tile: slot 0 holds a warp's first segment, slot 1 its last one.
        float* mine = p.partial + (int64_t(gw) * 2 + (seg == i0 ? 0 : 1)) * ACC * 32;
#pragma unroll
        for (int e = 0; e < ACC; ++e) mine[e * 32 + lane] = v[e];
        __threadfence();
        __syncwarp();
        const int64_t t0 = int64_t(tile) * p.KG;
        const int64_t wf = owner(t0, I, W), wl = owner(t0 + p.KG - 1, I, W);
        int last = 0;
        if (lane == 0) last = atomicAdd(p.counters + tile, 1) == int(wl - wf);
        if (__shfl_sync(0xffffffffu, last, 0)) {
          __threadfence();
#pragma unroll
          for (int e = 0; e < ACC; ++e) v[e] = 0.f;
          // Fixed order (deterministic sums); four contributors' loads in flight at a time.
          for (int64_t c0 = wf; c0 <= wl; c0 += 4) {
            float part[4][ACC];
#pragma unroll
            for (int u = 0; u < 4; ++u) {
              const int64_t c = c0 + u;
              const float* src = p.partial + (c * 2 + (range_start(c, I, W) >= t0 ? 0 : 1)) * ACC * 32;
#pragma unroll
              for (int e = 0; e < ACC; ++e) part[u][e] = c <= wl ? __ldcg(src + e * 32 + lane) : 0.f;
            }
#pragma unroll
            for (int u = 0; u < 4; ++u)
#pragma unroll
              for (int e = 0; e < ACC; ++e) v[e] += part[u][e];
          }
          store_y<F, MT, NT>(p, v, row0, gq, tq);
          if (lane == 0) p.counters[tile] = 0;
        }
      }
      seg = i + 1;
    }
    if (++g == p.KG) g = 0, ++tile;
  }
  cp_wait<0>();
}

template <SmFmt F, int MT, int NT>
struct Instance {
  static constexpr size_t smem = ring_bytes<F, MT>();
  // CTAs of this instance resident per SM (registers and shared memory), asked once.
  static int occupancy() {
    static const int occ = [] {
      GDN_CUDA_CHECK(cudaFuncSetAttribute(small_m_kernel<F, MT, NT>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                          int(smem)));
      int n = 0;
      GDN_CUDA_CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&n, small_m_kernel<F, MT, NT>, kWarps * 32, smem));
      return std::max(n, 1);
    }();
    return occ;
  }
  static void launch(const SmallMPlan& plan, const SmallMParams& p, cudaStream_t s, bool pdl) {
    launch_pdl(small_m_kernel<F, MT, NT>, dim3(unsigned(plan.blocks)), dim3(unsigned(plan.threads)), plan.smem, s, pdl, p);
  }
};

// Calls fn.template operator()<Instance<F, MT, NT>>() for the instance of (f, MT, NT).
template <typename Fn>
void with_instance(SmFmt f, int MT, int NT, Fn&& fn) {
  auto by_fmt = [&](auto fmt_tag) {
    constexpr SmFmt F = decltype(fmt_tag)::value;
    if (MT == 2 && NT == 1) return fn(Instance<F, 2, 1>{});
    if (MT == 2 && NT == 2) return fn(Instance<F, 2, 2>{});
    if (MT == 1 && NT == 1) return fn(Instance<F, 1, 1>{});
    if (MT == 1 && NT == 2) return fn(Instance<F, 1, 2>{});
    if (MT == 1 && NT == 4) return fn(Instance<F, 1, 4>{});
    if (MT == 1 && NT == 8) return fn(Instance<F, 1, 8>{});
    throw CudaError("small-M kernel: no instance for this tile shape");
  };
  return with_fmt(f, by_fmt);
}

}  // namespace

SmallMPlan plan_small_m(const DeviceLinear& w, int M) {
  if (use_decode_kernel(w, M)) return plan_decode(w, M);
  SmallMPlan pl;
  pl.NT = M <= 8 ? 1 : M <= 16 ? 2 : M <= 32 ? 4 : 8;
  // 32-row tiles halve the activation reads per weight byte; 16-row tiles when 32-row ones would be
  // too few to spread over the GPU without splitting every tile many ways (k/v_proj, N = 1024).
  pl.MT = pl.NT <= 2 && w.rows_pad / 32 >= 2 * device_info().sm_count ? 2 : 1;
  pl.rtiles = int(w.rows_pad / (16 * pl.MT));
  pl.KG = k_groups(w);
  pl.threads = kWarps * 32;
  with_instance(small_fmt(w), pl.MT, pl.NT, [&](auto inst) {
    using Inst = decltype(inst);
    pl.smem = Inst::smem;
    const int64_t capacity = int64_t(device_info().sm_count) * Inst::occupancy() * kWarps;
    // At most ~8 warps share a row tile: the warp finishing it sums the others' partials serially.
    const int64_t cap = std::min<int64_t>(capacity, int64_t(pl.rtiles) * std::min(pl.KG, 8));
    pl.warps = int(std::max<int64_t>(1, std::min<int64_t>(cap, int64_t(pl.rtiles) * pl.KG)));
  });
  pl.blocks = (pl.warps + kWarps - 1) / kWarps;
  return pl;
}

size_t small_m_partial_bytes(const DeviceLinear& w, int M) {
  const SmallMPlan pl = plan_small_m(w, M);
  if (pl.ksplit > 0)  // decode kernel: one slot per (row tile, split) when K is split
    return pl.ksplit > 1 ? size_t(pl.rtiles) * size_t(pl.ksplit) * size_t(pl.MT * pl.NT * 4) * 32 * 4 : 0;
  return size_t(pl.warps) * 2 * size_t(pl.MT * pl.NT * 4) * 32 * 4;
}

void launch_small_m(SmFmt f, const SmallMPlan& plan, const SmallMParams& p, cudaStream_t s, bool pdl) {
  if (plan.ksplit > 0) return launch_decode(f, plan, p, s, pdl);
  if (plan.rtiles > kMaxCounters) throw CudaError("small-M kernel: more row tiles than split-K counters");
  with_instance(f, plan.MT, plan.NT, [&](auto inst) { decltype(inst)::launch(plan, p, s, pdl); });
}

}  // namespace gdn::cuda::detail
