// Gated delta rule, chunked form, fused variant: one CTA per (DV tile, value head, sequence) does
// every chunk of its sequence — norms, gates, A, T = (I + A)⁻¹, W, U, the output and the state
// update — with WMMA (TF32 operands, fp32 accumulation). Used for DK ≤ 64 (the small fixture
// models) and whenever the split form of gdn_chunked.cu cannot run (no workspace, unknown
// max_q_len, GDN_DELTA_FUSED=1). The algorithm and its precision are described in gdn_chunked.cu.
#include <mma.h>

#include <algorithm>
#include <cstdlib>
#include <stdexcept>
#include <string>

#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/device.h"
#include "kernels/cuda/gdn_internal.h"

#include "kernels/cuda/gdn_chunk_common.cuh"

namespace gdn::cuda::detail {
namespace {

using namespace nvcuda;
using namespace chunk;

constexpr int kChunkThreads = 256;
constexpr int kChunkWarps = kChunkThreads / 32;

// Shared-memory layout (in floats). Row strides ≡ 4 (mod 8): 16-byte rows for float4, every
// 8-row step a multiple of 32 bytes (WMMA pointers must be 256-bit aligned) and no systematic
// bank conflicts between rows.
template <int DKP, int BV>
struct ChunkSmem {
  static constexpr int LK = DKP + 4;     // [C, DKP] tiles: K, Q / W
  static constexpr int LS = BV + 4;      // [*, BV] tiles: S, V / Vn, U, O
  static constexpr int LC = kChunk + 4;  // [C, C] tiles: A / Tw, T, M
  static constexpr int S = 0;
  static constexpr int K = S + DKP * LS;
  static constexpr int Q = K + kChunk * LK;  // Q, then W
  static constexpr int A = Q + kChunk * LK;  // A, then T·diag(β e^γ)
  static constexpr int T = A + kChunk * LC;
  static constexpr int M = T + kChunk * LC;
  static constexpr int V = M + kChunk * LC;  // β⊙V, then Vn
  static constexpr int U = V + kChunk * LS;
  static constexpr int O = U + kChunk * LS;  // e^γ⊙(Q·S), then O
  static constexpr int GAM = O + kChunk * LS;
  static constexpr int BETA = GAM + kChunk;
  static constexpr int G = BETA + kChunk;
  static constexpr int EG = G + kChunk;     // e^{γr}
  static constexpr int DEC = EG + kChunk;   // e^{γL − γr}
  static constexpr int total = DEC + kChunk;
  static constexpr size_t bytes = size_t(total) * sizeof(float);
  static_assert(K % 8 == 0 && Q % 8 == 0 && A % 8 == 0 && T % 8 == 0 && M % 8 == 0 && V % 8 == 0 && U % 8 == 0 &&
                O % 8 == 0, "WMMA tiles need 32-byte aligned bases");
};

using FragA = wmma::fragment<wmma::matrix_a, 16, 16, 8, wmma::precision::tf32, wmma::row_major>;
using FragAc = wmma::fragment<wmma::matrix_a, 16, 16, 8, wmma::precision::tf32, wmma::col_major>;
using FragBr = wmma::fragment<wmma::matrix_b, 16, 16, 8, wmma::precision::tf32, wmma::row_major>;
using FragBc = wmma::fragment<wmma::matrix_b, 16, 16, 8, wmma::precision::tf32, wmma::col_major>;
using FragC = wmma::fragment<wmma::accumulator, 16, 16, 8, float>;

template <typename F>
__device__ __forceinline__ void round_tf32(F& f) {
#pragma unroll
  for (int i = 0; i < f.num_elements; ++i) f.x[i] = wmma::__float_to_tf32(f.x[i]);
}

// acc += A[16 × 8·ksteps] · B[8·ksteps × 16]; a/b point at the tile's first element, the k step
// advances a by 8 elements along k (row-major A: +8; col-major A: +8·lda) and b likewise. Two
// accumulators (even / odd k) halve the dependent HMMA chain and let the next loads issue early.
template <typename FA, typename FB>
__device__ __forceinline__ void mma_k(FragC& acc, const float* a, int lda, int a_kstep, const float* b, int ldb,
                                      int b_kstep, int ksteps) {
  FragC acc2;
  wmma::fill_fragment(acc2, 0.f);
  int k = 0;
  for (; k + 2 <= ksteps; k += 2) {
    FA fa0, fa1;
    FB fb0, fb1;
    wmma::load_matrix_sync(fa0, a + k * a_kstep, lda);
    wmma::load_matrix_sync(fb0, b + k * b_kstep, ldb);
    wmma::load_matrix_sync(fa1, a + (k + 1) * a_kstep, lda);
    wmma::load_matrix_sync(fb1, b + (k + 1) * b_kstep, ldb);
    round_tf32(fa0);
    round_tf32(fb0);
    round_tf32(fa1);
    round_tf32(fb1);
    wmma::mma_sync(acc, fa0, fb0, acc);
    wmma::mma_sync(acc2, fa1, fb1, acc2);
  }
  if (k < ksteps) {
    FA fa;
    FB fb;
    wmma::load_matrix_sync(fa, a + k * a_kstep, lda);
    wmma::load_matrix_sync(fb, b + k * b_kstep, ldb);
    round_tf32(fa);
    round_tf32(fb);
    wmma::mma_sync(acc, fa, fb, acc);
  }
#pragma unroll
  for (int i = 0; i < acc.num_elements; ++i) acc.x[i] += acc2.x[i];
}

template <int DKP, int BV>
__global__ void __launch_bounds__(kChunkThreads, 1) gdn_fused_chunk_kernel(DeltaParams p) {
  using L = ChunkSmem<DKP, BV>;
  constexpr int C = kChunk, LK = L::LK, LS = L::LS, LC = L::LC;
  constexpr int NCB = BV / 16, NKB = DKP / 16;  // 16-wide column blocks of the BV / DKP sides
  const int c0 = blockIdx.x * BV, j = blockIdx.y, s = blockIdx.z;
  const int bos = p.cu_seqlens[s], len = p.cu_seqlens[s + 1] - bos;
  if (len <= 1) return;  // empty or decode (recurrent kernel)
  const int slot = p.state_slots[s];
  if (slot < 0) return;

  extern __shared__ __align__(128) float smem[];
  float *sS = smem + L::S, *sK = smem + L::K, *sQ = smem + L::Q, *sA = smem + L::A, *sT = smem + L::T;
  float *sM = smem + L::M, *sV = smem + L::V, *sU = smem + L::U, *sO = smem + L::O;
  float *sGam = smem + L::GAM, *sBeta = smem + L::BETA, *sG = smem + L::G, *sEg = smem + L::EG,
        *sDec = smem + L::DEC;

  const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;
  const int DK = p.DK, DV = p.DV, HV = p.HV;
  const int ncols = min(BV, DV - c0);
  const int kh = j / (HV / p.HK);
  const int64_t q_off = int64_t(kh) * DK, k_off = int64_t(p.HK) * DK + kh * DK,
                v_off = 2 * int64_t(p.HK) * DK + int64_t(j) * DV + c0;
  const float nA = p.neg_exp_A[j], dtb = p.dt_bias[j];
  float* Sg = p.state + (int64_t(slot) * HV + j) * int64_t(DK) * DV + c0;

  for (int e = tid; e < DKP * (BV / 4); e += kChunkThreads) {
    const int i = e / (BV / 4), c = (e % (BV / 4)) * 4;
    st4(sS + i * LS + c, (i < DK && c < ncols) ? ld4(Sg + int64_t(i) * DV + c) : make_float4(0.f, 0.f, 0.f, 0.f));
  }

  for (int t0 = 0; t0 < len; t0 += C) {
    const int n = min(C, len - t0);
    const int64_t row0 = bos + t0;
    // ---- P1: raw q, k, v rows of the chunk by cp.async (rows ≥ n and columns past DK / DV
    // zero-filled), L2 prefetch of the next chunk, and the gates (rows ≥ n: β = g = 0).
    for (int e = tid; e < C * (DKP / 4); e += kChunkThreads) {
      const int r = e / (DKP / 4), c = (e % (DKP / 4)) * 4;
      const bool ok = r < n && c < DK;
      const float* rp = p.qkv + (row0 + (ok ? r : 0)) * p.conv_dim + (ok ? c : 0);
      cp_async16(sQ + r * LK + c, rp + q_off, ok);
      cp_async16(sK + r * LK + c, rp + k_off, ok);
    }
    for (int e = tid; e < C * (BV / 4); e += kChunkThreads) {
      const int r = e / (BV / 4), c = (e % (BV / 4)) * 4;
      const bool ok = r < n && c < ncols;
      cp_async16(sV + r * LS + c, p.qkv + (row0 + (ok ? r : 0)) * p.conv_dim + v_off + (ok ? c : 0), ok);
    }
    cp_async_commit();
    if (t0 + C < len) {  // next chunk: q and k rows (DK floats each) and this CTA's v columns
      const int nn = min(C, len - t0 - C);
      constexpr int kLinesQK = DKP / 32 > 0 ? DKP / 32 : 1;  // 128-byte lines per q or k row
      constexpr int kLines = 2 * kLinesQK + BV / 32;         // + this CTA's v columns
      for (int e = tid; e < nn * kLines; e += kChunkThreads) {
        const int r = e / kLines, l = e % kLines;
        const float* rp = p.qkv + (row0 + C + r) * p.conv_dim;
        prefetch_l2(l < kLinesQK       ? rp + q_off + 32 * l
                    : l < 2 * kLinesQK ? rp + k_off + 32 * (l - kLinesQK)
                                       : rp + v_off + 32 * (l - 2 * kLinesQK));
      }
    }
    if (tid < C) {
      float b = 0.f, g = 0.f;
      if (tid < n) {
        const float* bar = p.ba + (row0 + tid) * p.ba_ld;
        b = gdn_sigmoid(bar[j]);
        g = nA * gdn_softplus(bar[HV + j] + dtb);
      }
      sBeta[tid] = b;
      sG[tid] = g;
    }
    cp_async_wait_all();
    __syncthreads();
    // ---- P1b: L2 norm of the 64 q and 64 k rows, two threads per row; cumulative gate γ.
    {
      constexpr int HW = DKP / 2;
      const int r = tid >> 1;
      float* hp = (r < C ? sQ + r * LK : sK + (r - C) * LK) + (tid & 1) * HW;
      float ss = 0.f;
#pragma unroll
      for (int c = 0; c < HW; c += 4) {
        const float4 v = ld4(hp + c);
        ss += v.x * v.x + v.y * v.y + v.z * v.z + v.w * v.w;
      }
      ss += __shfl_xor_sync(0xffffffffu, ss, 1);
      const float inv = (r < C ? p.q_scale : 1.f) / sqrtf(ss + kGdnL2Eps);
#pragma unroll
      for (int c = 0; c < HW; c += 4) {
        const float4 v = ld4(hp + c);
        st4(hp + c, make_float4(v.x * inv, v.y * inv, v.z * inv, v.w * inv));
      }
    }
    if (warp == kChunkWarps - 1) warp_cumsum64(sG, sGam, lane);
    __syncthreads();
    // ---- P2 (tensor cores): A = K·Kᵀ and M = Q·Kᵀ, lower 16×16 tiles only.
    for (int tile = warp; tile < 20; tile += kChunkWarps) {
      FragC acc;
      wmma::fill_fragment(acc, 0.f);
      const int lt = tile % 10, rb = (lt >= 1) + (lt >= 3) + (lt >= 6), cb = lt - rb * (rb + 1) / 2;
      mma_k<FragA, FragBc>(acc, (tile < 10 ? sK : sQ) + rb * 16 * LK, LK, 8, sK + cb * 16 * LK, LK, 8, DKP / 8);
      wmma::store_matrix_sync((tile < 10 ? sA : sM) + rb * 16 * LC + cb * 16, acc, LC, wmma::mem_row_major);
    }
    if (tid < C) {
      sEg[tid] = expf(sGam[tid]);
      sDec[tid] = expf(sGam[C - 1] - sGam[tid]);  // rows ≥ n: γ stays γ_{n−1}, K rows are zero anyway
    }
    __syncthreads();
    // ---- P3: decay and mask A, M (every entry rewritten: upper tiles were never computed);
    // V rows × β.
    for (int e = tid; e < C * C; e += kChunkThreads) {
      const int r = e / C, c = e % C;
      const float dec = c <= r ? expf(sGam[r] - sGam[c]) : 0.f;  // ≤ 1: γ is non-increasing
      sA[r * LC + c] = c < r ? sBeta[r] * sA[r * LC + c] * dec : 0.f;
      sM[r * LC + c] = c <= r ? sM[r * LC + c] * dec : 0.f;
    }
    for (int e = tid; e < C * BV; e += kChunkThreads) {
      const int r = e / BV, c = e % BV;
      sV[r * LS + c] *= sBeta[r];
    }
    __syncthreads();
    // ---- P4: warps 0–1 solve T = (I + A)⁻¹, one thread per column; meanwhile warps 2–7 compute
    // O = Q·S on tensor cores (it does not need T).
    if (tid < C) {
      float t[C];
      solve_t_column(sA, LC, tid, t);
#pragma unroll
      for (int r = 0; r < C; ++r) sT[r * LC + tid] = t[r];
    } else {
      for (int tile = warp - 2; tile < (C / 16) * NCB; tile += kChunkWarps - 2) {
        const int rb = tile / NCB, cb = tile % NCB;
        FragC acc;
        wmma::fill_fragment(acc, 0.f);
        mma_k<FragA, FragBr>(acc, sQ + rb * 16 * LK, LK, 8, sS + cb * 16, LS, 8 * LS, DKP / 8);
        wmma::store_matrix_sync(sO + rb * 16 * LS + cb * 16, acc, LS, wmma::mem_row_major);
      }
    }
    __syncthreads();
    for (int e = tid; e < C * C; e += kChunkThreads) {  // Tw = T·diag(β e^γ) over A (consumed)
      const int r = e / C, c = e % C;
      sA[r * LC + c] = sT[r * LC + c] * (sBeta[c] * sEg[c]);
    }
    for (int e = tid; e < C * BV; e += kChunkThreads) {  // O rows × e^γ
      const int r = e / BV, c = e % BV;
      sO[r * LS + c] *= sEg[r];
    }
    __syncthreads();
    // ---- P5 (tensor cores): W = Tw·K into the Q buffer; U = T·(β⊙V). Lower-triangular left
    // factors: row block rb only needs k < 16(rb+1).
    {
      constexpr int NWT = (C / 16) * NKB, NUT = (C / 16) * NCB;
      for (int tile = warp; tile < NWT + NUT; tile += kChunkWarps) {
        FragC acc;
        wmma::fill_fragment(acc, 0.f);
        if (tile < NWT) {
          const int rb = tile / NKB, cb = tile % NKB;
          mma_k<FragA, FragBr>(acc, sA + rb * 16 * LC, LC, 8, sK + cb * 16, LK, 8 * LK, 2 * (rb + 1));
          wmma::store_matrix_sync(sQ + rb * 16 * LK + cb * 16, acc, LK, wmma::mem_row_major);
        } else {
          const int u = tile - NWT, rb = u / NCB, cb = u % NCB;
          mma_k<FragA, FragBr>(acc, sT + rb * 16 * LC, LC, 8, sV + cb * 16, LS, 8 * LS, 2 * (rb + 1));
          wmma::store_matrix_sync(sU + rb * 16 * LS + cb * 16, acc, LS, wmma::mem_row_major);
        }
      }
    }
    __syncthreads();
    // ---- P6 (tensor cores): Vn = U − W·S into the V buffer; K rows × e^{γL−γr} (K is free now).
    for (int tile = warp; tile < (C / 16) * NCB; tile += kChunkWarps) {
      const int rb = tile / NCB, cb = tile % NCB;
      FragC acc, u;
      wmma::fill_fragment(acc, 0.f);
      mma_k<FragA, FragBr>(acc, sQ + rb * 16 * LK, LK, 8, sS + cb * 16, LS, 8 * LS, DKP / 8);
      wmma::load_matrix_sync(u, sU + rb * 16 * LS + cb * 16, LS, wmma::mem_row_major);
#pragma unroll
      for (int i = 0; i < u.num_elements; ++i) u.x[i] -= acc.x[i];
      wmma::store_matrix_sync(sV + rb * 16 * LS + cb * 16, u, LS, wmma::mem_row_major);
    }
    for (int e = tid; e < C * DKP; e += kChunkThreads) {
      const int r = e / DKP, c = e % DKP;
      sK[r * LK + c] *= sDec[r];
    }
    __syncthreads();
    // ---- P7 (tensor cores): O += M·Vn;  S = e^{γL}·S + Kdᵀ·Vn (Kdᵀ read col-major from K).
    {
      const float eL = expf(sGam[C - 1]);
      const int ksteps_n = (n + 7) / 8;
      constexpr int NOT = (C / 16) * NCB, NST = NKB * NCB;
      for (int tile = warp; tile < NOT + NST; tile += kChunkWarps) {
        FragC acc;
        if (tile < NOT) {
          const int rb = tile / NCB, cb = tile % NCB;
          float* o = sO + rb * 16 * LS + cb * 16;
          wmma::load_matrix_sync(acc, o, LS, wmma::mem_row_major);
          mma_k<FragA, FragBr>(acc, sM + rb * 16 * LC, LC, 8, sV + cb * 16, LS, 8 * LS, 2 * (rb + 1));
          wmma::store_matrix_sync(o, acc, LS, wmma::mem_row_major);
        } else {
          const int st = tile - NOT, ib = st / NCB, cb = st % NCB;
          float* sp = sS + ib * 16 * LS + cb * 16;
          wmma::load_matrix_sync(acc, sp, LS, wmma::mem_row_major);
#pragma unroll
          for (int i = 0; i < acc.num_elements; ++i) acc.x[i] *= eL;
          mma_k<FragAc, FragBr>(acc, sK + ib * 16, LK, 8 * LK, sV + cb * 16, LS, 8 * LS, ksteps_n);
          wmma::store_matrix_sync(sp, acc, LS, wmma::mem_row_major);
        }
      }
    }
    __syncthreads();
    // ---- P8: the chunk's outputs (valid rows, valid columns).
    for (int e = tid; e < n * (BV / 4); e += kChunkThreads) {
      const int r = e / (BV / 4), c = (e % (BV / 4)) * 4;
      if (c < ncols) st4(p.out + ((row0 + r) * HV + j) * int64_t(DV) + c0 + c, ld4(sO + r * LS + c));
    }
  }
  for (int e = tid; e < DKP * (BV / 4); e += kChunkThreads) {
    const int i = e / (BV / 4), c = (e % (BV / 4)) * 4;
    if (i < DK && c < ncols) st4(Sg + int64_t(i) * DV + c, ld4(sS + i * LS + c));
  }
}

template <int DKP, int BV>
void launch_fused_t(const DeltaParams& p, int num_seqs, cudaStream_t stream) {
  using L = ChunkSmem<DKP, BV>;
  static bool configured = false;  // the attribute is per function; set once per instance
  if (!configured) {
    GDN_CUDA_CHECK(cudaFuncSetAttribute(gdn_fused_chunk_kernel<DKP, BV>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                        int(L::bytes)));
    configured = true;
  }
  const dim3 grid((p.DV + BV - 1) / BV, p.HV, num_seqs);
  gdn_fused_chunk_kernel<DKP, BV><<<grid, kChunkThreads, L::bytes, stream>>>(p);
  GDN_CUDA_CHECK_LAUNCH();
}

}  // namespace

void launch_fused_chunked(const DeltaParams& p, int num_seqs, cudaStream_t stream) {
  // DK is zero-padded to the next instantiated width; DV is tiled by BV with masked columns.
  // BV = 64 for DV % 64 == 0 (one CTA per SM, ~200 KB of shared memory); else 32.
  const bool wide = p.DV % 64 == 0;
  if (p.DK <= 16) return launch_fused_t<16, 32>(p, num_seqs, stream);
  if (p.DK <= 32) return launch_fused_t<32, 32>(p, num_seqs, stream);
  if (p.DK <= 64) return launch_fused_t<64, 32>(p, num_seqs, stream);
  if (wide) return launch_fused_t<128, 64>(p, num_seqs, stream);
  return launch_fused_t<128, 32>(p, num_seqs, stream);
}

}  // namespace gdn::cuda::detail
