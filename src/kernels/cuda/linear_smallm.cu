// Small-M linear kernels (decode, M ≤ 64 tokens per launch): stream the weight once at memory
// bandwidth and do the math on tensor cores with mma.sync. Two schedules share the per-K-group
// math (compute_group): the persistent stream-K kernel described here, and the non-persistent
// decode kernel further down (M ≤ 8, and narrow NVFP4 weights up to 16; see use_decode_kernel).
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

namespace gdn::cuda::detail {

namespace {

constexpr int kWarps = 4;  // warps per CTA (the schedule is per warp; CTAs only package them)

__device__ __forceinline__ uint32_t word(const uint4& v, int i) {
  return i == 0 ? v.x : i == 1 ? v.y : i == 2 ? v.z : v.w;
}

__device__ __forceinline__ uint4 ld_act(const void* p) { return __ldg(static_cast<const uint4*>(p)); }

__device__ __forceinline__ void mma_e4m3(float (&d)[4], uint32_t a0, uint32_t a1, uint32_t a2, uint32_t a3,
                                         uint32_t b0, uint32_t b1) {
  asm("mma.sync.aligned.m16n8k32.row.col.f32.e4m3.e4m3.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
      "{%0,%1,%2,%3};"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
}
__device__ __forceinline__ void mma_bf16(float (&d)[4], uint32_t a0, uint32_t a1, uint32_t a2, uint32_t a3,
                                         uint32_t b0, uint32_t b1) {
  asm("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
      "{%0,%1,%2,%3};"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
}

// One K group (128 weight bytes per row) of the MT×2 rows a thread touches: chunk c at 64·c + 16·tq.
template <int MT>
struct WFrag {
  uint4 w[MT][2][2];  // [m-tile][row g / g+8][chunk]
  uint32_t sc[MT][2]; // NVFP4 block scales: bytes (chunk0 lo, chunk0 hi, chunk1 lo, chunk1 hi)
};

// Activations of token `tok` (< M) for chunk c of group g, as 32-bit words in the permuted K order.
template <SmFmt F>
struct ActWords {
  static constexpr int n = F == SmFmt::Nvfp4 ? 16 : F == SmFmt::Fp8Bf16 ? 8 : 4;
  uint32_t v[n];
};
// Bytes of activations per token and K group, and per thread within a chunk.
template <SmFmt F>
constexpr int kActGroupBytes = F == SmFmt::Fp8Fp8 ? 128 : F == SmFmt::Bf16 ? 128 : F == SmFmt::Fp8Bf16 ? 256 : 512;

// Row pointer of token `tok` at this thread's position inside a chunk (nullptr past the last token).
template <SmFmt F>
__device__ __forceinline__ const uint8_t* act_row(const SmallMParams& p, int tok, int tq) {
  if (tok >= p.M) return nullptr;
  constexpr int elem = F == SmFmt::Fp8Fp8 ? 1 : 2;
  return static_cast<const uint8_t*>(p.x) + (int64_t(tok) * p.ldx) * elem + (kActGroupBytes<F> / 8) * tq;
}
template <SmFmt F>
__device__ __forceinline__ void load_act_row(ActWords<F>& a, const uint8_t* row, int g, int c) {
  if (row == nullptr) {
#pragma unroll
    for (int i = 0; i < ActWords<F>::n; ++i) a.v[i] = 0;
    return;
  }
  const uint8_t* q = row + int64_t(g) * kActGroupBytes<F> + c * (kActGroupBytes<F> / 2);
#pragma unroll
  for (int i = 0; i < ActWords<F>::n / 4; ++i) {
    const uint4 u = ld_act(q + 16 * i);
    a.v[4 * i] = u.x, a.v[4 * i + 1] = u.y, a.v[4 * i + 2] = u.z, a.v[4 * i + 3] = u.w;
  }
}
template <SmFmt F>
__device__ __forceinline__ void load_act(ActWords<F>& a, const SmallMParams& p, int tok, int g, int c, int tq) {
  load_act_row<F>(a, act_row<F>(p, tok, tq), g, c);
}

// A fragment words of one row and chunk, in the MMA's k order (pairs of BF16 or quads of E4M3).
template <SmFmt F>
struct RowWords {
  static constexpr int n = F == SmFmt::Nvfp4 ? 16 : F == SmFmt::Fp8Bf16 ? 8 : 4;
  uint32_t v[n];
};
template <SmFmt F>
__device__ __forceinline__ void decode_row(RowWords<F>& r, const uint4& w, uint32_t sc, int c) {
  if constexpr (F == SmFmt::Fp8Bf16) {
#pragma unroll
    for (int i = 0; i < 4; ++i) e4m3x4_to_bf16(word(w, i), r.v[2 * i], r.v[2 * i + 1]);
  } else if constexpr (F == SmFmt::Nvfp4) {
    const __nv_bfloat162 s_lo = nvfp4_scale_pair(sc >> (16 * c));      // elements 0..15 of the 32
    const __nv_bfloat162 s_hi = nvfp4_scale_pair(sc >> (16 * c + 8));  // elements 16..31
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      const uint32_t u = word(w, i);
      const __nv_bfloat162 s = i < 2 ? s_lo : s_hi;
      r.v[4 * i + 0] = bf16x2_bits(__hmul2(bits_bf16x2(e2m1_pair_raw<0>(u)), s));
      r.v[4 * i + 1] = bf16x2_bits(__hmul2(bits_bf16x2(e2m1_pair_raw<1>(u)), s));
      r.v[4 * i + 2] = bf16x2_bits(__hmul2(bits_bf16x2(e2m1_pair_raw<2>(u)), s));
      r.v[4 * i + 3] = bf16x2_bits(__hmul2(bits_bf16x2(e2m1_pair_raw<3>(u)), s));
    }
  } else {
#pragma unroll
    for (int i = 0; i < 4; ++i) r.v[i] = word(w, i);
  }
}

// One K group: acc[mt][nt] += W[rows] · X[tokens] (with the FP8 promotion / block scaling).
// Activations of one K group for NT ≤ 2 are loaded before the weights are read from shared memory
// so their (L1/L2) latency overlaps the decode; larger NT loads them per chunk (registers).
template <SmFmt F, int NT>
struct ActPre {
  ActWords<F> a[NT <= 2 ? NT : 1][2];
};
template <SmFmt F, int NT>
__device__ __forceinline__ void preload_acts(ActPre<F, NT>& pre, const uint8_t* const (&xrow)[NT <= 2 ? NT : 1], int g) {
  if constexpr (NT <= 2) {
#pragma unroll
    for (int nt = 0; nt < NT; ++nt)
#pragma unroll
      for (int c = 0; c < 2; ++c) load_act_row<F>(pre.a[nt][c], xrow[nt], g, c);
  }
}

// kPre: activations come preloaded in `pre` (else loaded per chunk: fewer registers live).
template <SmFmt F, int MT, int NT, bool kPre = (NT <= 2)>
__device__ __forceinline__ void compute_group(const WFrag<MT>& f, const ActPre<F, NT>& pre, const SmallMParams& p,
                                              int row0, int g, int gq, int tq, float (&acc)[MT][NT][4]) {
  constexpr bool kPromote = F == SmFmt::Fp8Fp8 || F == SmFmt::Fp8Bf16;
  float tmp[MT][NT][4];
#pragma unroll
  for (int mt = 0; mt < MT; ++mt)
#pragma unroll
    for (int nt = 0; nt < NT; ++nt)
#pragma unroll
      for (int i = 0; i < 4; ++i) tmp[mt][nt][i] = 0.f;

#pragma unroll
  for (int c = 0; c < 2; ++c) {
    RowWords<F> ra[MT], rb[MT];  // rows g and g+8
#pragma unroll
    for (int mt = 0; mt < MT; ++mt) {
      decode_row<F>(ra[mt], f.w[mt][0][c], f.sc[mt][0], c);
      decode_row<F>(rb[mt], f.w[mt][1][c], f.sc[mt][1], c);
    }
#pragma unroll
    for (int nt = 0; nt < NT; ++nt) {
      ActWords<F> xa;
      if constexpr (kPre)
        xa = pre.a[nt][c];
      else
        load_act<F>(xa, p, nt * 8 + gq, g, c, tq);
#pragma unroll
      for (int mt = 0; mt < MT; ++mt) {
        float(&d)[4] = kPromote ? tmp[mt][nt] : acc[mt][nt];
#pragma unroll
        for (int j = 0; j < RowWords<F>::n / 2; ++j) {
          if constexpr (F == SmFmt::Fp8Fp8)
            mma_e4m3(d, ra[mt].v[2 * j], rb[mt].v[2 * j], ra[mt].v[2 * j + 1], rb[mt].v[2 * j + 1], xa.v[2 * j],
                     xa.v[2 * j + 1]);
          else
            mma_bf16(d, ra[mt].v[2 * j], rb[mt].v[2 * j], ra[mt].v[2 * j + 1], rb[mt].v[2 * j + 1], xa.v[2 * j],
                     xa.v[2 * j + 1]);
        }
      }
    }
  }

  if constexpr (kPromote) {
#pragma unroll
    for (int mt = 0; mt < MT; ++mt) {
      float sw = 1.f;
      if (p.block_scaled) sw = __ldg(p.wscale + int64_t((row0 + mt * 16) / 128) * p.wscale_ld + g);
#pragma unroll
      for (int nt = 0; nt < NT; ++nt) {
        float s0 = sw, s1 = sw;
        if (F == SmFmt::Fp8Fp8 && p.block_scaled) {
          const int t0 = nt * 8 + 2 * tq;  // tokens of c0/c2 and c1/c3
          s0 *= t0 < p.M ? __ldg(p.sx + int64_t(g) * p.sx_ld + t0) : 0.f;
          s1 *= t0 + 1 < p.M ? __ldg(p.sx + int64_t(g) * p.sx_ld + t0 + 1) : 0.f;
        }
        acc[mt][nt][0] = fmaf(tmp[mt][nt][0], s0, acc[mt][nt][0]);
        acc[mt][nt][1] = fmaf(tmp[mt][nt][1], s1, acc[mt][nt][1]);
        acc[mt][nt][2] = fmaf(tmp[mt][nt][2], s0, acc[mt][nt][2]);
        acc[mt][nt][3] = fmaf(tmp[mt][nt][3], s1, acc[mt][nt][3]);
      }
    }
  }
}

template <SmFmt F>
__device__ __forceinline__ float epilogue(const SmallMParams& p, float v, int row, int tok) {
  if constexpr (F == SmFmt::Fp8Fp8 || F == SmFmt::Fp8Bf16) {
    if (!p.block_scaled) {
      v *= __ldg(p.wscale + row);
      if (p.act_scaled) v *= __ldg(p.sx + tok);
    }
    return v;
  } else {
    return v * (p.row_alpha ? __ldg(p.row_alpha + row) : p.alpha);
  }
}


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
__device__ __forceinline__ void store_y(const SmallMParams& p, const float (&v)[MT * NT * 4], int row0, int gq,
                                        int tq) {
#pragma unroll
  for (int mt = 0; mt < MT; ++mt)
#pragma unroll
    for (int nt = 0; nt < NT; ++nt)
#pragma unroll
      for (int c = 0; c < 4; ++c) {
        const int row = row0 + mt * 16 + gq + ((c & 2) ? 8 : 0), tok = nt * 8 + 2 * tq + (c & 1);
        if (tok < p.M && row < p.N) p.y[int64_t(tok) * p.N + row] = epilogue<F>(p, v[(mt * NT + nt) * 4 + c], row, tok);
      }
}

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

// ---------------------------------------------------------------------------------------------
// Decode kernel (M ≤ 16, where use_decode_kernel picks it): one CTA per (row tile, K split) work
// unit, launched as an ordinary (non-persistent) grid of many short CTAs, so the hardware block
// scheduler balances the load: SMs the memory system serves faster simply run more units. (The
// persistent static stream-K split above leaves every warp only ~10 fixed groups at the 27B shapes,
// so uneven service across warps decides its end; lm_head's long ranges average that out.)
// Measured on H100 (M = 1): FP8 gate|up 51.5 → 47.5 µs, NVFP4 41.5 → 37.2 µs, BF16 81 → 70 µs.
// FP8 remains short of the bandwidth: sm_90 has no mma.sync for E4M3 (ptxas lowers it to
// conversions + HMMA, the SASS shows no QMMA), so FP8 costs ~3× the instructions per byte of BF16;
// native FP8 needs wgmma.
//  * the unit's 128-byte K groups are split between the CTA's warps (contiguous ranges); every
//    thread keeps R groups of its own 16-byte pieces in flight in registers with
//    ld.global.nc.L1::no_allocate (no shared-memory ring, no cp.async bookkeeping), so shared
//    memory stays free and L1 caches the activations every unit re-reads;
//  * warps reduce through shared memory in warp order; a unit covering the whole K stores y,
//    split units write their sum to a per-(tile, split) slot and the last of a tile's splits
//    (per-tile counter) adds the slots in split order: deterministic, no atomics on y.
// The MMA work per K group is compute_group above: identical operands and FP8 promotion.
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

// Calls by_fmt(std::integral_constant<SmFmt, f>{}): the run-time format as a compile-time one.
template <typename ByFmt>
decltype(auto) with_fmt(SmFmt f, ByFmt&& by_fmt) {
  switch (f) {
    case SmFmt::Bf16: return by_fmt(std::integral_constant<SmFmt, SmFmt::Bf16>{});
    case SmFmt::Fp8Fp8: return by_fmt(std::integral_constant<SmFmt, SmFmt::Fp8Fp8>{});
    case SmFmt::Fp8Bf16: return by_fmt(std::integral_constant<SmFmt, SmFmt::Fp8Bf16>{});
    case SmFmt::Nvfp4: break;
  }
  return by_fmt(std::integral_constant<SmFmt, SmFmt::Nvfp4>{});
}

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

// Where the decode kernel beat the persistent one on H100 (bench_gemm, gate|up and k|v_proj):
// M ≤ 8 (1.0-1.3× faster, NVFP4 k|v_proj 1.3-1.5×); at 9-16 tokens only NVFP4 weights too narrow
// for the persistent kernel's 32-row tiles (k|v_proj: 1.5×); wide weights at 9-16 tokens were
// 1.15-1.45× slower with 16-row tiles (FP8 emulated MMA converts each A fragment once per token
// tile; NVFP4's BF16 activations re-read per 16 rows), so they stay on the persistent kernel.
// GDN_SMALLM_PERSISTENT forces the persistent kernel at every M (A/B measurements).
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
  const int64_t row_bytes = w.kind == DeviceWeightKind::Bf16 ? w.cols_pad * 2
                            : w.kind == DeviceWeightKind::Fp8 ? w.cols_pad
                                                              : w.cols_pad / 2;
  pl.KG = int(row_bytes / kGroupBytes);
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

}  // namespace

SmallMPlan plan_small_m(const DeviceLinear& w, int M) {
  if (use_decode_kernel(w, M)) return plan_decode(w, M);
  SmallMPlan pl;
  pl.NT = M <= 8 ? 1 : M <= 16 ? 2 : M <= 32 ? 4 : 8;
  // 32-row tiles halve the activation reads per weight byte; 16-row tiles when 32-row ones would be
  // too few to spread over the GPU without splitting every tile many ways (k/v_proj, N = 1024).
  pl.MT = pl.NT <= 2 && w.rows_pad / 32 >= 2 * device_info().sm_count ? 2 : 1;
  pl.rtiles = int(w.rows_pad / (16 * pl.MT));
  const int64_t row_bytes = w.kind == DeviceWeightKind::Bf16 ? w.cols_pad * 2
                            : w.kind == DeviceWeightKind::Fp8 ? w.cols_pad
                                                              : w.cols_pad / 2;
  pl.KG = int(row_bytes / kGroupBytes);
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
  if (plan.rtiles > kMaxCounters && plan.ksplit != 1)
    throw CudaError("small-M kernel: more row tiles than split-K counters");
  if (plan.ksplit > 0)
    with_decode_instance(f, plan.MT, plan.NT, [&](auto inst) { decltype(inst)::launch(plan, p, s, pdl); });
  else
    with_instance(f, plan.MT, plan.NT, [&](auto inst) { decltype(inst)::launch(plan, p, s, pdl); });
}

}  // namespace gdn::cuda::detail
