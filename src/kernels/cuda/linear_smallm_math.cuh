// Per-K-group math shared by the small-M kernels (linear_smallm.cu: persistent stream-K;
// linear_decode.cu: decode kernel): fragment loads, operand decoding, tensor-core MMAs, epilogue.
// See linear_smallm.cu for the operand layout ("swap AB", permuted K order inside a chunk).
#pragma once

#include <cuda_bf16.h>

#include <cstdint>
#include <type_traits>

#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/fp_codecs.cuh"
#include "kernels/cuda/linear_internal.h"

namespace gdn::cuda::detail {

// 128-byte K groups in one padded weight row (BF16: 64 elements, FP8: 128, NVFP4: 256).
inline int k_groups(const DeviceLinear& w) {
  const int64_t row_bytes = w.kind == DeviceWeightKind::Bf16 ? w.cols_pad * 2
                            : w.kind == DeviceWeightKind::Fp8 ? w.cols_pad
                                                              : w.cols_pad / 2;
  return int(row_bytes / kGroupBytes);
}

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
    // Scale bytes 2c (elements 0..15 of the 32) and 2c+1 (16..31); c is a compile-time constant.
    const __nv_bfloat162 s_lo = c == 0 ? nvfp4_scale_pair<0>(sc) : nvfp4_scale_pair<2>(sc);
    const __nv_bfloat162 s_hi = c == 0 ? nvfp4_scale_pair<1>(sc) : nvfp4_scale_pair<3>(sc);
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      uint32_t raw[4];
      nvfp4_word_raw(word(w, i), raw);
      const __nv_bfloat162 s = i < 2 ? s_lo : s_hi;
#pragma unroll
      for (int k = 0; k < 4; ++k) r.v[4 * i + k] = bf16x2_bits(__hmul2(bits_bf16x2(raw[k]), s));
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

}  // namespace gdn::cuda::detail
