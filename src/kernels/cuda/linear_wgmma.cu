// Native FP8 small-M kernel (decode, M ≤ 64) for W8A8 FP8 weights on Hopper: wgmma E4M3 instead of
// the mma.sync m16n8k32 E4M3 of linear_smallm.cu, which sm_90 has no native instruction for
// (ptxas lowers it to F8→F16 conversions + 2 HMMA: ~3× the instructions per byte of BF16, and FP8
// decode streamed at only 58-67% of the copy bandwidth).
//
// Layout of the work ("swap AB" as in the mma.sync kernel): weights are wgmma's A operand, 64 rows
// per tile (M side), tokens are its N = 8, 16, 32 or 64 columns, so D is [64 rows × N tokens] in
// fp32 registers of one warpgroup. The grid is (row tile × K split); a CTA streams its contiguous range
// of 128-byte K groups:
//  * one producer warp issues, per K group, a TMA tile load of the weight (64 rows × 128 bytes) and
//    of the activations (N tokens × 128 bytes; tokens ≥ M and weight rows ≥ rows_pad are zero
//    filled by the TMA unit) into a ring of stages, completing on a "full" mbarrier;
//  * both land with the 128-byte swizzle, the layout wgmma's K-major SW128 descriptor reads (8-row
//    atoms of 1024 bytes, 16-byte chunks XOR-ed with row % 8); the 4 k32 steps of a group advance the
//    descriptors' start address by 32 bytes inside the atom;
//  * the consumer warpgroup (4 warps) does the group's 4 wgmma m64nNk32 into a fresh accumulator,
//    waits for them, frees the stage (one "empty" arrival per warp) and adds the accumulator into an
//    fp32 sum with the group's scales (block-128) or unscaled (per-channel; scales in the epilogue);
//  * K splits are reduced like the mma.sync decode kernel: each split writes its [64 × N] slot, the
//    last CTA of a tile (per-tile counter) sums the slots in split order — deterministic, no atomics
//    on y — and resets the counter.
//
// Measured slower on the H100 and not kept (2026-11): 128-row tiles with two warpgroups; TMA
// multicast of the activation tile over clusters of 2/4 row tiles (1.4–2.9×); two consumer
// warpgroups on alternate K groups and 2-3 stage rings at 32/64 tokens; a persistent stream-K
// schedule (every shape, e.g. in_proj at 64 tokens 46 → 57 µs). README "Whole model on the GPU".
//
// Status (H100, tests/gpu/test_linear_wgmma.cpp): layouts, swizzle, tails, scales and the split-K
// reduction are right, and it streams 1.0-1.26× faster than the mma.sync kernel, but it is NOT
// exact: ~2.5e-4 relative per row (≈ 2⁻¹², the same as cuBLASLt's FP8 GEMMs) even with every 128-K
// group promoted to fp32 — Hopper's FP8 wgmma accumulates inside the tensor core with reduced
// precision. The project holds small-M linears to 1e-5 (the mma.sync path, whose E4M3 MMA ptxas
// lowers to F16 HMMA with fp32 accumulation, is at ~4e-7), so linear_forward does not route here by
// default: GDN_FP8_WGMMA=1 (or set_fp8_wgmma_mode(1)) opts in, GDN_FP8_WGMMA=0 forces it off.
#include <cuda.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>

#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/launch_pdl.h"
#include "kernels/cuda/device.h"
#include "kernels/cuda/fp_codecs.cuh"
#include "kernels/cuda/linear_internal.h"
#include "kernels/cuda/wgmma_ptx.cuh"

namespace gdn::cuda::detail {

namespace {

constexpr int kTileRows = kWgRows;          // wgmma M
constexpr int kConsumers = kWgConsumers;     // one warpgroup
constexpr int kThreads = kConsumers + 32;    // + the producer warp
constexpr int kWTileBytes = kTileRows * 128; // one K group of a row tile

template <int NTOK>
constexpr int kXTileBytes = NTOK * 128;
template <int NTOK, int ST>
constexpr size_t kSmemBytes = size_t(ST) * (kWTileBytes + kXTileBytes<NTOK>) + 2 * ST * 8 + 16 + 1024;

Fp8WgmmaTuning g_tuning;
int g_mode = -1;  // -1: GDN_FP8_WGMMA decides; 0 off; 1 on
// Without GDN_FP8_WGMMA: off (faster, but ~2.5e-4 off the reference vs the project's 1e-5; see above).
constexpr bool kFp8WgmmaDefaultOn = false;

// d (+)= A[64×32 e4m3] · B[32×N e4m3]; accumulate = 0 overwrites d.
template <int NTOK>
__device__ __forceinline__ void wgmma_e4m3(float (&d)[NTOK / 2], uint64_t da, uint64_t db, int accumulate);
template <>
__device__ __forceinline__ void wgmma_e4m3<8>(float (&d)[4], uint64_t da, uint64_t db, int accumulate) {
  asm volatile(
      "{\n .reg .pred p;\n setp.ne.b32 p, %6, 0;\n"
      " wgmma.mma_async.sync.aligned.m64n8k32.f32.e4m3.e4m3 {%0,%1,%2,%3}, %4, %5, p, 1, 1;\n}"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "l"(da), "l"(db), "r"(accumulate)
      : "memory");
}
template <>
__device__ __forceinline__ void wgmma_e4m3<16>(float (&d)[8], uint64_t da, uint64_t db, int accumulate) {
  asm volatile(
      "{\n .reg .pred p;\n setp.ne.b32 p, %10, 0;\n"
      " wgmma.mma_async.sync.aligned.m64n16k32.f32.e4m3.e4m3 {%0,%1,%2,%3,%4,%5,%6,%7}, %8, %9, p, 1, 1;\n}"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7])
      : "l"(da), "l"(db), "r"(accumulate)
      : "memory");
}

template <>
__device__ __forceinline__ void wgmma_e4m3<32>(float (&d)[16], uint64_t da, uint64_t db, int accumulate) {
  asm volatile(
      "{\n .reg .pred p;\n setp.ne.b32 p, %18, 0;\n"
      " wgmma.mma_async.sync.aligned.m64n32k32.f32.e4m3.e4m3 {%0,%1,%2,%3,%4,%5,%6,%7,%8,%9,%10,%11,%12,%13,%14,%15}, %16, %17, p, 1, 1;\n}"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]),
        "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15])
      : "l"(da), "l"(db), "r"(accumulate)
      : "memory");
}
template <>
__device__ __forceinline__ void wgmma_e4m3<64>(float (&d)[32], uint64_t da, uint64_t db, int accumulate) {
  asm volatile(
      "{\n .reg .pred p;\n setp.ne.b32 p, %34, 0;\n"
      " wgmma.mma_async.sync.aligned.m64n64k32.f32.e4m3.e4m3 {%0,%1,%2,%3,%4,%5,%6,%7,%8,%9,%10,%11,%12,%13,%14,%15,%16,%17,%18,%19,%20,%21,%22,%23,%24,%25,%26,%27,%28,%29,%30,%31}, %32, %33, p, 1, 1;\n}"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]),
        "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]),
        "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]),
        "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31])
      : "l"(da), "l"(db), "r"(accumulate)
      : "memory");
}

// d = A · B (scale-d false: d is only written, so no instruction has to define it beforehand).
template <int NTOK>
__device__ __forceinline__ void wgmma_e4m3_first(float (&d)[NTOK / 2], uint64_t da, uint64_t db);
template <>
__device__ __forceinline__ void wgmma_e4m3_first<8>(float (&d)[4], uint64_t da, uint64_t db) {
  asm volatile(
      "{\n .reg .pred p;\n setp.ne.b32 p, 0, 0;\n"
      " wgmma.mma_async.sync.aligned.m64n8k32.f32.e4m3.e4m3 {%0,%1,%2,%3}, %4, %5, p, 1, 1;\n}"
      : "=f"(d[0]), "=f"(d[1]), "=f"(d[2]), "=f"(d[3])
      : "l"(da), "l"(db)
      : "memory");
}
template <>
__device__ __forceinline__ void wgmma_e4m3_first<16>(float (&d)[8], uint64_t da, uint64_t db) {
  asm volatile(
      "{\n .reg .pred p;\n setp.ne.b32 p, 0, 0;\n"
      " wgmma.mma_async.sync.aligned.m64n16k32.f32.e4m3.e4m3 {%0,%1,%2,%3,%4,%5,%6,%7}, %8, %9, p, 1, 1;\n}"
      : "=f"(d[0]), "=f"(d[1]), "=f"(d[2]), "=f"(d[3]), "=f"(d[4]), "=f"(d[5]), "=f"(d[6]), "=f"(d[7])
      : "l"(da), "l"(db)
      : "memory");
}

template <>
__device__ __forceinline__ void wgmma_e4m3_first<32>(float (&d)[16], uint64_t da, uint64_t db) {
  asm volatile(
      "{\n .reg .pred p;\n setp.ne.b32 p, 0, 0;\n"
      " wgmma.mma_async.sync.aligned.m64n32k32.f32.e4m3.e4m3 {%0,%1,%2,%3,%4,%5,%6,%7,%8,%9,%10,%11,%12,%13,%14,%15}, %16, %17, p, 1, 1;\n}"
      : "=f"(d[0]), "=f"(d[1]), "=f"(d[2]), "=f"(d[3]), "=f"(d[4]), "=f"(d[5]), "=f"(d[6]), "=f"(d[7]),
        "=f"(d[8]), "=f"(d[9]), "=f"(d[10]), "=f"(d[11]), "=f"(d[12]), "=f"(d[13]), "=f"(d[14]), "=f"(d[15])
      : "l"(da), "l"(db)
      : "memory");
}
template <>
__device__ __forceinline__ void wgmma_e4m3_first<64>(float (&d)[32], uint64_t da, uint64_t db) {
  asm volatile(
      "{\n .reg .pred p;\n setp.ne.b32 p, 0, 0;\n"
      " wgmma.mma_async.sync.aligned.m64n64k32.f32.e4m3.e4m3 {%0,%1,%2,%3,%4,%5,%6,%7,%8,%9,%10,%11,%12,%13,%14,%15,%16,%17,%18,%19,%20,%21,%22,%23,%24,%25,%26,%27,%28,%29,%30,%31}, %32, %33, p, 1, 1;\n}"
      : "=f"(d[0]), "=f"(d[1]), "=f"(d[2]), "=f"(d[3]), "=f"(d[4]), "=f"(d[5]), "=f"(d[6]), "=f"(d[7]),
        "=f"(d[8]), "=f"(d[9]), "=f"(d[10]), "=f"(d[11]), "=f"(d[12]), "=f"(d[13]), "=f"(d[14]), "=f"(d[15]),
        "=f"(d[16]), "=f"(d[17]), "=f"(d[18]), "=f"(d[19]), "=f"(d[20]), "=f"(d[21]), "=f"(d[22]), "=f"(d[23]),
        "=f"(d[24]), "=f"(d[25]), "=f"(d[26]), "=f"(d[27]), "=f"(d[28]), "=f"(d[29]), "=f"(d[30]), "=f"(d[31])
      : "l"(da), "l"(db)
      : "memory");
}

template <int NTOK>
__device__ __forceinline__ void store_out(const SmallMParams& p, const float (&v)[NTOK / 2], int row0, int warp,
                                          int lane) {
#pragma unroll
  for (int e = 0; e < NTOK / 2; ++e) {
    const int row = row0 + frag_row(warp, lane, e), tok = frag_tok(lane, e);
    if (row < p.N && tok < p.M) {
      float out = v[e];
      if (!p.block_scaled) {
        out *= __ldg(p.wscale + row);
        if (p.act_scaled) out *= __ldg(p.sx + tok);
      }
      if (p.y16) p.y16[int64_t(tok) * p.N + row] = __float2bfloat16_rn(out);
      else p.y[int64_t(tok) * p.N + row] = out;
    }
  }
}

template <int NTOK, int ST>
__global__ void __launch_bounds__(kThreads) fp8_wgmma_kernel(const __grid_constant__ CUtensorMap wmap,
                                                             const __grid_constant__ CUtensorMap xmap,
                                                             const SmallMParams p, const int promote_k32) {
  constexpr int NR = NTOK / 2;  // accumulator registers per thread
  constexpr uint32_t kStageTx = kWTileBytes + kXTileBytes<NTOK>;
  extern __shared__ uint8_t smem_raw[];
  // Stages: [ST] weight tiles, then [ST] activation tiles (all 1024-byte aligned), then barriers.
  const uint32_t base = (smem_u32(smem_raw) + 1023) & ~1023u;
  const uint32_t wtile0 = base, xtile0 = base + ST * kWTileBytes;
  const uint32_t full0 = xtile0 + ST * kXTileBytes<NTOK>, empty0 = full0 + ST * 8;

  // CTA = (64-row tile, K split); the split owns K groups [u0, u0 + n).
  const int S = p.ksplit, tile = int(blockIdx.x) / S, split = int(blockIdx.x) - tile * S;
  const int u0 = int(int64_t(split) * p.KG / S), n = int(int64_t(split + 1) * p.KG / S) - u0;
  const int row0 = tile * kTileRows;
  // Warp index through a shuffle: provably warp-uniform, so ptxas does not treat the role branches
  // as divergent (it serializes wgmma across divergent paths).
  const int warp = __shfl_sync(0xffffffffu, int(threadIdx.x) >> 5, 0), lane = int(threadIdx.x) & 31;

  if (threadIdx.x == kConsumers) {
    for (int s = 0; s < ST; ++s) {
      mbar_init(full0 + 8 * s, 1);
      mbar_init(empty0 + 8 * s, kConsumers / 32);  // one arrival per consumer warp
    }
    asm volatile("fence.mbarrier_init.release.cluster;" ::: "memory");
    asm volatile("fence.proxy.async.shared::cta;" ::: "memory");
  }
  __syncthreads();
  // The next kernel (PDL) may launch now: it prefetches only read-only data before waiting for us.
  griddep_launch_dependents();

  if (warp == kConsumers / 32) {  // producer warp: one thread issues every copy
    if (lane == 0) {
      prefetch_tensormap(&wmap);
      prefetch_tensormap(&xmap);
      const int pre = n < ST ? n : ST;
      // Weights first: they do not depend on the preceding kernel (PDL), activations do.
      for (int j = 0; j < pre; ++j) {
        mbar_expect_tx(full0 + 8 * j, kStageTx);
        tma_load_2d(wtile0 + j * kWTileBytes, &wmap, (u0 + j) * 128, row0, full0 + 8 * j);
      }
      griddep_wait();
      for (int j = 0; j < pre; ++j) tma_load_2d(xtile0 + j * kXTileBytes<NTOK>, &xmap, (u0 + j) * 128, 0, full0 + 8 * j);
      for (int j = ST; j < n; ++j) {
        const int s = j % ST;
        mbar_wait(empty0 + 8 * s, uint32_t((j / ST - 1) & 1));
        mbar_expect_tx(full0 + 8 * s, kStageTx);
        tma_load_2d(wtile0 + s * kWTileBytes, &wmap, (u0 + j) * 128, row0, full0 + 8 * s);
        tma_load_2d(xtile0 + s * kXTileBytes<NTOK>, &xmap, (u0 + j) * 128, 0, full0 + 8 * s);
      }
    }
    return;
  }

  // ---- consumer warpgroup
  griddep_wait();  // activations and their scales come from the preceding pre-kernel
  float acc[NR];
#pragma unroll
  for (int e = 0; e < NR; ++e) acc[e] = 0.f;
  const float* sw_row = p.block_scaled ? p.wscale + int64_t(row0 / 128) * p.wscale_ld : nullptr;

  for (int j = 0; j < n; ++j) {
    const int s = j % ST, g = u0 + j;
    // Scales of this group, loaded before the MMAs so their latency overlaps them.
    float sc[NR];
    if (p.block_scaled) {
      const float sw = __ldg(sw_row + g);
#pragma unroll
      for (int e = 0; e < NR; e += 2) {
        const int t = frag_tok(lane, e);
        sc[e] = (e & 2) ? sc[e - 2] : t < p.M ? sw * __ldg(p.sx + int64_t(g) * p.sx_ld + t) : 0.f;
        sc[e + 1] = (e & 2) ? sc[e - 1] : t + 1 < p.M ? sw * __ldg(p.sx + int64_t(g) * p.sx_ld + t + 1) : 0.f;
      }
    }
    mbar_wait(full0 + 8 * s, uint32_t((j / ST) & 1));
    __syncwarp();
    // 4 wgmma k32 (+32 bytes per step inside the swizzle atom): chained into one accumulator, or
    // (promote_k32, NTOK ≤ 16 only: registers) each into its own, summed in fp32 (diagnostic of the
    // FP8 accumulation precision).
    constexpr int kD = NTOK <= 16 ? 4 : 1;
    float d[kD][NR];
    const uint64_t da = sw128_desc(wtile0 + s * kWTileBytes), db = sw128_desc(xtile0 + s * kXTileBytes<NTOK>);
    wgmma_fence();
    if constexpr (kD == 4) {
      if (promote_k32) {
#pragma unroll
        for (int kk = 0; kk < 4; ++kk) wgmma_e4m3_first<NTOK>(d[kk], da + 2 * kk, db + 2 * kk);
      } else {
        wgmma_e4m3_first<NTOK>(d[0], da, db);
#pragma unroll
        for (int kk = 1; kk < 4; ++kk) wgmma_e4m3<NTOK>(d[0], da + 2 * kk, db + 2 * kk, 1);
      }
    } else {
      wgmma_e4m3_first<NTOK>(d[0], da, db);
#pragma unroll
      for (int kk = 1; kk < 4; ++kk) wgmma_e4m3<NTOK>(d[0], da + 2 * kk, db + 2 * kk, 1);
    }
    wgmma_commit();
    wgmma_wait0();
#pragma unroll
    for (int q = 0; q < kD; ++q)
#pragma unroll
      for (int e = 0; e < NR; ++e) asm volatile("" : "+f"(d[q][e])::"memory");
    __syncwarp();
    if (lane == 0) mbar_arrive(empty0 + 8 * s);  // this warp is done with the stage
    float t[NR];
#pragma unroll
    for (int e = 0; e < NR; ++e) {
      if constexpr (kD == 4) t[e] = promote_k32 ? (d[0][e] + d[1][e]) + (d[2][e] + d[3][e]) : d[0][e];
      else t[e] = d[0][e];
    }
    if (p.block_scaled) {
#pragma unroll
      for (int e = 0; e < NR; ++e) acc[e] = fmaf(t[e], sc[e], acc[e]);
    } else {
#pragma unroll
      for (int e = 0; e < NR; ++e) acc[e] += t[e];
    }
  }

  if (wg_split_k_finish<NR>(p, acc, tile, split)) store_out<NTOK>(p, acc, row0, warp, lane);
}

// ---- host side ----------------------------------------------------------------------------------
using EncodeTiledFn = CUresult (*)(CUtensorMap*, CUtensorMapDataType, cuuint32_t, void*, const cuuint64_t*,
                                   const cuuint64_t*, const cuuint32_t*, const cuuint32_t*, CUtensorMapInterleave,
                                   CUtensorMapSwizzle, CUtensorMapL2promotion, CUtensorMapFloatOOBfill);

EncodeTiledFn encode_fn() {
  static const EncodeTiledFn fn = [] {
    void* f = nullptr;
    cudaDriverEntryPointQueryResult q{};
    GDN_CUDA_CHECK(cudaGetDriverEntryPointByVersion("cuTensorMapEncodeTiled", &f, 12000, cudaEnableDefault, &q));
    if (f == nullptr || q != cudaDriverEntryPointSuccess) throw CudaError("TMA: cuTensorMapEncodeTiled unavailable");
    return reinterpret_cast<EncodeTiledFn>(f);
  }();
  return fn;
}

template <int NTOK, int ST>
struct WgInstance {
  static int occupancy() {
    static const int occ = [] {
      GDN_CUDA_CHECK(cudaFuncSetAttribute(fp8_wgmma_kernel<NTOK, ST>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                          int(kSmemBytes<NTOK, ST>)));
      int k = 0;
      GDN_CUDA_CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&k, fp8_wgmma_kernel<NTOK, ST>, kThreads,
                                                                   kSmemBytes<NTOK, ST>));
      return std::max(k, 1);
    }();
    return occ;
  }
  static void launch(int blocks, const CUtensorMap& wm, const CUtensorMap& xm, const SmallMParams& p, int promote_k32,
                     cudaStream_t s, bool pdl) {
    occupancy();  // sets the shared-memory attribute once
    launch_pdl(fp8_wgmma_kernel<NTOK, ST>, dim3(unsigned(blocks)), dim3(kThreads), kSmemBytes<NTOK, ST>, s, pdl, wm, xm,
               p, promote_k32);
  }
};

template <typename Fn>
void with_wg_instance(int ntok, int stages, Fn&& fn) {
  if (ntok == 8) {
    if (stages == 4) return fn(WgInstance<8, 4>{});
    if (stages == 6) return fn(WgInstance<8, 6>{});
    if (stages == 8) return fn(WgInstance<8, 8>{});
  } else if (ntok == 16) {
    if (stages == 4) return fn(WgInstance<16, 4>{});
    if (stages == 6) return fn(WgInstance<16, 6>{});
    if (stages == 8) return fn(WgInstance<16, 8>{});
  } else if (ntok == 32) {
    if (stages == 4) return fn(WgInstance<32, 4>{});
    if (stages == 6) return fn(WgInstance<32, 6>{});
    if (stages == 8) return fn(WgInstance<32, 8>{});
  } else if (ntok == 64) {
    if (stages == 4) return fn(WgInstance<64, 4>{});
    if (stages == 6) return fn(WgInstance<64, 6>{});
    if (stages == 8) return fn(WgInstance<64, 8>{});
  }
  throw CudaError("fp8 wgmma: no instance for " + std::to_string(ntok) + " tokens, " + std::to_string(stages) +
                  " stages");
}

// GDN_FP8_WGMMA_STAGES (4, 6 or 8) and GDN_FP8_WGMMA_CTAS10 (CTAs per SM × 10 the K split aims
// for) override the defaults below, for A/B runs. H100 FP8 steps at batch 1 / 8 / 64 (ms): 4 stages
// and 1.9 CTAs per SM 11.24 / 12.69 / 22.84; 6 stages 11.52 / 13.03 / 23.65; 8 stages 11.40 /
// 13.00 / 24.38; 3.9 CTAs per SM 11.52 / 12.74 / 23.37 — deeper rings, which helped the NVFP4 GEMV,
// do not help here.
int env_int(const char* name, int fallback) {
  const char* e = std::getenv(name);
  return e ? std::atoi(e) : fallback;
}
int stages_of() {
  static const int env = env_int("GDN_FP8_WGMMA_STAGES", 4);
  if (g_tuning.stages > 0) return g_tuning.stages;
  return env == 6 || env == 8 ? env : 4;
}

int ntok_of(int M) { return M <= 8 ? 8 : M <= 16 ? 16 : M <= 32 ? 32 : 64; }

// Largest K split: ≤ 32 slots summed by the last CTA, ≤ 4096·8/ntok CTAs in all (bounds the
// partials' workspace at 8 MiB for every token count), every split ≥ 1 K group.
int max_split(int64_t rtiles, int64_t kg, int ntok) {
  return int(std::max<int64_t>(1, std::min<int64_t>({kg, 32, (4096 * 8 / ntok) / std::max<int64_t>(rtiles, 1)})));
}

}  // namespace

CUtensorMap make_tma_map(const void* ptr, int64_t rows, int64_t cols, int64_t ld, int box_rows, int box_cols,
                         bool swizzle128) {
  CUtensorMap m;
  std::memset(&m, 0, sizeof(m));
  const cuuint64_t dims[2] = {cuuint64_t(cols), cuuint64_t(rows)};
  const cuuint64_t strides[1] = {cuuint64_t(ld)};
  const cuuint32_t box[2] = {cuuint32_t(box_cols), cuuint32_t(box_rows)};
  const cuuint32_t estr[2] = {1, 1};
  const CUresult r = encode_fn()(&m, CU_TENSOR_MAP_DATA_TYPE_UINT8, 2, const_cast<void*>(ptr), dims, strides, box, estr,
                                 CU_TENSOR_MAP_INTERLEAVE_NONE,
                                 swizzle128 ? CU_TENSOR_MAP_SWIZZLE_128B : CU_TENSOR_MAP_SWIZZLE_NONE,
                                 CU_TENSOR_MAP_L2_PROMOTION_L2_256B, CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE);
  if (r != CUDA_SUCCESS) throw CudaError("TMA: cuTensorMapEncodeTiled failed (" + std::to_string(int(r)) + ")");
  return m;
}

Nvfp4WeightMaps nvfp4_weight_maps(const DeviceLinear& w) {
  const int64_t code_ld = w.cols_pad / 2, scale_ld = w.cols_pad / 16;
  return {make_tma_map(w.weight, w.rows_pad, code_ld, code_ld, kWgRows, 128, true),
          make_tma_map(w.block_scales, w.rows_pad, scale_ld, scale_ld, kWgRows, 16, false)};
}

void set_fp8_wgmma_tuning(const Fp8WgmmaTuning& t) { g_tuning = t; }
void set_fp8_wgmma_mode(int mode) { g_mode = mode; }

bool fp8_wgmma_enabled() {
  if (g_mode >= 0) return g_mode == 1;
  static const bool on = [] {
    const char* e = std::getenv("GDN_FP8_WGMMA");
    return e ? std::strcmp(e, "0") != 0 : kFp8WgmmaDefaultOn;
  }();
  static const bool hopper = device_info().cc_major == 9;
  return on && hopper;
}

bool fp8_wgmma_applies(const DeviceLinear& w, int M, bool requested) {
  if (small_fmt(w) != SmFmt::Fp8Fp8 || M < 1 || M > kFp8WgmmaMaxTokens) return false;
  if (!requested) return fp8_wgmma_enabled();
  static const bool env_off = [] {
    const char* e = std::getenv("GDN_FP8_WGMMA");
    return e && std::strcmp(e, "0") == 0;
  }();
  static const bool hopper = device_info().cc_major == 9;
  return g_mode != 0 && !env_off && hopper;
}

Fp8WgmmaPlan plan_fp8_wgmma(const DeviceLinear& w, int M) {
  Fp8WgmmaPlan pl;
  pl.ntok = ntok_of(M);
  pl.stages = stages_of();
  pl.promote_k32 = g_tuning.promote_k32 > 0 && pl.ntok <= 16 ? 1 : 0;
  pl.rtiles = int((w.rows_pad + kTileRows - 1) / kTileRows);
  pl.KG = int(w.cols_pad / 128);
  const int smax = max_split(pl.rtiles, pl.KG, pl.ntok);
  if (g_tuning.ksplit > 0) {
    pl.ksplit = std::min(g_tuning.ksplit, smax);
  } else {
    // The fewest K splits giving ≥ 1.9 CTAs per SM: long CTAs amortize the ring's fill and the
    // split-K slots, ~2 per SM keep enough bytes in flight (H100 sweep: gate|up and in_proj best
    // unsplit, down_proj 4 splits, k|v_proj 8).
    static const int ctas10 = std::max(1, env_int("GDN_FP8_WGMMA_CTAS10", 19));
    const int64_t want = (ctas10 * int64_t(device_info().sm_count) + 9) / 10;
    pl.ksplit = int(std::clamp<int64_t>((want + pl.rtiles - 1) / pl.rtiles, 1, smax));
  }
  pl.blocks = pl.rtiles * pl.ksplit;
  return pl;
}

size_t fp8_wgmma_partial_bytes(const DeviceLinear& w, int M) {
  if (small_fmt(w) != SmFmt::Fp8Fp8 || M > kFp8WgmmaMaxTokens) return 0;
  // Sized for the largest split the planner may choose (independent of tuning and of the switch).
  const int ntok = ntok_of(M);
  const int64_t rtiles = (w.rows_pad + kTileRows - 1) / kTileRows, kg = w.cols_pad / 128;
  return size_t(rtiles) * size_t(max_split(rtiles, kg, ntok)) * size_t(ntok / 2) * kConsumers * 4;
}

void launch_fp8_wgmma(const DeviceLinear& w, const SmallMParams& p_in, cudaStream_t s, bool pdl) {
  if (p_in.M < 1 || p_in.M > kFp8WgmmaMaxTokens) throw CudaError("fp8 wgmma: M out of range");
  const Fp8WgmmaPlan pl = plan_fp8_wgmma(w, p_in.M);
  if (pl.rtiles > kMaxCounters) throw CudaError("fp8 wgmma: more row tiles than split-K counters");
  SmallMParams p = p_in;
  p.KG = pl.KG;
  p.rtiles = pl.rtiles;
  p.ksplit = pl.ksplit;
  const CUtensorMap wm = make_tma_map(w.weight, w.rows_pad, w.cols_pad, w.cols_pad, kTileRows, 128, true);
  const CUtensorMap xm = make_tma_map(p.x, p.M, w.cols_pad, p.ldx, pl.ntok, 128, true);
  with_wg_instance(pl.ntok, pl.stages,
                   [&](auto inst) { decltype(inst)::launch(pl.blocks, wm, xm, p, pl.promote_k32, s, pdl); });
}

}  // namespace gdn::cuda::detail
