// Decode kernel (M ≤ 16 where use_decode_kernel picks it): one CTA per (row tile, K split) work
// unit, launched as an ordinary (non-persistent) grid of many short CTAs, so the hardware block
// scheduler balances the load: SMs the memory system serves faster simply run more units. (The
// persistent static stream-K split of linear_smallm.cu leaves every warp only ~10 fixed groups at
// the 27B shapes, so uneven service across warps decides its end.)
// Measured on H100 (M = 1): FP8 gate|up 51.5 → 47.5 µs, NVFP4 41.5 → 37.2 µs, BF16 81 → 70 µs.
// Each CTA waits once for its first weights from DRAM (Nsight Compute: ~40% of the NVFP4 gate|up
// stall samples at M = 1, 5 groups per warp). Tried and slower or no better on H100: one resident
// wave of CTAs taking units b, b + G, ... with the register ring streaming the next unit during the
// current one (NVFP4 gate|up 34.1 → 35.3 µs; the bookkeeping cost what the hidden latency saved);
// each chunk's activations loaded one chunk ahead (within noise).
//  * the unit's 128-byte K groups are split between the CTA's warps (contiguous ranges); every
//    thread keeps R groups of its own 16-byte pieces in flight in registers with
//    ld.global.nc.L1::no_allocate (no shared-memory ring, no cp.async bookkeeping), so shared
//    memory stays free and L1 caches the activations every unit re-reads;
//  * warps reduce through shared memory in warp order; a unit covering the whole K stores y,
//    split units write their sum to a per-(tile, split) slot and the last of a tile's splits
//    (per-tile counter) adds the slots in split order: deterministic, no atomics on y.
// The MMA work per K group is compute_group (linear_smallm_math.cuh): identical operands and FP8
// promotion to the stream-K kernel. FP8 at M ≤ 8 normally takes the wgmma kernel instead
// (linear_wgmma.cu): sm_90 has no mma.sync for E4M3 (ptxas lowers it to conversions + HMMA).
#include <cuda_bf16.h>

#include <algorithm>
#include <cstdlib>

#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/device.h"
#include "kernels/cuda/launch_pdl.h"
#include "kernels/cuda/linear_internal.h"
#include "kernels/cuda/linear_smallm_math.cuh"

namespace gdn::cuda::detail {

namespace {

constexpr int kDecWarps = 4;
template <int MT>
constexpr int kRegStages = MT == 1 ? 4 : 2;  // 8 KB of weights in flight per warp either way
// Activations of a whole K group preloaded (FP8: 1 word per k-step) or per chunk (BF16 operands:
// 4× the words; preloading them all would cost occupancy).
template <SmFmt F>
constexpr bool kDecPreAct = F == SmFmt::Fp8Fp8;

__device__ __forceinline__ uint4 ldg_stream(const uint8_t* p) {
  uint4 v;
  asm volatile("ld.global.nc.L1::no_allocate.L2::256B.v4.u32 {%0,%1,%2,%3}, [%4];"
               : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w)
               : "l"(p));
  return v;
}
__device__ __forceinline__ uint32_t ldg_stream32(const uint8_t* p) {
  uint32_t v;
  asm volatile("ld.global.nc.L1::no_allocate.u32 %0, [%1];" : "=r"(v) : "l"(p));
  return v;
}

template <SmFmt F, int MT, int NT>
__global__ void __launch_bounds__(kDecWarps * 32, 3) decode_kernel(const SmallMParams p) {
  constexpr int R = kRegStages<MT>, ACC = MT * NT * 4;
  __shared__ float red[kDecWarps - 1][ACC][32];
  const int lane = threadIdx.x & 31, gq = lane >> 2, tq = lane & 3, wid = threadIdx.x >> 5;
  const int S = p.ksplit, tile = int(blockIdx.x) / S, split = int(blockIdx.x) - tile * S;
  const int u0 = int(int64_t(split) * p.KG / S), u1 = int(int64_t(split + 1) * p.KG / S);
  const int g0 = u0 + (u1 - u0) * wid / kDecWarps, n = u0 + (u1 - u0) * (wid + 1) / kDecWarps - g0;
  const int row0 = tile * 16 * MT;

  const uint8_t* wrow[MT][2];
  const uint8_t* srow[MT][2];
#pragma unroll
  for (int mt = 0; mt < MT; ++mt)
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      const int64_t r = int64_t(row0) + mt * 16 + h * 8 + gq;
      wrow[mt][h] = p.w + r * p.ldw + int64_t(g0) * kGroupBytes + 16 * tq;
      srow[mt][h] = F == SmFmt::Nvfp4 ? p.nvfp4_scales + r * p.ld_bs + int64_t(g0) * 16 + 4 * tq : nullptr;
    }
  WFrag<MT> buf[R];
  auto load = [&](WFrag<MT>& f, int j) {
    if (j < n) {
#pragma unroll
      for (int mt = 0; mt < MT; ++mt)
#pragma unroll
        for (int h = 0; h < 2; ++h) {
          f.w[mt][h][0] = ldg_stream(wrow[mt][h] + j * kGroupBytes);
          f.w[mt][h][1] = ldg_stream(wrow[mt][h] + j * kGroupBytes + 64);
          if constexpr (F == SmFmt::Nvfp4) f.sc[mt][h] = ldg_stream32(srow[mt][h] + j * 16);
        }
    }
  };
#pragma unroll
  for (int s = 0; s < R; ++s) load(buf[s], s);
  griddep_wait();  // weights are in flight; activations come from the preceding pre-kernel
  griddep_launch_dependents();  // the next kernel may launch and wait for us (PDL)

  const uint8_t* xrow[NT];
#pragma unroll
  for (int nt = 0; nt < NT; ++nt) xrow[nt] = act_row<F>(p, nt * 8 + gq, tq);
  float acc[MT][NT][4];
#pragma unroll
  for (int mt = 0; mt < MT; ++mt)
#pragma unroll
    for (int nt = 0; nt < NT; ++nt)
#pragma unroll
      for (int i = 0; i < 4; ++i) acc[mt][nt][i] = 0.f;

  for (int j0 = 0; j0 < n; j0 += R) {
#pragma unroll
    for (int s = 0; s < R; ++s) {
      const int j = j0 + s;
      if (j < n) {
        ActPre<F, NT> pre;
        if constexpr (kDecPreAct<F>) preload_acts<F, NT>(pre, xrow, g0 + j);
        const WFrag<MT> f = buf[s];
        load(buf[s], j + R);  // refill this stage before the math: R groups stay in flight
        compute_group<F, MT, NT, kDecPreAct<F>>(f, pre, p, row0, g0 + j, gq, tq, acc);
      }
    }
  }

  // Warps 1.. hand their sums to warp 0, which adds them in warp order.
  if (wid > 0) {
#pragma unroll
    for (int mt = 0; mt < MT; ++mt)
#pragma unroll
      for (int nt = 0; nt < NT; ++nt)
#pragma unroll
        for (int c = 0; c < 4; ++c) red[wid - 1][(mt * NT + nt) * 4 + c][lane] = acc[mt][nt][c];
  }
  __syncthreads();
  if (wid != 0) return;
  float v[ACC];
#pragma unroll
  for (int mt = 0; mt < MT; ++mt)
#pragma unroll
    for (int nt = 0; nt < NT; ++nt)
#pragma unroll
      for (int c = 0; c < 4; ++c) {
        const int e = (mt * NT + nt) * 4 + c;
        float t = acc[mt][nt][c];
#pragma unroll
        for (int w = 0; w < kDecWarps - 1; ++w) t += red[w][e][lane];
        v[e] = t;
      }
  if (S == 1) {
    store_y<F, MT, NT>(p, v, row0, gq, tq);
    return;
  }
  float* slots = p.partial + int64_t(tile) * S * ACC * 32;
#pragma unroll
  for (int e = 0; e < ACC; ++e) slots[(int64_t(split) * ACC + e) * 32 + lane] = v[e];
  __threadfence();
  __syncwarp();
  int last = 0;
  if (lane == 0) last = atomicAdd(p.counters + tile, 1) == S - 1;
  if (!__shfl_sync(0xffffffffu, last, 0)) return;
  __threadfence();
#pragma unroll
  for (int e = 0; e < ACC; ++e) v[e] = 0.f;
  for (int s0 = 0; s0 < S; s0 += 4) {  // split order (deterministic); four slots' loads in flight
    float part[4][ACC];
#pragma unroll
    for (int u = 0; u < 4; ++u)
#pragma unroll
      for (int e = 0; e < ACC; ++e) part[u][e] = s0 + u < S ? __ldcg(slots + (int64_t(s0 + u) * ACC + e) * 32 + lane) : 0.f;
#pragma unroll
    for (int u = 0; u < 4; ++u)
#pragma unroll
      for (int e = 0; e < ACC; ++e) v[e] += part[u][e];
  }
  store_y<F, MT, NT>(p, v, row0, gq, tq);
  if (lane == 0) p.counters[tile] = 0;
}

template <SmFmt F, int MT, int NT>
struct DecodeInstance {
  // CTAs of this instance resident per SM, asked once (shared memory is left to L1).
  static int occupancy() {
    static const int occ = [] {
      GDN_CUDA_CHECK(cudaFuncSetAttribute(decode_kernel<F, MT, NT>, cudaFuncAttributePreferredSharedMemoryCarveout,
                                          int(cudaSharedmemCarveoutMaxL1)));
      int n = 0;
      GDN_CUDA_CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&n, decode_kernel<F, MT, NT>, kDecWarps * 32, 0));
      return std::max(n, 1);
    }();
    return occ;
  }
  static void launch(const SmallMPlan& plan, const SmallMParams& p, cudaStream_t s, bool pdl) {
    launch_pdl(decode_kernel<F, MT, NT>, dim3(unsigned(plan.blocks)), dim3(unsigned(plan.threads)), 0, s, pdl, p);
  }
};

// Calls fn(DecodeInstance<F, MT, NT>{}) for the decode instance of (f, MT = 1, NT ≤ 2).
template <typename Fn>
void with_decode_instance(SmFmt f, int MT, int NT, Fn&& fn) {
  auto by_fmt = [&](auto fmt_tag) {
    constexpr SmFmt F = decltype(fmt_tag)::value;
    if (MT == 1 && NT == 1) return fn(DecodeInstance<F, 1, 1>{});
    if (MT == 1 && NT == 2) return fn(DecodeInstance<F, 1, 2>{});
    throw CudaError("small-M decode kernel: no instance for this tile shape");
  };
  return with_fmt(f, by_fmt);
}

}  // namespace

// Where the decode kernel beat the stream-K one on H100 (bench_gemm, gate|up and k|v_proj):
// M ≤ 8 (1.0-1.3× faster, NVFP4 k|v_proj 1.3-1.5×); at 9-16 tokens only NVFP4 weights too narrow
// for the stream-K kernel's 32-row tiles (k|v_proj: 1.5×); wide weights at 9-16 tokens were
// 1.15-1.45× slower with 16-row tiles (FP8 emulated MMA converts each A fragment once per token
// tile; NVFP4's BF16 activations re-read per 16 rows), so they stay on the stream-K kernel.
// GDN_SMALLM_PERSISTENT forces the stream-K kernel at every M (A/B measurements).
bool use_decode_kernel(const DeviceLinear& w, int M) {
  static const bool persistent = std::getenv("GDN_SMALLM_PERSISTENT") != nullptr;
  if (persistent || M > 16) return false;
  if (M <= 8) return true;
  return w.kind == DeviceWeightKind::Nvfp4 && w.rows_pad / 32 < 2 * device_info().sm_count;
}

SmallMPlan plan_decode(const DeviceLinear& w, int M) {
  SmallMPlan pl;
  const int sms = device_info().sm_count;
  pl.NT = M <= 8 ? 1 : 2;
  // 16-row tiles: small units balance well, and the activations they re-read hit in L1 (shared
  // memory is not used). 32-row tiles spilled registers for the BF16-operand formats.
  pl.MT = 1;
  pl.rtiles = int(w.rows_pad / (16 * pl.MT));
  pl.KG = k_groups(w);
  pl.threads = kDecWarps * 32;
  pl.smem = 0;
  int occ = 1;
  with_decode_instance(small_fmt(w), pl.MT, pl.NT, [&](auto inst) { occ = decltype(inst)::occupancy(); });
  // At least two waves of units, so the block scheduler can even out the SMs' progress; K splits
  // only as far as every warp keeps ≥ 1 group, and ≤ 16 (the last split sums them serially).
  const int64_t want = 2 * int64_t(sms) * occ;
  const int64_t max_split = std::max<int64_t>(1, std::min<int64_t>(16, pl.KG / kDecWarps));
  pl.ksplit = int(std::clamp<int64_t>((want + pl.rtiles - 1) / pl.rtiles, 1, max_split));
  pl.blocks = pl.rtiles * pl.ksplit;
  pl.warps = pl.blocks * kDecWarps;
  return pl;
}

void launch_decode(SmFmt f, const SmallMPlan& plan, const SmallMParams& p, cudaStream_t s, bool pdl) {
  if (plan.rtiles > kMaxCounters && plan.ksplit != 1)
    throw CudaError("small-M decode kernel: more row tiles than split-K counters");
  with_decode_instance(f, plan.MT, plan.NT, [&](auto inst) { decltype(inst)::launch(plan, p, s, pdl); });
}

}  // namespace gdn::cuda::detail
