// Hopper building blocks shared by the wgmma kernels (linear_wgmma.cu: FP8, linear_nvfp4_wgmma.cu:
// NVFP4, attention_prefill_wgmma.cu): mbarriers, TMA tile loads, SW128 shared-memory descriptors,
// BF16 wgmma, wgmma fences, the accumulator fragment layout, and the deterministic split-K and
// stream-K finishes.
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

// The same for an N-major ("transposed") operand: 64-element (128-byte) rows of N, 8 K-rows per
// 1024-byte atom (stride byte offset 1024), the next 64 N-elements `lbo` bytes further (leading byte
// offset). One 16-element K step of BF16 is 16 rows: +2048 bytes.
__device__ __forceinline__ uint64_t sw128_desc_mn(uint32_t saddr, uint32_t lbo) {
  return uint64_t((saddr & 0x3FFFF) >> 4) | (uint64_t(lbo >> 4) << 16) | (uint64_t(1024 >> 4) << 32) |
         (uint64_t(1) << 62);
}

__device__ __forceinline__ void wgmma_fence() { asm volatile("wgmma.fence.sync.aligned;" ::: "memory"); }
__device__ __forceinline__ void wgmma_commit() { asm volatile("wgmma.commit_group.sync.aligned;" ::: "memory"); }
__device__ __forceinline__ void wgmma_wait0() { asm volatile("wgmma.wait_group.sync.aligned 0;" ::: "memory"); }
__device__ __forceinline__ void wgmma_wait1() { asm volatile("wgmma.wait_group.sync.aligned 1;" ::: "memory"); }

// d += A[64×16 bf16] · B[16×N bf16] (both K-major in SW128 shared memory).
template <int NTOK>
__device__ __forceinline__ void wgmma_bf16(float (&d)[NTOK / 2], uint64_t da, uint64_t db);
template <>
__device__ __forceinline__ void wgmma_bf16<8>(float (&d)[4], uint64_t da, uint64_t db) {
  asm volatile("{\n .reg .pred p;\n setp.ne.b32 p, 1, 0;\n wgmma.mma_async.sync.aligned.m64n8k16.f32.bf16.bf16 {%0,%1,%2,%3}, %4, %5, p, 1, 1, 0, 0;\n}"
               : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
               : "l"(da), "l"(db)
               : "memory");
}
template <>
__device__ __forceinline__ void wgmma_bf16<16>(float (&d)[8], uint64_t da, uint64_t db) {
  asm volatile(
      "{\n .reg .pred p;\n setp.ne.b32 p, 1, 0;\n wgmma.mma_async.sync.aligned.m64n16k16.f32.bf16.bf16 {%0,%1,%2,%3,%4,%5,%6,%7}, %8, %9, p, 1, 1, 0, 0;\n}"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7])
      : "l"(da), "l"(db)
      : "memory");
}
template <>
__device__ __forceinline__ void wgmma_bf16<32>(float (&d)[16], uint64_t da, uint64_t db) {
  asm volatile(
      "{\n .reg .pred p;\n setp.ne.b32 p, 1, 0;\n wgmma.mma_async.sync.aligned.m64n32k16.f32.bf16.bf16 {%0,%1,%2,%3,%4,%5,%6,%7,%8,%9,%10,%11,%12,%13,%14,%15}, "
      "%16, %17, p, 1, 1, 0, 0;\n}"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]),
        "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15])
      : "l"(da), "l"(db)
      : "memory");
}
template <>
__device__ __forceinline__ void wgmma_bf16<64>(float (&d)[32], uint64_t da, uint64_t db) {
  asm volatile(
      "{\n .reg .pred p;\n setp.ne.b32 p, 1, 0;\n wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 {%0,%1,%2,%3,%4,%5,%6,%7,%8,%9,%10,%11,%12,%13,%14,%15,"
      "%16,%17,%18,%19,%20,%21,%22,%23,%24,%25,%26,%27,%28,%29,%30,%31}, %32, %33, p, 1, 1, 0, 0;\n}"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]),
        "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]),
        "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]),
        "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31])
      : "l"(da), "l"(db)
      : "memory");
}

// d[64×256] += A[64×16 bf16, registers] · B[16×256 bf16] (B N-major in SW128 shared memory).
__device__ __forceinline__ void wgmma_m64n256k16_rs(float (&d)[128], const uint32_t (&a)[4], uint64_t db) {
  asm volatile(
      "{\n .reg .pred p;\n setp.ne.b32 p, 1, 0;\n wgmma.mma_async.sync.aligned.m64n256k16.f32.bf16.bf16 "
      "{%0,%1,%2,%3,%4,%5,%6,%7,%8,%9,%10,%11,%12,%13,%14,%15,%16,%17,%18,%19,%20,%21,%22,%23,%24,%25,%26,%27,%28,%29,%30,%31,%32,%33,%34,%35,%36,%37,%38,%39,%40,%41,%42,%43,%44,%45,%46,%47,%48,%49,%50,%51,%52,%53,%54,%55,%56,%57,%58,%59,%60,%61,%62,%63,%64,%65,%66,%67,%68,%69,%70,%71,%72,%73,%74,%75,%76,%77,%78,%79,%80,%81,%82,%83,%84,%85,%86,%87,%88,%89,%90,%91,%92,%93,%94,%95,%96,%97,%98,%99,%100,%101,%102,%103,%104,%105,%106,%107,%108,%109,%110,%111,%112,%113,%114,%115,%116,%117,%118,%119,%120,%121,%122,%123,%124,%125,%126,%127}, "
      "{%128,%129,%130,%131}, %132, p, 1, 1, 1;\n}"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]),
        "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]),
        "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]),
        "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]),
        "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]),
        "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]),
        "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]),
        "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63]),
        "+f"(d[64]), "+f"(d[65]), "+f"(d[66]), "+f"(d[67]), "+f"(d[68]), "+f"(d[69]), "+f"(d[70]), "+f"(d[71]),
        "+f"(d[72]), "+f"(d[73]), "+f"(d[74]), "+f"(d[75]), "+f"(d[76]), "+f"(d[77]), "+f"(d[78]), "+f"(d[79]),
        "+f"(d[80]), "+f"(d[81]), "+f"(d[82]), "+f"(d[83]), "+f"(d[84]), "+f"(d[85]), "+f"(d[86]), "+f"(d[87]),
        "+f"(d[88]), "+f"(d[89]), "+f"(d[90]), "+f"(d[91]), "+f"(d[92]), "+f"(d[93]), "+f"(d[94]), "+f"(d[95]),
        "+f"(d[96]), "+f"(d[97]), "+f"(d[98]), "+f"(d[99]), "+f"(d[100]), "+f"(d[101]), "+f"(d[102]), "+f"(d[103]),
        "+f"(d[104]), "+f"(d[105]), "+f"(d[106]), "+f"(d[107]), "+f"(d[108]), "+f"(d[109]), "+f"(d[110]), "+f"(d[111]),
        "+f"(d[112]), "+f"(d[113]), "+f"(d[114]), "+f"(d[115]), "+f"(d[116]), "+f"(d[117]), "+f"(d[118]), "+f"(d[119]),
        "+f"(d[120]), "+f"(d[121]), "+f"(d[122]), "+f"(d[123]), "+f"(d[124]), "+f"(d[125]), "+f"(d[126]), "+f"(d[127])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(db)
      : "memory");
}

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

// Shared-memory loads at a 32-bit shared address (the stream-K NVFP4 kernels' register decode).
__device__ __forceinline__ uint4 lds128(uint32_t a) {
  uint4 v;
  asm volatile("ld.shared.v4.u32 {%0,%1,%2,%3}, [%4];" : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w) : "r"(a));
  return v;
}
__device__ __forceinline__ uint32_t lds32(uint32_t a) {
  uint32_t v;
  asm volatile("ld.shared.u32 %0, [%1];" : "=r"(v) : "r"(a));
  return v;
}

// Stream-K (linear_nvfp4_wgmma.cu, linear_nvfp4_gemv.cu): the grid's G CTAs split the I flattened
// (row tile, K group) iterations; CTA c takes [c·I/G, (c+1)·I/G), and iteration i belongs to
// sk_owner(i).
__device__ __forceinline__ int64_t sk_start(int64_t c, int64_t I, int64_t G) { return c * I / G; }
__device__ __forceinline__ int64_t sk_owner(int64_t i, int64_t I, int64_t G) { return ((i + 1) * G - 1) / I; }

// End of one stream-K segment [seg, seg_end) of row tile `tile` (iterations t0 = tile·KG .. t0 + KG),
// for the 128 consumer threads (tid 0..127) holding its accumulators v. Returns true when this CTA must store v: the
// segment covered the whole tile, or it was the tile's last contributor, which has summed every
// contributor's partial in CTA order (deterministic, no atomics on y) and reset the tile's counter.
// A CTA holds at most two segments that are partial (its first and its last), so its partials go to
// slot 2·blockIdx.x (the segment starting at its first iteration i0) or 2·blockIdx.x + 1.
// One fence per CTA, not per thread: the barrier orders every consumer's stores before thread 0's
// fence, which is cumulative (release before the counter, acquire after it).
template <int NR>
__device__ __forceinline__ bool sk_segment_finish(const SmallMParams& p, float (&v)[NR], int tid, int tile, int64_t t0,
                                                  int64_t seg, int64_t seg_end, int64_t i0, int64_t I, int64_t G) {
  if (seg == t0 && seg_end == t0 + p.KG) return true;
  __shared__ int last_flag;
  float* mine = p.partial + (int64_t(blockIdx.x) * 2 + (seg == i0 ? 0 : 1)) * NR * kWgConsumers;
#pragma unroll
  for (int e = 0; e < NR; ++e) mine[e * kWgConsumers + tid] = v[e];
  wg_consumer_bar();
  const int64_t wf = sk_owner(t0, I, G), wl = sk_owner(t0 + p.KG - 1, I, G);
  if (tid == 0) {
    __threadfence();
    last_flag = atomicAdd(p.counters + tile, 1) == int(wl - wf);
    __threadfence();
  }
  wg_consumer_bar();
  const bool last = last_flag;
  if (last) {
#pragma unroll
    for (int e = 0; e < NR; ++e) v[e] = 0.f;
    for (int64_t c = wf; c <= wl; ++c) {
      const float* src = p.partial + (c * 2 + (sk_start(c, I, G) >= t0 ? 0 : 1)) * NR * kWgConsumers;
#pragma unroll
      for (int e = 0; e < NR; ++e) v[e] += __ldcg(src + e * kWgConsumers + tid);
    }
    if (tid == 0) p.counters[tile] = 0;
  }
  wg_consumer_bar();  // last_flag is read before the next segment's atomic may overwrite it
  return last;
}

// Host: 2-D byte tensor [rows][cols] (row stride ld bytes) read in boxes of [box_rows][box_cols
// bytes], with the 128-byte swizzle (box_cols = 128) or none; rows past `rows` read as zeros.
CUtensorMap make_tma_map(const void* ptr, int64_t rows, int64_t cols, int64_t ld, int box_rows, int box_cols,
                         bool swizzle128);
// Host: an NVFP4 weight's TMA maps for the stream-K kernels: codes [rows_pad][cols_pad / 2] in
// [64 rows × 128 B] boxes with the 128-byte swizzle, block scales [rows_pad][cols_pad / 16] in
// [64 × 16 B] boxes.
struct Nvfp4WeightMaps {
  CUtensorMap codes, scales;
};
Nvfp4WeightMaps nvfp4_weight_maps(const DeviceLinear& w);

}  // namespace gdn::cuda::detail
