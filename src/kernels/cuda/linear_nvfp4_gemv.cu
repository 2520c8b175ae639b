// NVFP4 GEMV for 1-3 tokens (decode) on Hopper: the weight stream of linear_nvfp4_wgmma.cu's raw
// ring, the register decode and mma.sync of the decode kernel (linear_decode.cu).
//
// Why a third NVFP4 small-M kernel: at M = 1 the decode kernel streamed the 27B weights at 39-49% of
// the copy bandwidth (bench_gemm, H100). Each of its short CTAs keeps its own weights in flight in
// registers and pays a full DRAM wait when it starts, and again before its last groups. The wgmma
// kernel streams continuously, but at N = 8 its decoded-tile round trip through shared memory and
// the hand-off between decode and MMA warpgroups cost as much.
//
// Here the producer is one TMA thread per CTA. It fills a ring of stages: codes [64 rows × 128 B]
// with the 128-byte swizzle, block scales [64 × 16 B] and the group's activations [M tokens ×
// 512 B]. The first stages' weights go out before the PDL wait, since weights never depend on the
// preceding kernel; activations only after it. (Activations read from global memory instead held
// every MMA on an L1/L2 round trip: 21% of the stall samples, Nsight Compute, H100.)
//
// The grid is one wave of stream-K segments over (64-row tile, 256-element K group), like the
// wgmma kernel: two CTAs per SM with 8-stage rings (88 KB each). H100, batch-1 NVFP4 decode step
// (one consumer quad): 10.00 ms; 6 stages × 3 CTAs 10.25, 4 × 4 10.28 (the 27B GEMVs alone within
// ±1 µs of each other: with less shared memory taken, the next kernel's CTAs become resident
// earlier). With two quads 8 stages stay best (6: 10.67 ms against 9.84).
//
// Two quads of four consumer warps take alternate stages (one quad per CTA: 10.00 ms per H100
// NVFP4 batch-1 step, two: 9.84; three, later with producer-quantized activations: 9.38 where two
// had given 9.14-9.22). Within a quad each warp takes 16 rows of the stage. The warps'
// fragments are exactly the decode kernel's (compute_group in linear_smallm_math.cuh):
//  * row pair (g, g+8);
//  * code units tq and tq+4 of each row;
//  * the scale word at 4·tq;
//  * MMA j pairs with the activations' BF16 words 2j, 2j+1.
// The row of lane group g is (g >> 1) | ((g & 1) << 2). With the swizzle (unit ^ row % 8), each
// 8-lane phase then reads two rows whose units fall in different 64-byte halves, so the 16-byte
// loads are conflict-free.
//
// The MMA's 8 columns are tokens: lanes g < M read token g, the others token 0. Only columns < M
// are stored. Each thread keeps four accumulators (chunk × MMA parity), so the 16 MMAs of a stage
// form four independent chains.
#include <cuda.h>
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdlib>
#include <type_traits>

#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/device.h"
#include "kernels/cuda/fp_codecs.cuh"
#include "kernels/cuda/launch_pdl.h"
#include "kernels/cuda/linear_internal.h"
#include "kernels/cuda/linear_smallm_math.cuh"
#include "kernels/cuda/wgmma_ptx.cuh"

namespace gdn::cuda::detail {

namespace {

constexpr int kWarps = 4;                      // consumer warps of a stage, 16 rows of the tile each
constexpr int kQuads = 2;                      // consumer quads, taking alternate stages
constexpr int kConsumers = kWarps * 32;        // one quad == kWgConsumers: wg_consumer_bar() syncs it
constexpr int kThreads = kQuads * kConsumers + 32;  // + the TMA warp
constexpr int kCodeBytes = kWgRows * 128;      // codes of one K group (256 elements) of a tile
constexpr int kScaleBytes = kWgRows * 16;      // its block scales
constexpr int kMaxTok = 4;                     // activation rows per stage (the TMA box has M of them)
// Activations of one K group: four [kMaxTok × 128 B] boxes (64 elements each), packed (TMA boxes
// start 128-byte aligned; lanes tq and tq + 2 meet in one bank: 2-way, on 8 of 14 loads per stage).
constexpr int kXBoxStride = kMaxTok * 128;
constexpr int kXStage = 4 * kXBoxStride;
template <int kStages>
constexpr size_t kSmemBytes = size_t(kStages) * (kCodeBytes + kScaleBytes + kXStage) + 24 * kStages + 1024;
constexpr int kAcc = 4;                        // one m16n8 D fragment per thread
static_assert(kConsumers == kWgConsumers, "split-K finish and the named barrier assume 128 threads per quad");

// Both quads (bar 2): quad 1 has left its half of a segment's sum in shared memory.
__device__ __forceinline__ void quads_bar() { asm volatile("bar.sync 2, %0;" ::"n"(kQuads * kConsumers) : "memory"); }

template <int kStages>
__global__ void __launch_bounds__(kThreads) nvfp4_gemv_kernel(const __grid_constant__ CUtensorMap cmap,
                                                              const __grid_constant__ CUtensorMap smap,
                                                              const __grid_constant__ CUtensorMap xmap,
                                                              const SmallMParams p) {
  extern __shared__ uint8_t smem_raw[];
  const uint32_t code0 = (smem_u32(smem_raw) + 1023) & ~1023u;  // SW128 atoms are 1024-byte aligned
  const uint32_t scale0 = code0 + kStages * kCodeBytes, x0 = scale0 + kStages * kScaleBytes;
  const uint32_t bar0 = x0 + kStages * kXStage;
  auto full = [&](int s) { return bar0 + 8 * s; };                  // codes + scales landed
  auto xfull = [&](int s) { return bar0 + 8 * (2 * kStages + s); };  // activations landed
  auto empty = [&](int s) { return bar0 + 8 * (kStages + s); };     // all consumer warps done

  const int64_t I = int64_t(p.rtiles) * p.KG, G = gridDim.x;
  const int64_t i0 = sk_start(blockIdx.x, I, G), i1 = sk_start(blockIdx.x + 1, I, G);
  const int cnt = int(i1 - i0);
  const int warp = __shfl_sync(0xffffffffu, int(threadIdx.x) >> 5, 0), lane = int(threadIdx.x) & 31;

  if (threadIdx.x == kQuads * kConsumers) {
    for (int s = 0; s < kStages; ++s) {
      mbar_init(full(s), 1);
      mbar_init(xfull(s), 1);
      mbar_init(empty(s), kWarps);
    }
    asm volatile("fence.mbarrier_init.release.cluster;" ::: "memory");
    asm volatile("fence.proxy.async.shared::cta;" ::: "memory");
  }
  __syncthreads();
  griddep_launch_dependents();  // the next kernel only prefetches read-only data before waiting for us

  if (warp == kQuads * kWarps) {  // ---- TMA: the first stages' weights before the PDL wait (they never
                         // depend on the preceding kernel), then weights and activations per slot
    if (lane != 0) return;
    prefetch_tensormap(&cmap);
    prefetch_tensormap(&smap);
    prefetch_tensormap(&xmap);
    auto load_weights = [&](int k) {
      const int s = k % kStages;
      const int64_t i = i0 + k;
      const int tile = int(i / p.KG), g = int(i - int64_t(tile) * p.KG);
      mbar_expect_tx(full(s), kCodeBytes + kScaleBytes);
      tma_load_2d(code0 + s * kCodeBytes, &cmap, g * 128, tile * kWgRows, full(s));
      tma_load_2d(scale0 + s * kScaleBytes, &smap, g * 16, tile * kWgRows, full(s));
    };
    for (int k = 0; k < cnt && k < kStages; ++k) load_weights(k);
    griddep_wait();
    for (int k = 0; k < cnt; ++k) {
      const int s = k % kStages, g = int((i0 + k) % p.KG);
      if (k >= kStages) {
        mbar_wait(empty(s), uint32_t((k / kStages - 1) & 1));
        load_weights(k);
      }
      mbar_expect_tx(xfull(s), 4 * 128 * p.M);
#pragma unroll
      for (int b = 0; b < 4; ++b) tma_load_2d(x0 + s * kXStage + b * kXBoxStride, &xmap, g * 512 + b * 128, 0, xfull(s));
    }
    return;
  }

  // ---- consumers
  // Quad q takes the CTA's stages k ≡ q (mod 2), each of its warps 16 rows; quad 1 hands its sum of
  // a segment to quad 0 through shared memory (double-buffered by segment parity: quad 1 can only
  // rewrite a buffer after the next segment's barrier, which quad 0 passes after reading it).
  __shared__ float handoff[2][kAcc][kConsumers];
  const int quad = warp / kWarps, tid = int(threadIdx.x) - quad * kConsumers, gq = lane >> 2, tq = lane & 3;
  const int pr = (gq >> 1) | ((gq & 1) << 2);  // row (mod 8) of lane group gq: conflict-free loads
  const int ra_row = (warp % kWarps) * 16 + pr, rb_row = ra_row + 8;
  const uint32_t u0 = uint32_t(tq ^ pr) << 4, u1 = uint32_t((tq + 4) ^ pr) << 4;  // swizzled units tq, tq+4
  // Activations of unit u = 4c + tq (elements 32u..32u+31 of the group): box 2c + tq/2, bytes
  // 64·(tq & 1) of the row of token gq (token 0 for lanes past M: their columns are never stored).
  const uint32_t xoff = uint32_t((tq >> 1) * kXBoxStride + (gq < p.M ? gq : 0) * 128 + (tq & 1) * 64);
  griddep_wait();  // y may still be read by the preceding kernel

  for (int64_t seg = i0, nseg = 0; seg < i1; ++nseg) {
    const int tile = int(seg / p.KG);
    const int64_t t0 = int64_t(tile) * p.KG, seg_end = std::min<int64_t>(i1, t0 + p.KG);
    float acc[2][2][kAcc];  // [chunk][MMA parity]: four independent MMA chains
#pragma unroll
    for (int c = 0; c < 2; ++c)
#pragma unroll
      for (int h = 0; h < 2; ++h)
#pragma unroll
        for (int e = 0; e < kAcc; ++e) acc[c][h][e] = 0.f;
    const int k_first = int(seg - i0);
    for (int k = k_first + ((k_first & 1) != quad ? 1 : 0); k < int(seg_end - i0); k += 2) {
      const int s = k % kStages;
      mbar_wait(full(s), uint32_t((k / kStages) & 1));
      mbar_wait(xfull(s), uint32_t((k / kStages) & 1));
      const uint32_t ca = code0 + s * kCodeBytes + ra_row * 128, cb = ca + 8 * 128;
      const uint4 wa[2] = {lds128(ca + u0), lds128(ca + u1)}, wb[2] = {lds128(cb + u0), lds128(cb + u1)};
      const uint32_t sa = lds32(scale0 + s * kScaleBytes + ra_row * 16 + 4 * tq);
      const uint32_t sb = lds32(scale0 + s * kScaleBytes + rb_row * 16 + 4 * tq);
#pragma unroll
      for (int c = 0; c < 2; ++c) {
        ActWords<SmFmt::Nvfp4> xa;
        const uint32_t xp = x0 + s * kXStage + 2 * c * kXBoxStride + xoff;
#pragma unroll
        for (int q = 0; q < 4; ++q) {
          const uint4 v = lds128(xp + 16 * q);
          xa.v[4 * q] = v.x, xa.v[4 * q + 1] = v.y, xa.v[4 * q + 2] = v.z, xa.v[4 * q + 3] = v.w;
        }
        RowWords<SmFmt::Nvfp4> a, b;
        decode_row<SmFmt::Nvfp4>(a, wa[c], sa, c);
        decode_row<SmFmt::Nvfp4>(b, wb[c], sb, c);
#pragma unroll
        for (int j = 0; j < RowWords<SmFmt::Nvfp4>::n / 2; ++j)
          mma_bf16(acc[c][j & 1], a.v[2 * j], b.v[2 * j], a.v[2 * j + 1], b.v[2 * j + 1], xa.v[2 * j], xa.v[2 * j + 1]);
      }
      // The decode consumed every loaded word, so this warp's reads of the stage are complete.
      __syncwarp();
      if (lane == 0) mbar_arrive(empty(s));
    }
    float v[kAcc];
#pragma unroll
    for (int e = 0; e < kAcc; ++e) v[e] = (acc[0][0][e] + acc[0][1][e]) + (acc[1][0][e] + acc[1][1][e]);
    if (quad == 1) {
#pragma unroll
      for (int e = 0; e < kAcc; ++e) handoff[nseg & 1][e][tid] = v[e];
      quads_bar();
      seg = seg_end;
      continue;
    }
    quads_bar();
#pragma unroll
    for (int e = 0; e < kAcc; ++e) v[e] += handoff[nseg & 1][e][tid];
    // The whole tile → y; else a partial (see sk_segment_finish).
    const bool store = sk_segment_finish<kAcc>(p, v, tid, tile, t0, seg, seg_end, i0, I, G);
    if (store) {
#pragma unroll
      for (int e = 0; e < kAcc; ++e) {
        const int row = tile * kWgRows + ((e & 2) ? rb_row : ra_row), tok = 2 * tq + (e & 1);
        if (row < p.N && tok < p.M)
          p.y[int64_t(tok) * p.N + row] = v[e] * (p.row_alpha ? __ldg(p.row_alpha + row) : p.alpha);
      }
    }
    seg = seg_end;
  }
}

// Ring depth (GDN_NVFP4_GEMV_STAGES, experiments: 4, 6 or 8) and resident CTAs per SM the grid is
// planned for (all of them run at once: the grid is one wave); GDN_NVFP4_GEMV_CTAS asks for a
// number of CTAs, capped by the occupancy.
template <typename Fn>
void with_stages(Fn&& fn) {
  static const int st = [] {
    const char* e = std::getenv("GDN_NVFP4_GEMV_STAGES");
    const int v = e ? std::atoi(e) : kNvfp4GemvStages;
    return v == 4 || v == 6 || v == 8 ? v : kNvfp4GemvStages;
  }();
  if (st == 4) return fn(std::integral_constant<int, 4>{});
  if (st == 6) return fn(std::integral_constant<int, 6>{});
  return fn(std::integral_constant<int, 8>{});
}

int ctas_per_sm() {
  static const int n = [] {
    int occ = 0;
    with_stages([&](auto st) {
      constexpr int S = decltype(st)::value;
      GDN_CUDA_CHECK(cudaFuncSetAttribute(nvfp4_gemv_kernel<S>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                          int(kSmemBytes<S>)));
      GDN_CUDA_CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&occ, nvfp4_gemv_kernel<S>, kThreads, kSmemBytes<S>));
    });
    const char* e = std::getenv("GDN_NVFP4_GEMV_CTAS");
    const int want = e ? std::atoi(e) : kNvfp4GemvCtasPerSm;
    return std::max(1, std::min(occ, want));
  }();
  return n;
}

struct GemvPlan {
  int rtiles = 0, KG = 0, blocks = 0;
};

GemvPlan plan(const DeviceLinear& w) {
  GemvPlan pl;
  pl.rtiles = int((w.rows_pad + kWgRows - 1) / kWgRows);
  pl.KG = int(w.cols_pad / 256);
  // At least kMinIters groups per CTA: its fixed cost (barrier setup, the first DRAM wait) is a few
  // groups' worth.
  constexpr int64_t kMinIters = 3;
  const int64_t I = int64_t(pl.rtiles) * pl.KG;
  pl.blocks = int(std::max<int64_t>(1, std::min<int64_t>(int64_t(device_info().sm_count) * ctas_per_sm(), I / kMinIters)));
  return pl;
}

}  // namespace

bool nvfp4_gemv_applies(const DeviceLinear& w, int M) {
  static const int max_m = [] {
    const char* e = std::getenv("GDN_NVFP4_GEMV_MAX_M");
    return e ? std::clamp(std::atoi(e), 0, kMaxTok) : kNvfp4GemvMaxTokens;
  }();
  static const bool hopper = device_info().cc_major == 9;
  // Narrow weights keep the decode kernel: one wave of short stream-K segments is slower there
  // (H100, k|v_proj 1024 × 5120 at M = 1 in a graph: 9.3 µs here, 5.0 in the decode kernel).
  return hopper && w.kind == DeviceWeightKind::Nvfp4 && M >= 1 && M <= max_m && w.rows_pad >= kNvfp4GemvMinRows &&
         w.cols_pad % 256 == 0 && w.block_scales != nullptr;
}

size_t nvfp4_gemv_partial_bytes(const DeviceLinear& w) {
  if (w.kind != DeviceWeightKind::Nvfp4 || device_info().cc_major != 9) return 0;
  return size_t(device_info().sm_count) * ctas_per_sm() * 2 * kAcc * kConsumers * 4;  // two segments per CTA
}

void launch_nvfp4_gemv(const DeviceLinear& w, const SmallMParams& p_in, cudaStream_t s, bool pdl) {
  if (p_in.M < 1 || p_in.M > kMaxTok) throw CudaError("nvfp4 gemv: M out of range (1..4)");
  const GemvPlan pl = plan(w);
  if (pl.rtiles > kMaxCounters) throw CudaError("nvfp4 gemv: more row tiles than split-K counters");
  SmallMParams p = p_in;
  p.KG = pl.KG;
  p.rtiles = pl.rtiles;
  p.ksplit = 0;
  const Nvfp4WeightMaps wm = nvfp4_weight_maps(w);
  const CUtensorMap xm = make_tma_map(p.x, p.M, w.cols_pad * 2, p.ldx * 2, p.M, 128, false);
  with_stages([&](auto st) {
    constexpr int S = decltype(st)::value;
    launch_pdl(nvfp4_gemv_kernel<S>, dim3(unsigned(pl.blocks)), dim3(kThreads), kSmemBytes<S>, s, pdl, wm.codes,
               wm.scales, xm, p);
  });
}

}  // namespace gdn::cuda::detail
