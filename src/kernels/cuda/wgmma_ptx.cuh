// Hopper building blocks shared by the wgmma small-M kernels (linear_wgmma.cu: FP8,
// linear_nvfp4_wgmma.cu: NVFP4): mbarriers, TMA tile loads, SW128 shared-memory descriptors, wgmma
// fences, the accumulator fragment layout, and the deterministic split-K finish.
#pragma once

#include <cuda.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "kernels/cuda/linear_internal.h"

namespace gdn::cuda::detail {

__device__ __forceinline__ uint32_t smem_u32(const void* p) { return uint32_t(__cvta_generic_to_shared(p)); }

__device__ __forceinline__ void mbar_init(uint32_t bar, uint32_t count) {
  asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;" ::"r"(bar), "r"(count) : "memory");
}
__device__ __forceinline__ void mbar_expect_tx(uint32_t bar, uint32_t bytes) {
  asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;" ::"r"(bar), "r"(bytes) : "memory");
}
__device__ __forceinline__ void mbar_arrive(uint32_t bar) {
  asm volatile("mbarrier.arrive.shared::cta.b64 _, [%0];" ::"r"(bar) : "memory");
}
// Spin inside one asm block: a C++ loop would be a divergent path to ptxas, which then serializes
// the wgmma in flight around it.
__device__ __forceinline__ void mbar_wait(uint32_t bar, uint32_t parity) {
  asm volatile(
      "{\n .reg .pred p;\n WAIT_%=:\n"
      " mbarrier.try_wait.parity.shared::cta.b64 p, [%0], %1;\n"
      " @!p bra WAIT_%=;\n}" ::"r"(bar),
      "r"(parity)
      : "memory");
}
// 2-D TMA tile load (coordinates: c0 = K byte, c1 = row) completing on `bar`.
__device__ __forceinline__ void tma_load_2d(uint32_t dst, const CUtensorMap* map, int c0, int c1, uint32_t bar) {
  asm volatile(
      "cp.async.bulk.tensor.2d.shared::cluster.global.tile.mbarrier::complete_tx::bytes [%0], [%1, {%2, %3}], [%4];" ::"r"(
          dst),
      "l"(reinterpret_cast<uint64_t>(map)), "r"(c0), "r"(c1), "r"(bar)
      : "memory");
}
__device__ __forceinline__ void prefetch_tensormap(const CUtensorMap* map) {
  asm volatile("prefetch.tensormap [%0];" ::"l"(reinterpret_cast<uint64_t>(map)) : "memory");
}

// wgmma shared-memory matrix descriptor, K-major with the 128-byte swizzle: start address >> 4
// (bits 0-13), leading byte offset unused for swizzled K-major (0), stride byte offset = 1024 bytes
// between 8-row atoms (bits 32-45, >> 4), base offset 0 (atoms 1024-byte aligned), layout type 1 =
// SWIZZLE_128B (bits 62-63). +2 advances the start by 32 bytes (one k32 FP8 / k16 BF16 step).
__device__ __forceinline__ uint64_t sw128_desc(uint32_t saddr) {
  return uint64_t((saddr & 0x3FFFF) >> 4) | (uint64_t(1024 >> 4) << 32) | (uint64_t(1) << 62);
}

__device__ __forceinline__ void wgmma_fence() { asm volatile("wgmma.fence.sync.aligned;" ::: "memory"); }
__device__ __forceinline__ void wgmma_commit() { asm volatile("wgmma.commit_group.sync.aligned;" ::: "memory"); }
__device__ __forceinline__ void wgmma_wait0() { asm volatile("wgmma.wait_group.sync.aligned 0;" ::: "memory"); }
__device__ __forceinline__ void wgmma_wait1() { asm volatile("wgmma.wait_group.sync.aligned 1;" ::: "memory"); }

constexpr int kWgRows = 64;        // wgmma M: weight rows of a tile
constexpr int kWgConsumers = 128;  // the MMA warpgroup

// Named barrier of the MMA warpgroup (threads 0..127) only.
__device__ __forceinline__ void wg_consumer_bar() { asm volatile("bar.sync 1, %0;" ::"n"(kWgConsumers) : "memory"); }

// Accumulator element e of a consumer thread: D fragment of wgmma (per warp 16 rows; rows g, g+8;
// columns 2·tq, 2·tq+1, then +8 per further n8 block).
__device__ __forceinline__ int frag_row(int warp, int lane, int e) { return warp * 16 + (lane >> 2) + ((e & 2) ? 8 : 0); }
__device__ __forceinline__ int frag_tok(int lane, int e) { return (e >> 2) * 8 + 2 * (lane & 3) + (e & 1); }

// K split: each split writes its [64 × N] accumulator to its slot of the tile; the last CTA of the
// tile (per-tile counter) sums the slots in split order — deterministic, no atomics on y — and resets
// the counter. Returns true in the CTA that must store acc (then holding the tile's total). Called
// by the 128 consumer threads.
template <int NR>
__device__ __forceinline__ bool wg_split_k_finish(const SmallMParams& p, float (&acc)[NR], int tile, int split) {
  const int S = p.ksplit;
  if (S == 1) return true;
  __shared__ int last_flag;
  const int tid = int(threadIdx.x);
  float* slots = p.partial + int64_t(tile) * S * NR * kWgConsumers;
#pragma unroll
  for (int e = 0; e < NR; ++e) slots[(int64_t(split) * NR + e) * kWgConsumers + tid] = acc[e];
  __threadfence();
  wg_consumer_bar();
  if (tid == 0) last_flag = atomicAdd(p.counters + tile, 1) == S - 1;
  wg_consumer_bar();
  if (!last_flag) return false;
  __threadfence();
#pragma unroll
  for (int e = 0; e < NR; ++e) acc[e] = 0.f;
  constexpr int kU = NR <= 8 ? 4 : 1;  // slots' loads in flight (NR of them each)
  for (int s0 = 0; s0 < S; s0 += kU) {
    float part[kU][NR];
#pragma unroll
    for (int u = 0; u < kU; ++u)
#pragma unroll
      for (int e = 0; e < NR; ++e)
        part[u][e] = s0 + u < S ? __ldcg(slots + (int64_t(s0 + u) * NR + e) * kWgConsumers + tid) : 0.f;
#pragma unroll
    for (int u = 0; u < kU; ++u)
#pragma unroll
      for (int e = 0; e < NR; ++e) acc[e] += part[u][e];
  }
  if (tid == 0) p.counters[tile] = 0;
  return true;
}

// Host: 2-D byte tensor [rows][cols] (row stride ld bytes) read in boxes of [box_rows][box_cols
// bytes], with the 128-byte swizzle (box_cols = 128) or none; rows past `rows` read as zeros.
CUtensorMap make_tma_map(const void* ptr, int64_t rows, int64_t cols, int64_t ld, int box_rows, int box_cols,
                         bool swizzle128);

}  // namespace gdn::cuda::detail
