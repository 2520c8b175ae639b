// NVFP4 small-M kernel on wgmma (Hopper has no FP4 tensor cores): the E2M1 codes and E4M3 block
// scales are decoded once per CTA into BF16 tiles in shared memory, and one warpgroup multiplies
// them with BF16 wgmma (m64nNk16, fp32 accumulation: exact products, like the mma.sync path)
// against the activations. The mma.sync kernels (linear_smallm.cu, linear_decode.cu) decode every
// weight fragment per 16-row tile and issue one m16n8k16 per 16×16 weights: at 64 tokens they were
// bound by instruction issue (H100, gate|up: 117-120 µs where this kernel takes 45-48 µs; FP8 43).
//
// Schedule: one wave of CTAs (one per SM), each taking an equal contiguous share of the flattened
// (64-row tile, 256-element K group) iterations ("stream-K"); a CTA's part of a tile is a segment:
// a whole tile is stored directly, partial ones are summed by the tile's last contributor in
// contributor order (per-tile counter; deterministic, no atomics on y). Roles in a CTA:
//  * weight TMA warp: each group's raw codes [64 rows × 128 B] (128-byte swizzle) and block scales
//    [64 × 16 B] into a 6-stage raw ring; weights never depend on the preceding kernel, so it starts
//    at once (PDL) and never waits for it;
//  * activation TMA warp: after griddep_wait, the group's BF16 activations (q·s for NVFP4
//    activations) [N tokens × 4 × 128 B, swizzled] into their own ring; tokens ≥ M read as zeros;
//  * two decode warpgroups: a 32-bit code word holds 8 consecutive K elements (device layout,
//    linear_cuda.h) → 4 BF16 pairs (rotate and mask) × the block scale pair (PRMT, IMAD, one
//    HMUL2; e2m1·s·2⁻⁸ is exact in BF16) → one 16-byte store, exactly one swizzle unit of the SW128
//    weight tile; eight consecutive threads take eight rows so loads and stores are conflict-free;
//    they work ahead of the MMA by up to three decoded stages, also before the preceding kernel ends;
//  * MMA warpgroup: 16 wgmma k16 per group into one fp32 accumulator per segment; the epilogue
//    multiplies by the global scales (and the decode's 2⁸), per row for fused parts.
// The accumulator is only touched outside branches: ptxas serializes wgmma around accumulator
// accesses in divergent paths (warning C7518), which cost this kernel 30-40% before.
#include <cuda.h>
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdlib>
#include <string>

#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/device.h"
#include "kernels/cuda/fp_codecs.cuh"
#include "kernels/cuda/launch_pdl.h"
#include "kernels/cuda/linear_internal.h"
#include "kernels/cuda/wgmma_ptx.cuh"

namespace gdn::cuda::detail {

namespace {

constexpr int kDecoders = 256;                                // two decode warpgroups
constexpr int kThreads = kWgConsumers + kDecoders + 64;       // + the weight and activation TMA warps
constexpr int kCodeBytes = kWgRows * 128;                     // raw stage: codes of one K group
constexpr int kScaleBytes = kWgRows * 16;                     // raw stage: its block scales
constexpr int kWBytes = 4 * kWgRows * 128;                    // BF16 weights of a group: 4 SW128 chunks
template <int NTOK>
constexpr int kXBytes = 4 * NTOK * 128;                       // BF16 activations of a group
// Ring depths (one CTA per SM, ≤ 227 KB): raw codes (DRAM latency), decoded weights (the decode
// runs ahead of the MMA), activations (L2 latency). H100 (27B shapes): 3 decoded stages were ≤ 2%
// faster than 2; 4 raw stages instead of 6 and a second wgmma group in flight were no better.
constexpr int kRawStages = 6;
constexpr int kWStages = 3;
template <int NTOK>
constexpr int kActStages = NTOK <= 16 ? 4 : NTOK == 32 ? 3 : 2;
template <int NTOK>
constexpr int kBarriers = 2 * (kRawStages + kWStages + kActStages<NTOK>);
template <int NTOK>
constexpr size_t kSmemBytes = size_t(kWStages) * kWBytes + size_t(kActStages<NTOK>) * kXBytes<NTOK> +
                              size_t(kRawStages) * (kCodeBytes + kScaleBytes) + 8 * kBarriers<NTOK> + 1024;

__device__ __forceinline__ void sts128(uint32_t a, uint32_t x, uint32_t y, uint32_t z, uint32_t w) {
  asm volatile("st.shared.v4.u32 [%0], {%1,%2,%3,%4};" ::"r"(a), "r"(x), "r"(y), "r"(z), "r"(w) : "memory");
}

// Scale byte i (runtime 0..3) of `word` → BF16 pair (S, S), S = s·2¹¹⁸ (as nvfp4_scale_pair).
__device__ __forceinline__ __nv_bfloat162 scale_pair(uint32_t word, uint32_t i) {
  return bits_bf16x2(__byte_perm(word, 0, 0x4040u + 0x101u * i) * 16u + 0x76007600u);
}
// 8 K elements of one code word, times their block scale, as 4 BF16 pairs in K order.
__device__ __forceinline__ uint4 decode_word(uint32_t w, __nv_bfloat162 s) {
  uint32_t raw[4];
  nvfp4_word_raw(w, raw);
  return make_uint4(bf16x2_bits(__hmul2(bits_bf16x2(raw[0]), s)), bf16x2_bits(__hmul2(bits_bf16x2(raw[1]), s)),
                    bf16x2_bits(__hmul2(bits_bf16x2(raw[2]), s)), bf16x2_bits(__hmul2(bits_bf16x2(raw[3]), s)));
}

template <int NTOK>
__global__ void __launch_bounds__(kThreads) nvfp4_wgmma_kernel(const __grid_constant__ CUtensorMap cmap,
                                                               const __grid_constant__ CUtensorMap smap,
                                                               const __grid_constant__ CUtensorMap xmap,
                                                               const SmallMParams p) {
  constexpr int NR = NTOK / 2, XB = kXBytes<NTOK>, AS = kActStages<NTOK>, kStages = kWStages;
  extern __shared__ uint8_t smem_raw[];
  // [kStages] decoded weight tiles, [AS] activation tiles, [kRawStages] codes (all 1024-aligned),
  // [kRawStages] scales, barriers.
  const uint32_t base = (smem_u32(smem_raw) + 1023) & ~1023u;
  const uint32_t wt0 = base, xt0 = wt0 + kStages * kWBytes;
  const uint32_t code0 = xt0 + AS * XB, scale0 = code0 + kRawStages * kCodeBytes;
  const uint32_t bar0 = scale0 + kRawStages * kScaleBytes;
  auto raw_full = [&](int s) { return bar0 + 8 * s; };
  auto raw_empty = [&](int s) { return bar0 + 8 * (kRawStages + s); };
  auto dec_full = [&](int s) { return bar0 + 8 * (2 * kRawStages + s); };
  auto mma_empty = [&](int s) { return bar0 + 8 * (2 * kRawStages + kStages + s); };  // weight tile free
  auto act_full = [&](int s) { return bar0 + 8 * (2 * kRawStages + 2 * kStages + s); };
  auto act_empty = [&](int s) { return bar0 + 8 * (2 * kRawStages + 2 * kStages + AS + s); };

  const int64_t I = int64_t(p.rtiles) * p.KG, G = gridDim.x;
  const int64_t i0 = sk_start(blockIdx.x, I, G), i1 = sk_start(blockIdx.x + 1, I, G);
  const int cnt = int(i1 - i0);
  const int warp = __shfl_sync(0xffffffffu, int(threadIdx.x) >> 5, 0), lane = int(threadIdx.x) & 31;
  constexpr int kWeightWarp = (kWgConsumers + kDecoders) / 32, kActWarp = kWeightWarp + 1;

  if (threadIdx.x == kWgConsumers + kDecoders) {
    for (int s = 0; s < kRawStages; ++s) {
      mbar_init(raw_full(s), 1);
      mbar_init(raw_empty(s), kDecoders / 32);
    }
    for (int s = 0; s < kStages; ++s) {
      mbar_init(dec_full(s), kDecoders / 32);
      mbar_init(mma_empty(s), kWgConsumers / 32);
    }
    for (int s = 0; s < AS; ++s) {
      mbar_init(act_full(s), 1);
      mbar_init(act_empty(s), kWgConsumers / 32);
    }
    asm volatile("fence.mbarrier_init.release.cluster;" ::: "memory");
    asm volatile("fence.proxy.async.shared::cta;" ::: "memory");
  }
  __syncthreads();
  griddep_launch_dependents();  // the next kernel only prefetches read-only data before waiting for us

  if (warp == kWeightWarp) {  // ---- weights: independent of the preceding kernel, never wait for it
    if (lane != 0) return;
    prefetch_tensormap(&cmap);
    prefetch_tensormap(&smap);
    for (int k = 0; k < cnt; ++k) {
      const int s = k % kRawStages;
      const int64_t i = i0 + k;
      const int tile = int(i / p.KG), g = int(i - int64_t(tile) * p.KG);
      if (k >= kRawStages) mbar_wait(raw_empty(s), uint32_t((k / kRawStages - 1) & 1));
      mbar_expect_tx(raw_full(s), kCodeBytes + kScaleBytes);
      tma_load_2d(code0 + s * kCodeBytes, &cmap, g * 128, tile * kWgRows, raw_full(s));
      tma_load_2d(scale0 + s * kScaleBytes, &smap, g * 16, tile * kWgRows, raw_full(s));
    }
    return;
  }
  if (warp == kActWarp) {  // ---- activations: written by the preceding kernel
    if (lane != 0) return;
    prefetch_tensormap(&xmap);
    griddep_wait();
    for (int k = 0; k < cnt; ++k) {
      const int s = k % AS, g = int((i0 + k) % p.KG);
      if (k >= AS) mbar_wait(act_empty(s), uint32_t((k / AS - 1) & 1));
      mbar_expect_tx(act_full(s), XB);
#pragma unroll
      for (int c = 0; c < 4; ++c) tma_load_2d(xt0 + s * XB + c * NTOK * 128, &xmap, g * 512 + c * 128, 0, act_full(s));
    }
    return;
  }

  if (warp >= kWgConsumers / 32) {  // ---- decode warpgroups (shared memory only: may run before the wait)
    const int dt = int(threadIdx.x) - kWgConsumers;
    for (int k = 0; k < cnt; ++k) {
      const int rs = k % kRawStages, s = k % kStages;
      mbar_wait(raw_full(rs), uint32_t((k / kRawStages) & 1));
      if (k >= kStages) mbar_wait(mma_empty(s), uint32_t((k / kStages - 1) & 1));
#pragma unroll
      for (int it = 0; it < 512 / kDecoders; ++it) {
        // 16 code bytes u of row r: K elements 32u..32u+31 of the group = half of BF16 chunk u/2,
        // natural blocks 2u and 2u+1, whose scale bytes sit at 4(u%4) + 2(u/4) and the next. Eight
        // consecutive threads take eight rows of one u: with both tiles swizzled (unit ^ row % 8)
        // their 16-byte loads and stores fall in eight different bank groups.
        const int f = dt + kDecoders * it, r = (f & 7) | ((f >> 6) << 3), u = (f >> 3) & 7, sw7 = r & 7;
        const uint4 code = lds128(code0 + rs * kCodeBytes + r * 128 + ((u ^ sw7) << 4));
        const int sp = 4 * (u & 3) + 2 * (u >> 2);
        const uint32_t sw = lds32(scale0 + rs * kScaleBytes + r * 16 + (sp & ~3));
        const __nv_bfloat162 s_lo = scale_pair(sw, uint32_t(sp & 3)), s_hi = scale_pair(sw, uint32_t(sp & 3) + 1);
        const uint32_t line = wt0 + s * kWBytes + (u >> 1) * (kWgRows * 128) + r * 128;
        const int unit0 = 4 * (u & 1);
        const uint4 d0 = decode_word(code.x, s_lo), d1 = decode_word(code.y, s_lo);
        const uint4 d2 = decode_word(code.z, s_hi), d3 = decode_word(code.w, s_hi);
        sts128(line + ((unit0 + 0) ^ sw7) * 16, d0.x, d0.y, d0.z, d0.w);
        sts128(line + ((unit0 + 1) ^ sw7) * 16, d1.x, d1.y, d1.z, d1.w);
        sts128(line + ((unit0 + 2) ^ sw7) * 16, d2.x, d2.y, d2.z, d2.w);
        sts128(line + ((unit0 + 3) ^ sw7) * 16, d3.x, d3.y, d3.z, d3.w);
      }
      // The tile was written by the generic proxy; wgmma reads it through the async proxy.
      asm volatile("fence.proxy.async.shared::cta;" ::: "memory");
      __syncwarp();
      if (lane == 0) {
        mbar_arrive(raw_empty(rs));
        mbar_arrive(dec_full(s));
      }
    }
    return;
  }

  // ---- MMA warpgroup: one segment (the CTA's part of one row tile) at a time. The accumulator
  // is only touched right after wgmma_wait0 outside any branch (ptxas serializes wgmma around
  // accumulator accesses in divergent paths), then copied out for the stores.
  griddep_wait();  // y may still be read by the preceding kernel
  const int tid = int(threadIdx.x);
  for (int64_t seg = i0; seg < i1;) {
    const int tile = int(seg / p.KG);
    const int64_t t0 = int64_t(tile) * p.KG, seg_end = std::min<int64_t>(i1, t0 + p.KG);
    float acc[NR];
#pragma unroll
    for (int e = 0; e < NR; ++e) acc[e] = 0.f;
    for (int k = int(seg - i0); k < int(seg_end - i0); ++k) {
      const int s = k % kStages, as = k % AS;
      mbar_wait(dec_full(s), uint32_t((k / kStages) & 1));
      mbar_wait(act_full(as), uint32_t((k / AS) & 1));
#pragma unroll
      for (int e = 0; e < NR; ++e) asm volatile("" : "+f"(acc[e])::"memory");
      wgmma_fence();
#pragma unroll
      for (int c = 0; c < 4; ++c) {
        const uint64_t da = sw128_desc(wt0 + s * kWBytes + c * kWgRows * 128);
        const uint64_t db = sw128_desc(xt0 + as * XB + c * NTOK * 128);
#pragma unroll
        for (int kk = 0; kk < 4; ++kk) wgmma_bf16<NTOK>(acc, da + 2 * kk, db + 2 * kk);
      }
      wgmma_commit();
      wgmma_wait0();
#pragma unroll
      for (int e = 0; e < NR; ++e) asm volatile("" : "+f"(acc[e])::"memory");
      __syncwarp();
      if (lane == 0) {
        mbar_arrive(mma_empty(s));
        mbar_arrive(act_empty(as));
      }
    }
    float v[NR];
#pragma unroll
    for (int e = 0; e < NR; ++e) v[e] = acc[e];
    // The whole tile → y; else a partial (see sk_segment_finish).
    const bool store = sk_segment_finish<NR>(p, v, tid, tile, t0, seg, seg_end, i0, I, G);
    if (store) {
      const int row0 = tile * kWgRows;
#pragma unroll
      for (int e = 0; e < NR; ++e) {
        const int row = row0 + frag_row(warp, lane, e), tok = frag_tok(lane, e);
        if (row < p.N && tok < p.M)
          p.y[int64_t(tok) * p.N + row] = v[e] * (p.row_alpha ? __ldg(p.row_alpha + row) : p.alpha);
      }
    }
    seg = seg_end;
  }
}

template <int NTOK>
struct NvInstance {
  static int occupancy() {
    static const int occ = [] {
      GDN_CUDA_CHECK(cudaFuncSetAttribute(nvfp4_wgmma_kernel<NTOK>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                          int(kSmemBytes<NTOK>)));
      int k = 0;
      GDN_CUDA_CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&k, nvfp4_wgmma_kernel<NTOK>, kThreads,
                                                                   kSmemBytes<NTOK>));
      return std::max(k, 1);
    }();
    return occ;
  }
  static void launch(int blocks, const CUtensorMap& cm, const CUtensorMap& sm, const CUtensorMap& xm,
                     const SmallMParams& p, cudaStream_t s, bool pdl) {
    occupancy();  // sets the shared-memory attribute once
    launch_pdl(nvfp4_wgmma_kernel<NTOK>, dim3(unsigned(blocks)), dim3(kThreads), kSmemBytes<NTOK>, s, pdl, cm, sm, xm,
               p);
  }
};

template <typename Fn>
void with_nv_instance(int ntok, Fn&& fn) {
  if (ntok == 8) return fn(NvInstance<8>{});
  if (ntok == 16) return fn(NvInstance<16>{});
  if (ntok == 32) return fn(NvInstance<32>{});
  if (ntok == 64) return fn(NvInstance<64>{});
  throw CudaError("nvfp4 wgmma: no instance for " + std::to_string(ntok) + " tokens");
}

int ntok_of(int M) { return M <= 8 ? 8 : M <= 16 ? 16 : M <= 32 ? 32 : 64; }

struct NvPlan {
  int ntok = 8, rtiles = 0, KG = 0, blocks = 0;
};

// Resident CTAs of the instance for M tokens (all of them run at once: the grid is one wave).
int nv_slots(int ntok) {
  int occ = 1;
  with_nv_instance(ntok, [&](auto inst) { occ = decltype(inst)::occupancy(); });
  return device_info().sm_count * occ;
}

NvPlan plan(const DeviceLinear& w, int M) {
  NvPlan pl;
  pl.ntok = ntok_of(M);
  pl.rtiles = int((w.rows_pad + kWgRows - 1) / kWgRows);
  pl.KG = int(w.cols_pad / 256);
  // One wave of CTAs with equal shares of the (tile, group) iterations, at least kMinIters each
  // (a CTA's fixed cost — barrier setup, the first DRAM wait — is a few groups' worth).
  constexpr int64_t kMinIters = 3;
  const int64_t I = int64_t(pl.rtiles) * pl.KG;
  pl.blocks = int(std::max<int64_t>(1, std::min<int64_t>(nv_slots(pl.ntok), I / kMinIters)));
  return pl;
}

}  // namespace

bool nvfp4_wgmma_applies(const DeviceLinear& w, int M) {
  static const int min_m = [] {
    const char* e = std::getenv("GDN_NVFP4_WGMMA_MIN_M");
    return e ? std::atoi(e) : kNvfp4WgmmaMinTokens;
  }();
  static const bool hopper = device_info().cc_major == 9;
  // Narrow weights (k|v_proj: 16 row tiles) keep the mma.sync kernel up to 16 tokens: one wave of
  // short segments there took 9.9 µs at 4-8 tokens where it took 6.6-7.6 (H100).
  const bool wide_enough = M > 16 || w.rows_pad >= 4096;
  return hopper && w.kind == DeviceWeightKind::Nvfp4 && min_m > 0 && M >= min_m && M <= kMaxSliceTokens &&
         wide_enough && w.cols_pad % 256 == 0 && w.block_scales != nullptr;
}

size_t nvfp4_wgmma_partial_bytes(const DeviceLinear& w, int M) {
  if (w.kind != DeviceWeightKind::Nvfp4 || M > kMaxSliceTokens || device_info().cc_major != 9) return 0;
  const int ntok = ntok_of(M);
  return size_t(nv_slots(ntok)) * 2 * size_t(ntok / 2) * kWgConsumers * 4;  // two segments per CTA
}

void launch_nvfp4_wgmma(const DeviceLinear& w, const SmallMParams& p_in, cudaStream_t s, bool pdl) {
  if (p_in.M < 1 || p_in.M > kMaxSliceTokens) throw CudaError("nvfp4 wgmma: M out of range");
  const NvPlan pl = plan(w, p_in.M);
  if (pl.rtiles > kMaxCounters) throw CudaError("nvfp4 wgmma: more row tiles than split-K counters");
  SmallMParams p = p_in;
  p.KG = pl.KG;
  p.rtiles = pl.rtiles;
  p.ksplit = 0;
  const Nvfp4WeightMaps wm = nvfp4_weight_maps(w);
  const CUtensorMap xm = make_tma_map(p.x, p.M, w.cols_pad * 2, p.ldx * 2, pl.ntok, 128, true);
  with_nv_instance(pl.ntok, [&](auto inst) { decltype(inst)::launch(pl.blocks, wm.codes, wm.scales, xm, p, s, pdl); });
}

}  // namespace gdn::cuda::detail
