// Gated delta rule on the CPU: the token recurrence and the chunked WY/UT form (see delta_rule.h).
//
// Work is split over value heads. When there are fewer heads than threads, the state columns are
// split too: every step of both forms is independent across the DV columns of the state (each
// column of S only ever mixes with the same column of v / o), so (head, column block) pairs are
// independent units. The state-independent part of the chunked form (per-chunk WY transform) is
// then computed in parallel over (head, chunk) pairs before the sequential pass over chunks.
#include "kernels/cpu/delta_rule.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "core/error.h"
#include "core/thread_pool.h"

namespace gdn {
namespace {

// C = (accumulate ? C : 0) + alpha·A·B, with A [M×K], B [K×N], C [M×N] row-major with leading
// dimensions lda/ldb/ldc. With `lower`, A is lower-triangular with zeros stored above the
// diagonal, and the all-zero tail of each block of rows is skipped. Full 4×16 tiles use four
// named accumulator rows: in this form GCC keeps them in vector registers at -O2 and -O3 (a 2-D
// accumulator array was spilled to the stack at -O3, ~10× slower).
void gemm(int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda, const float* B, int64_t ldb,
          float* C, int64_t ldc, bool accumulate, bool lower = false) {
  constexpr int64_t MR = 4, NR = 16;
  auto store = [&](int64_t i, int64_t j0, const float* acc, int64_t nr) {
    float* dst = C + i * ldc + j0;
    for (int64_t c = 0; c < nr; ++c) dst[c] = (accumulate ? dst[c] : 0.0f) + alpha * acc[c];
  };
  for (int64_t i0 = 0; i0 < M; i0 += MR) {
    const int64_t mr = std::min(MR, M - i0);
    const int64_t kend = lower ? std::min(K, i0 + mr) : K;
    for (int64_t j0 = 0; j0 < N; j0 += NR) {
      const int64_t nr = std::min(NR, N - j0);
      if (mr == MR && nr == NR) {
        const float *a0 = A + i0 * lda, *a1 = a0 + lda, *a2 = a1 + lda, *a3 = a2 + lda;
        float c0[NR] = {}, c1[NR] = {}, c2[NR] = {}, c3[NR] = {};
        for (int64_t p = 0; p < kend; ++p) {
          const float* b = B + p * ldb + j0;
          const float x0 = a0[p], x1 = a1[p], x2 = a2[p], x3 = a3[p];
          for (int64_t c = 0; c < NR; ++c) {
            c0[c] += x0 * b[c];
            c1[c] += x1 * b[c];
            c2[c] += x2 * b[c];
            c3[c] += x3 * b[c];
          }
        }
        store(i0, j0, c0, NR);
        store(i0 + 1, j0, c1, NR);
        store(i0 + 2, j0, c2, NR);
        store(i0 + 3, j0, c3, NR);
      } else {
        for (int64_t r = 0; r < mr; ++r) {
          float acc[NR] = {};
          const float* a = A + (i0 + r) * lda;
          for (int64_t p = 0; p < kend; ++p)
            for (int64_t c = 0; c < nr; ++c) acc[c] += a[p] * B[p * ldb + j0 + c];
          store(i0 + r, j0, acc, nr);
        }
      }
    }
  }
}

// Addressing of the caller's tensors.
struct Layout {
  int64_t T, HK, HV, DK, DV, group;  // group = HV / HK value heads per key head
  const float *q, *k, *v, *g, *beta;
  float *state, *out;

  int64_t ldk() const { return HK * DK; }  // row stride of q and k over tokens
  int64_t ldo() const { return HV * DV; }  // row stride of v and out over tokens
  const float* qrow(int64_t t, int64_t j) const { return q + (t * HK + j / group) * DK; }
  const float* krow(int64_t t, int64_t j) const { return k + (t * HK + j / group) * DK; }
  const float* vrow(int64_t t, int64_t j) const { return v + (t * HV + j) * DV; }
  float* orow(int64_t t, int64_t j) const { return out + (t * HV + j) * DV; }
  float gate(int64_t t, int64_t j) const { return g[t * HV + j]; }
  float strength(int64_t t, int64_t j) const { return beta[t * HV + j]; }
  float* S(int64_t j) const { return state + j * DK * DV; }
};

Layout make_layout(const DeltaRuleShape& s, const float* q, const float* k, const float* v, const float* g,
                   const float* beta, float* state, float* out) {
  GDN_CHECK(s.tokens >= 0 && s.key_heads > 0 && s.value_heads > 0, "bad delta rule shape");
  GDN_CHECK(s.value_heads % s.key_heads == 0, "value heads {} not a multiple of key heads {}", s.value_heads,
            s.key_heads);
  GDN_CHECK(s.key_dim > 0 && s.value_dim > 0, "bad head dims {}x{}", s.key_dim, s.value_dim);
  GDN_CHECK(s.tokens == 0 || (q && k && v && g && beta && out), "null input");
  GDN_CHECK(state != nullptr, "null state");
  return {s.tokens, s.key_heads, s.value_heads, s.key_dim, s.value_dim, s.value_heads / s.key_heads,
          q, k, v, g, beta, state, out};
}

// Width of the state column blocks: whole rows when the heads alone keep the pool busy,
// otherwise enough blocks for about two units per thread, in multiples of 32 columns (the
// narrowest tile of the recurrent kernel that vectorises well at -O2 and -O3).
int64_t column_block(int64_t HV, int64_t DV, int threads) {
  if (HV >= threads) return DV;
  const int64_t blocks = (2 * threads + HV - 1) / HV;
  const int64_t width = ((DV + blocks - 1) / blocks + 31) / 32 * 32;
  return std::min(DV, width);
}

// ---- recurrent form ----

// Runs all tokens for value head j on the state columns [c0, c0 + W) (W = 0: n_runtime < 32): the
// [DK×W] slice of the state stays in L1 across tokens, a/b/delta stay in registers, and the fixed
// width lets GCC vectorise at -O2 as well. Uses S_newᵀq = α·S_oldᵀq + (k·q)·δ, so each token
// needs one pass over the state: the row update of token t also accumulates a = Sᵀk and b = Sᵀq
// for token t+1.
template <int64_t W>
void recurrent_tile(const Layout& L, int64_t j, int64_t c0, int64_t n_runtime) {
  constexpr int64_t kMax = W ? W : 32;
  const int64_t n = W ? W : n_runtime, DK = L.DK, DV = L.DV;
  float* S = L.S(j) + c0;
  float a[kMax] = {}, b[kMax] = {}, delta[kMax];
  {
    const float *k0 = L.krow(0, j), *q0 = L.qrow(0, j);
    for (int64_t i = 0; i < DK; ++i) {
      const float* row = S + i * DV;
      const float ki = k0[i], qi = q0[i];
      for (int64_t d = 0; d < n; ++d) a[d] += ki * row[d], b[d] += qi * row[d];
    }
  }
  for (int64_t t = 0; t < L.T; ++t) {
    const float *kt = L.krow(t, j), *qt = L.qrow(t, j), *vt = L.vrow(t, j) + c0;
    float* o = L.orow(t, j) + c0;
    const float alpha = std::exp(L.gate(t, j)), be = L.strength(t, j);
    float kq = 0.0f;
    for (int64_t i = 0; i < DK; ++i) kq += kt[i] * qt[i];
    // kv_mem = (αS)ᵀk = α·a; delta = β(v − kv_mem); o = (αS + k δᵀ)ᵀ q.
    for (int64_t d = 0; d < n; ++d) {
      delta[d] = (vt[d] - alpha * a[d]) * be;
      o[d] = alpha * b[d] + kq * delta[d];
    }
    const bool next = t + 1 < L.T;
    const float *kn = next ? L.krow(t + 1, j) : kt, *qn = next ? L.qrow(t + 1, j) : qt;
    for (int64_t d = 0; d < n; ++d) a[d] = b[d] = 0.0f;
    for (int64_t i = 0; i < DK; ++i) {
      float* row = S + i * DV;
      const float ki = kt[i], kni = kn[i], qni = qn[i];
      for (int64_t d = 0; d < n; ++d) {
        const float x = alpha * row[d] + ki * delta[d];
        row[d] = x;
        a[d] += kni * x;  // wasted (DK·n FMAs) on the last token only
        b[d] += qni * x;
      }
    }
  }
}

void recurrent_unit(const Layout& L, int64_t j, int64_t c0, int64_t c1) {
  int64_t c = c0;
  for (; c1 - c >= 64; c += 64) recurrent_tile<64>(L, j, c, 64);
  for (; c1 - c >= 32; c += 32) recurrent_tile<32>(L, j, c, 32);
  if (c < c1) recurrent_tile<0>(L, j, c, c1 - c);
}

// ---- chunked form ----

// The state-independent quantities of one (value head, chunk): leading dimension C throughout
// (gam [C], u [C×DV] ld DV, w [C×DK] ld DK, mqk [C×C] ld C).
struct ChunkPrep {
  float *gam, *u, *w, *mqk;
};

int64_t prep_floats(int64_t C, int64_t DK, int64_t DV) { return C * (1 + DV + DK + C); }

ChunkPrep prep_at(float* base, int64_t C, int64_t DK, int64_t DV) {
  ChunkPrep p;
  p.gam = base;
  p.u = p.gam + C;
  p.w = p.u + C * DV;
  p.mqk = p.w + C * DK;
  return p;
}

// Per-thread scratch for prepare_chunk / apply_chunk.
struct Scratch {
  std::vector<float> buf;
  float *kt, *a, *tinv, *bv, *bk, *vn, *decay;
  Scratch(int64_t C, int64_t DK, int64_t DV) : buf(size_t(DK * C + 2 * C * C + 2 * C * DV + C * DK + C)) {
    kt = buf.data();       // [DK×C]: keys transposed (scaled by the decay in apply_chunk)
    a = kt + DK * C;       // [C×C]: A, strictly lower
    tinv = a + C * C;      // [C×C]: (I + A)^{-1}
    bv = tinv + C * C;     // [C×DV]: β⊙V
    bk = bv + C * DV;      // [C×DK]: β⊙exp(γ)⊙K
    vn = bk + C * DK;      // [C×DV]: the chunk's corrected values Vn
    decay = vn + C * DV;   // [C]
  }
};

// Chunk of n tokens from t0 for value head j: γ, U = T·(β⊙V), W = T·(β⊙e^γ⊙K) with
// T = (I + A)^{-1}, and the decayed causal attention Mqk.
void prepare_chunk(const Layout& L, int64_t j, int64_t t0, int64_t n, int64_t C, const ChunkPrep& p, Scratch& s) {
  const int64_t DK = L.DK, DV = L.DV, ldk = L.ldk();
  const float *k0 = L.krow(t0, j), *q0 = L.qrow(t0, j);
  float cum = 0.0f;
  for (int64_t r = 0; r < n; ++r) p.gam[r] = cum += L.gate(t0 + r, j);

  // K·Kᵀ and Q·Kᵀ through the row-major gemm, with Kᵀ materialised.
  for (int64_t r = 0; r < n; ++r)
    for (int64_t i = 0; i < DK; ++i) s.kt[i * C + r] = k0[r * ldk + i];
  gemm(n, n, DK, 1.0f, k0, ldk, s.kt, C, s.a, C, false);
  gemm(n, n, DK, 1.0f, q0, ldk, s.kt, C, p.mqk, C, false);
  // Only s ≤ r gets exp(γr − γs) (≤ 1 for g ≤ 0), so no exp of a large positive number.
  for (int64_t r = 0; r < n; ++r) {
    const float br = L.strength(t0 + r, j);
    float *arow = s.a + r * C, *mrow = p.mqk + r * C;
    for (int64_t c = 0; c < n; ++c) {
      if (c <= r) {
        const float dec = std::exp(p.gam[r] - p.gam[c]);
        arow[c] = c < r ? br * arow[c] * dec : 0.0f;
        mrow[c] *= dec;
      } else {
        arow[c] = 0.0f;
        mrow[c] = 0.0f;
      }
    }
  }
  // (I + A)·T = I by forward substitution: T_r = e_r − Σ_{c<r} A[r][c]·T_c (T_c is zero past c).
  for (int64_t r = 0; r < n; ++r) {
    float* trow = s.tinv + r * C;
    std::fill(trow, trow + n, 0.0f);
    trow[r] = 1.0f;
    for (int64_t c = 0; c < r; ++c) {
      const float f = s.a[r * C + c];
      const float* tc = s.tinv + c * C;
      for (int64_t x = 0; x <= c; ++x) trow[x] -= f * tc[x];
    }
  }
  for (int64_t r = 0; r < n; ++r) {
    const float br = L.strength(t0 + r, j), bkr = br * std::exp(p.gam[r]);
    const float *vr = L.vrow(t0 + r, j), *kr = k0 + r * ldk;
    for (int64_t d = 0; d < DV; ++d) s.bv[r * DV + d] = br * vr[d];
    for (int64_t i = 0; i < DK; ++i) s.bk[r * DK + i] = bkr * kr[i];
  }
  gemm(n, DV, n, 1.0f, s.tinv, C, s.bv, DV, p.u, DV, false, true);
  gemm(n, DK, n, 1.0f, s.tinv, C, s.bk, DK, p.w, DK, false, true);
}

// Sequential step over one chunk for value head j, state columns [c0, c1):
//   Vn = U − W·S ; O = (Q⊙e^γ)·S + Mqk·Vn ; S = e^{γL}·S + (K⊙e^{γL−γ})ᵀ·Vn.
void apply_chunk(const Layout& L, int64_t j, int64_t t0, int64_t n, int64_t C, const ChunkPrep& p, int64_t c0,
                 int64_t c1, Scratch& s) {
  const int64_t DK = L.DK, DV = L.DV, ldk = L.ldk(), ldo = L.ldo(), nc = c1 - c0;
  const float *k0 = L.krow(t0, j), *q0 = L.qrow(t0, j);
  float* S = L.S(j) + c0;
  float* vn = s.vn + c0;  // columns c0.. of a [C×DV] buffer
  float* o = L.orow(t0, j) + c0;

  for (int64_t r = 0; r < n; ++r) std::memcpy(vn + r * DV, p.u + r * DV + c0, size_t(nc) * sizeof(float));
  gemm(n, nc, DK, -1.0f, p.w, DK, S, DV, vn, DV, true);

  gemm(n, nc, DK, 1.0f, q0, ldk, S, DV, o, ldo, false);
  for (int64_t r = 0; r < n; ++r) {
    const float e = std::exp(p.gam[r]);
    for (int64_t d = 0; d < nc; ++d) o[r * ldo + d] *= e;
  }
  gemm(n, nc, n, 1.0f, p.mqk, C, vn, DV, o, ldo, true, true);

  const float gl = p.gam[n - 1], el = std::exp(gl);
  for (int64_t r = 0; r < n; ++r) s.decay[r] = std::exp(gl - p.gam[r]);
  for (int64_t r = 0; r < n; ++r)
    for (int64_t i = 0; i < DK; ++i) s.kt[i * C + r] = k0[r * ldk + i] * s.decay[r];
  for (int64_t i = 0; i < DK; ++i)
    for (int64_t d = 0; d < nc; ++d) S[i * DV + d] *= el;
  gemm(DK, nc, n, 1.0f, s.kt, C, vn, DV, S, DV, true);
}

}  // namespace

void delta_rule_recurrent(const DeltaRuleShape& s, const float* q, const float* k, const float* v, const float* g,
                          const float* beta, float* state, float* out, ThreadPool& pool) {
  const Layout L = make_layout(s, q, k, v, g, beta, state, out);
  if (L.T == 0) return;
  const int64_t width = column_block(L.HV, L.DV, pool.size());
  const int64_t blocks = (L.DV + width - 1) / width;
  pool.parallel_for(L.HV * blocks, [&](int64_t b, int64_t e) {
    for (int64_t u = b; u < e; ++u) {
      const int64_t j = u / blocks, c0 = (u % blocks) * width;
      recurrent_unit(L, j, c0, std::min(L.DV, c0 + width));
    }
  });
}

void delta_rule_chunked(const DeltaRuleShape& s, const float* q, const float* k, const float* v, const float* g,
                        const float* beta, float* state, float* out, ThreadPool& pool, int64_t chunk_size) {
  const Layout L = make_layout(s, q, k, v, g, beta, state, out);
  GDN_CHECK(chunk_size > 0, "chunk size {} must be positive", chunk_size);
  if (L.T == 0) return;
  const int64_t C = std::min(chunk_size, L.T), DK = L.DK, DV = L.DV;
  const int64_t chunks = (L.T + C - 1) / C, pf = prep_floats(C, DK, DV);
  const int threads = pool.size();

  if (L.HV >= threads) {
    // Enough heads: each thread owns whole heads and runs prepare + apply chunk by chunk,
    // so the chunk's prepared data is still in cache when it is used.
    pool.parallel_for(L.HV, [&](int64_t b, int64_t e) {
      Scratch sc(C, DK, DV);
      std::vector<float> buf(static_cast<size_t>(pf));
      const ChunkPrep p = prep_at(buf.data(), C, DK, DV);
      for (int64_t j = b; j < e; ++j)
        for (int64_t c = 0; c < chunks; ++c) {
          const int64_t t0 = c * C, n = std::min(C, L.T - t0);
          prepare_chunk(L, j, t0, n, C, p, sc);
          apply_chunk(L, j, t0, n, C, p, 0, DV, sc);
        }
    });
    return;
  }

  // Few heads: windows of chunks, each prepared in parallel over (head, chunk) and then applied
  // in order over (head, column block). The window bounds the prepared data kept in memory.
  const int64_t width = column_block(L.HV, DV, threads), blocks = (DV + width - 1) / width;
  const int64_t window = std::min(chunks, std::max<int64_t>(1, (4 * threads + L.HV - 1) / L.HV));
  std::vector<float> preps(size_t(L.HV * window * pf));
  for (int64_t w0 = 0; w0 < chunks; w0 += window) {
    const int64_t nw = std::min(window, chunks - w0);
    pool.parallel_for(L.HV * nw, [&](int64_t b, int64_t e) {
      Scratch sc(C, DK, DV);
      for (int64_t idx = b; idx < e; ++idx) {
        const int64_t j = idx / nw, t0 = (w0 + idx % nw) * C;
        prepare_chunk(L, j, t0, std::min(C, L.T - t0), C, prep_at(preps.data() + idx * pf, C, DK, DV), sc);
      }
    });
    pool.parallel_for(L.HV * blocks, [&](int64_t b, int64_t e) {
      Scratch sc(C, DK, DV);
      for (int64_t u = b; u < e; ++u) {
        const int64_t j = u / blocks, c0 = (u % blocks) * width, c1 = std::min(DV, c0 + width);
        for (int64_t c = 0; c < nw; ++c) {
          const int64_t t0 = (w0 + c) * C;
          apply_chunk(L, j, t0, std::min(C, L.T - t0), C, prep_at(preps.data() + (j * nw + c) * pf, C, DK, DV), c0,
                      c1, sc);
        }
      }
    });
  }
}

}  // namespace gdn
