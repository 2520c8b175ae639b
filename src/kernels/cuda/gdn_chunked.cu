// Gated delta rule, chunked WY/UT form for sequences of ≥ 2 tokens (prefill), on tensor cores.
// CPU reference: kernels/cpu/delta_rule.cpp prepare_chunk / apply_chunk (model.md §3.6). Per chunk of
// n ≤ 64 tokens (rows ≥ n zero-padded with β = g = 0, which makes them inert):
//   q, k ← l2norm (q × 1/√DK); β = σ(b); g = −e^A·softplus(a + dt_bias); γ = cumsum g
//   A = strict_lower(β_r·k_r·k_c·e^{γr−γc});  M = lower(q_r·k_c·e^{γr−γc});  T = (I + A)⁻¹
//   Vn = U − W·S = T·diag(β)·(V − diag(e^γ)·K·S)
//   O = diag(e^γ)·Q·S + M·Vn;  S ← e^{γL}·S + (diag(e^{γL−γ})·K)ᵀ·Vn
//
// Two implementations:
//  * split (DK 65..128, the 27B): a fully parallel prep kernel over (chunk, value head, sequence)
//    computes everything that does not depend on the state (norms, gates, A, T, M) into a scratch
//    buffer; a recurrence kernel per (64-column slice of DV, value head, sequence) then runs only the
//    state-dependent products chunk after chunk (three phases, mma.sync m16n8k8 TF32, S fp32 in
//    registers). Chunks are processed in windows that bound the scratch (kScratchCap).
//  * fused (DK ≤ 64, or no workspace / unknown max_q_len): one CTA per (DV tile, head, sequence)
//    doing the whole chunk with WMMA.
// Precision: TF32 operands (10-bit mantissa, round to nearest), fp32 accumulation; T solved and S
// kept in fp32. Outputs ~1e-3 relative (fused, H100: outputs ≤ 1.3e-3, states ≤ 7e-4).
// Speed (H100, 27B, one 8192-token sequence, GdnPerf): split 1.36 ms (prep + 96 recurrence CTAs,
// ~9 us per chunk) vs fused 4.35 ms (~34 us per chunk). The recurrence is bound by shared-memory fragment loads and
// TF32 mma.sync issue; next steps: ldmatrix fragments from transposed mirrors, BF16 for the
// Q·S / K·S products if the error budget allows, overlapping the next window's prep.
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

using namespace chunk;

// ======================= split form: parallel chunk prep + state recurrence =======================

__device__ __forceinline__ uint32_t to_tf32(float x) {
  uint32_t r;
  asm("cvt.rna.tf32.f32 %0, %1;" : "=r"(r) : "f"(x));
  return r;
}
__device__ __forceinline__ float round_tf32f(float x) { return __uint_as_float(to_tf32(x)); }
// D += A·B, m16n8k8, TF32 operands, fp32 accumulation. Fragments (g = lane/4, t = lane%4):
// a0 (g, t), a1 (g+8, t), a2 (g, t+4), a3 (g+8, t+4); b0 (k t, n g), b1 (k t+4, n g);
// c0/c1 (g, 2t/2t+1), c2/c3 (g+8, 2t/2t+1).
__device__ __forceinline__ void mma_tf32(float (&c)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
  asm volatile("mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
               "{%0,%1,%2,%3};\n"
               : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
               : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}
// A fragment of a row-major [m][k] tile at (m0, k0); kRound: fp32 source (else already TF32).
template <bool kRound>
__device__ __forceinline__ void frag_a(uint32_t (&a)[4], const float* s, int ld, int m0, int k0, int g, int t) {
  const float* p = s + (m0 + g) * ld + k0 + t;
  const float x[4] = {p[0], p[8 * ld], p[4], p[8 * ld + 4]};
#pragma unroll
  for (int i = 0; i < 4; ++i) a[i] = kRound ? to_tf32(x[i]) : __float_as_uint(x[i]);
}
// A fragment of Aᵀ where the source is row-major [k][m] (A(m, k) = s[k·ld + m]), fp32 source.
__device__ __forceinline__ void frag_at(uint32_t (&a)[4], const float* s, int ld, int m0, int k0, int g, int t) {
  const float* p = s + (k0 + t) * ld + m0 + g;
  a[0] = to_tf32(p[0]), a[1] = to_tf32(p[8]), a[2] = to_tf32(p[4 * ld]), a[3] = to_tf32(p[4 * ld + 8]);
}

constexpr int kSplitThreads = 256;
constexpr int kSplitBV = 64;  // state columns per recurrence CTA
constexpr int LQK = 132;      // [64][128] q / k rows; ≡ 4 (mod 32): A fragments conflict-free
constexpr int LCC = 68;       // [64][64] A / T / M as A operands; ≡ 4 (mod 32)
constexpr int LB = 72;        // [k][n] B operands (S, R, Vn, Vk); ≡ 8 (mod 32): conflict-free
// Scratch slot of one (sequence, chunk, value head), floats: T [64][64] (TF32, upper part 0),
// M [64][64] (TF32, masked), then 64 each of qs = qinv·e^γ, ks = kinv·e^γ, β,
// d = kinv·e^{γL−γ}, misc (misc[0] = e^{γL}).
constexpr int kSlotT = 0, kSlotM = 4096, kSlotQS = 8192, kSlotKS = 8256, kSlotBeta = 8320, kSlotD = 8384,
              kSlotMisc = 8448, kSlotFloats = 8512, kScalFloats = 320;
constexpr size_t kSlotBytes = size_t(kSlotFloats) * 4;

// Prep: one CTA per (value head, chunk, sequence) of the window; everything that does not depend
// on the state. smem: Q, K [64][LQK] raw, A [64][LCC], qinv, kinv, β, γ.
constexpr int kPrepQ = 0, kPrepK = 64 * LQK, kPrepA = 2 * 64 * LQK, kPrepQinv = kPrepA + 64 * LCC,
              kPrepKinv = kPrepQinv + 64, kPrepBeta = kPrepKinv + 64, kPrepGam = kPrepBeta + 64,
              kPrepFloats = kPrepGam + 64;
constexpr size_t kPrepBytes = size_t(kPrepFloats) * 4;

__global__ void __launch_bounds__(kSplitThreads, 2)
    gdn_chunk_prep_kernel(DeltaParams p, float* scratch, int s0, int chunk0, int wc) {
  constexpr int C = kChunk;
  // Value heads vary fastest in launch order: the HV / HK heads sharing a key head read the same q
  // and k rows, which the first one brings into L2 for the others.
  const int ci = chunk0 + blockIdx.y, j = blockIdx.x, s = s0 + blockIdx.z;
  const int bos = p.cu_seqlens[s], len = p.cu_seqlens[s + 1] - bos;
  if (len <= 1 || p.state_slots[s] < 0 || ci * C >= len) return;
  const int n = min(C, len - ci * C);
  const int64_t row0 = bos + int64_t(ci) * C;
  float* slot = scratch + ((int64_t(blockIdx.z) * wc + blockIdx.y) * p.HV + j) * kSlotFloats;

  extern __shared__ __align__(128) float smem[];
  float *sQ = smem + kPrepQ, *sK = smem + kPrepK, *sA = smem + kPrepA, *sQinv = smem + kPrepQinv,
        *sKinv = smem + kPrepKinv, *sBeta = smem + kPrepBeta, *sGam = smem + kPrepGam;
  const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31, g = lane >> 2, t = lane & 3;
  const int DK = p.DK, HV = p.HV;
  const int kh = j / (HV / p.HK);
  const int64_t q_off = int64_t(kh) * DK, k_off = int64_t(p.HK) * DK + int64_t(kh) * DK;

  for (int e = tid; e < C * 32; e += kSplitThreads) {
    const int r = e >> 5, c = (e & 31) * 4;
    const bool ok = r < n && c < DK;
    const float* rp = p.qkv + (row0 + (ok ? r : 0)) * p.conv_dim + (ok ? c : 0);
    cp_async16(sQ + r * LQK + c, rp + q_off, ok);
    cp_async16(sK + r * LQK + c, rp + k_off, ok);
  }
  cp_async_commit();
  if (tid < C) {
    float b = 0.f, gg = 0.f;
    if (tid < n) {
      const float* bar = p.ba + (row0 + tid) * p.ba_ld;
      b = gdn_sigmoid(bar[j]);
      gg = p.neg_exp_A[j] * gdn_softplus(bar[HV + j] + p.dt_bias[j]);
    }
    sBeta[tid] = b;
    sGam[tid] = gg;  // g, made cumulative below
  }
  cp_async_wait_all();
  __syncthreads();
  {  // inverse L2 norms (two threads per row; rows 0–63 q, 64–127 k) and γ = cumsum g
    const int r = tid >> 1;
    const float* hp = (r < C ? sQ + r * LQK : sK + (r - C) * LQK) + (tid & 1) * 64;
    float ss = 0.f;
#pragma unroll
    for (int c = 0; c < 64; c += 4) {
      const float4 v = ld4(hp + c);
      ss += v.x * v.x + v.y * v.y + v.z * v.z + v.w * v.w;
    }
    ss += __shfl_xor_sync(0xffffffffu, ss, 1);
    if ((tid & 1) == 0) {
      if (r < C) sQinv[r] = p.q_scale / sqrtf(ss + kGdnL2Eps);
      else sKinv[r - C] = 1.f / sqrtf(ss + kGdnL2Eps);
    }
  }
  if (warp == kSplitThreads / 32 - 1) warp_cumsum64(sGam, sGam, lane);
  for (int e = tid; e < C * C; e += kSplitThreads) {  // zero M above the diagonal blocks
    const int r = e >> 6, c = e & 63;
    if ((c >> 4) > (r >> 4)) slot[kSlotM + e] = 0.f;
  }
  __syncthreads();
  // K·Kᵀ → A = strict_lower(β_r k̂_r·k̂_c e^{γr−γc}) (smem), Q·Kᵀ → M = lower(q̂_r·k̂_c e^{γr−γc})
  // (scratch): the 10 lower 16×16 blocks of each, 20 jobs over 8 warps.
  for (int job = warp; job < 20; job += kSplitThreads / 32) {
    const bool is_m = job >= 10;
    const int lt = job % 10, rb = (lt >= 1) + (lt >= 3) + (lt >= 6), cb = lt - rb * (rb + 1) / 2;
    const float* src = is_m ? sQ : sK;
    float acc[2][4] = {};
#pragma unroll 4
    for (int k0 = 0; k0 < 128; k0 += 8) {
      uint32_t a[4];
      frag_a<true>(a, src, LQK, rb * 16, k0, g, t);
#pragma unroll
      for (int nt = 0; nt < 2; ++nt) {
        const float* bp = sK + (cb * 16 + nt * 8 + g) * LQK + k0 + t;
        mma_tf32(acc[nt], a, to_tf32(bp[0]), to_tf32(bp[4]));
      }
    }
#pragma unroll
    for (int nt = 0; nt < 2; ++nt)
#pragma unroll
      for (int i = 0; i < 4; ++i) {
        const int r = rb * 16 + g + 8 * (i >> 1), c = cb * 16 + nt * 8 + 2 * t + (i & 1);
        const float dec = c <= r ? expf(sGam[r] - sGam[c]) : 0.f;  // ≤ 1: γ is non-increasing
        if (is_m) slot[kSlotM + r * C + c] = round_tf32f(sQinv[r] * sKinv[c] * acc[nt][i] * dec);
        else sA[r * LCC + c] = c < r ? sBeta[r] * sKinv[r] * sKinv[c] * acc[nt][i] * dec : 0.f;
      }
  }
  __syncthreads();
  if (tid < C) {  // T = (I + A)⁻¹, one thread per column
    float tc[C];
    solve_t_column(sA, LCC, tid, tc);
#pragma unroll
    for (int r = 0; r < C; ++r) slot[kSlotT + r * C + tid] = round_tf32f(tc[r]);
  } else if (tid < 2 * C) {  // the per-row scales of the recurrence (rows ≥ n: β = 0, zero q/k rows)
    const int r = tid - C;
    const float gl = sGam[C - 1], eg = expf(sGam[r]);
    slot[kSlotQS + r] = sQinv[r] * eg;
    slot[kSlotKS + r] = sKinv[r] * eg;
    slot[kSlotBeta + r] = sBeta[r];
    slot[kSlotD + r] = sKinv[r] * expf(gl - sGam[r]);
    slot[kSlotMisc + r] = r == 0 ? expf(gl) : 0.f;
  }
}

// Recurrence: one CTA per (64-column slice of DV, value head, sequence) over the window's chunks.
// Per chunk, with the prep's T, M and row scales (q̂ = qinv·q etc.):
//   Ph1  O = diag(qs)·Q·S (registers of warps 0–3);  R = diag(β)(V − diag(ks)·K·S) (warps 4–7)
//   Ph2  Vn = T·R;  Vk = diag(d)·Vn
//   Ph3  O += M·Vn → out (warps 0–3);  S = e^{γL}·S + Kᵀ·Vk (warps 4–7, fp32 in registers)
// (Vn = T·diag(β)(V − diag(e^γ)·K̂·S) is the reference's U − W·S.) The next chunk's inputs are
// fetched by cp.async as soon as their buffers are consumed: Q after Ph1, V and T after Ph2,
// K and M after Ph3. S is kept fp32 in the registers of warps 4–7 (32 rows × 64 columns each)
// and mirrored in shared memory as TF32 for the Q·S and K·S products.
constexpr int kRecQ = 0, kRecK = kRecQ + 64 * LQK, kRecS = kRecK + 64 * LQK, kRecV = kRecS + 128 * LB,
              kRecT = kRecV + 64 * LB, kRecM = kRecT + 64 * LCC, kRecVn = kRecM + 64 * LCC, kRecVk = kRecVn + 64 * LB,
              kRecScal = kRecVk + 64 * LB, kRecFloats = kRecScal + 2 * kScalFloats;
constexpr size_t kRecBytes = size_t(kRecFloats) * 4;
static_assert(kRecBytes <= 227 * 1024, "recurrence smem over the opt-in limit");

template <int N>
__device__ __forceinline__ void cp_async_wait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory");
}

__global__ void __launch_bounds__(kSplitThreads, 1)
    gdn_chunk_recurrence_kernel(DeltaParams p, const float* scratch, int s0, int chunk0, int wc) {
  constexpr int C = kChunk, BV = kSplitBV;
  const int c0 = blockIdx.x * BV, j = blockIdx.y, s = s0 + blockIdx.z;
  const int bos = p.cu_seqlens[s], len = p.cu_seqlens[s + 1] - bos;
  const int state_slot = p.state_slots[s];
  if (len <= 1 || state_slot < 0) return;
  const int c_end = min(chunk0 + wc, (len + C - 1) / C);
  if (chunk0 >= c_end) return;

  extern __shared__ __align__(128) float smem[];
  float *sQ = smem + kRecQ, *sK = smem + kRecK, *sS = smem + kRecS, *sV = smem + kRecV, *sT = smem + kRecT,
        *sM = smem + kRecM, *sVn = smem + kRecVn, *sVk = smem + kRecVk, *sScal = smem + kRecScal;
  const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31, g = lane >> 2, t = lane & 3;
  const int DK = p.DK, DV = p.DV, HV = p.HV;
  const int ncols = min(BV, DV - c0);
  const int kh = j / (HV / p.HK);
  const int64_t q_off = int64_t(kh) * DK, k_off = int64_t(p.HK) * DK + int64_t(kh) * DK,
                v_off = 2 * int64_t(p.HK) * DK + int64_t(j) * DV + c0;
  float* Sg = p.state + (int64_t(state_slot) * HV + j) * int64_t(DK) * DV + c0;
  auto slot_of = [&](int ci) { return scratch + ((int64_t(blockIdx.z) * wc + (ci - chunk0)) * HV + j) * kSlotFloats; };
  auto rows_of = [&](int ci) { return min(C, len - ci * C); };

  // Loaders of chunk ci's buffers (rows ≥ n and columns past DK / DV zero-filled).
  auto load_qk = [&](float* dst, int64_t off, int ci) {
    const int n = rows_of(ci);
    const int64_t row0 = bos + int64_t(ci) * C;
    for (int e = tid; e < C * 32; e += kSplitThreads) {
      const int r = e >> 5, c = (e & 31) * 4;
      const bool ok = r < n && c < DK;
      cp_async16(dst + r * LQK + c, p.qkv + (row0 + (ok ? r : 0)) * p.conv_dim + off + (ok ? c : 0), ok);
    }
  };
  auto load_v = [&](int ci) {
    const int n = rows_of(ci);
    const int64_t row0 = bos + int64_t(ci) * C;
    for (int e = tid; e < C * (BV / 4); e += kSplitThreads) {
      const int r = e / (BV / 4), c = (e % (BV / 4)) * 4;
      const bool ok = r < n && c < ncols;
      cp_async16(sV + r * LB + c, p.qkv + (row0 + (ok ? r : 0)) * p.conv_dim + v_off + (ok ? c : 0), ok);
    }
  };
  auto load_cc = [&](float* dst, int slot_off, int ci) {  // T or M [64][64] → [64][LCC]
    const float* src = slot_of(ci) + slot_off;
    for (int e = tid; e < C * 16; e += kSplitThreads) {
      const int r = e >> 4, c = (e & 15) * 4;
      cp_async16(dst + r * LCC + c, src + r * C + c, true);
    }
  };
  auto load_scal = [&](int ci) {
    if (tid < kScalFloats / 4)
      cp_async16(sScal + ((ci - chunk0) & 1) * kScalFloats + 4 * tid, slot_of(ci) + kSlotQS + 4 * tid, true);
  };

  // Warps 4–7: S rows 32u..32u+31 (two m16 tiles) × 64 columns, fp32, in registers.
  const int u = warp - 4;
  float sreg[2][8][4];
  // f(row i, column c, the register pair (i, c), (i, c + 1)) over the S registers of this thread.
  auto for_s_pairs = [&](auto&& f) {
#pragma unroll
    for (int mt = 0; mt < 2; ++mt)
#pragma unroll
      for (int nt = 0; nt < 8; ++nt)
#pragma unroll
        for (int h = 0; h < 2; ++h) f(32 * u + 16 * mt + g + 8 * h, nt * 8 + 2 * t, sreg[mt][nt][2 * h], sreg[mt][nt][2 * h + 1]);
  };
  if (warp >= 4) for_s_pairs([&](int i, int c, float& x0, float& x1) {
      float2 v = make_float2(0.f, 0.f);
      if (i < DK && c < ncols) v = *reinterpret_cast<const float2*>(Sg + int64_t(i) * DV + c);
      x0 = v.x, x1 = v.y;
      *reinterpret_cast<float2*>(sS + i * LB + c) = make_float2(round_tf32f(v.x), round_tf32f(v.y));
    });
  // Prologue: the first chunk's buffers, in the commit-group order of the loop (Q+scales | V+T | K | M).
  load_qk(sQ, q_off, chunk0);
  load_scal(chunk0);
  cp_async_commit();
  load_v(chunk0);
  load_cc(sT, kSlotT, chunk0);
  cp_async_commit();
  load_qk(sK, k_off, chunk0);
  cp_async_commit();
  load_cc(sM, kSlotM, chunk0);
  cp_async_commit();

  float acc[8][4];  // warps 0–3: the O rows 16·warp.. across Ph1–Ph3; warps 4–7: K·S in Ph1
  for (int ci = chunk0; ci < c_end; ++ci) {
    const int n = rows_of(ci);
    const int64_t row0 = bos + int64_t(ci) * C;
    const bool more = ci + 1 < c_end;
    const float* sc = sScal + ((ci - chunk0) & 1) * kScalFloats;
    if (more) {  // next chunk's k rows (four 128-byte lines each) into L2; its q, v, T, M follow later
      const int r = tid >> 2;
      if (r < rows_of(ci + 1)) prefetch_l2(p.qkv + (row0 + C + r) * p.conv_dim + k_off + 32 * (tid & 3));
    }
    cp_async_wait<1>();  // all but M
    __syncthreads();
    // ---- Ph1: Q·S (warps 0–3) and K·S (warps 4–7), rows 16·(warp%4).., all 64 columns.
    {
      const float* src = warp < 4 ? sQ : sK;
      const int m0 = 16 * (warp & 3);
#pragma unroll
      for (int nt = 0; nt < 8; ++nt) acc[nt][0] = acc[nt][1] = acc[nt][2] = acc[nt][3] = 0.f;
#pragma unroll 2
      for (int k0 = 0; k0 < 128; k0 += 8) {
        uint32_t a[4];
        frag_a<true>(a, src, LQK, m0, k0, g, t);
        const float* bp = sS + (k0 + t) * LB + g;
#pragma unroll
        for (int nt = 0; nt < 8; ++nt)
          mma_tf32(acc[nt], a, __float_as_uint(bp[nt * 8]), __float_as_uint(bp[4 * LB + nt * 8]));
      }
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        const int r = m0 + g + 8 * h;
        if (warp < 4) {
          const float qs = sc[r];
#pragma unroll
          for (int nt = 0; nt < 8; ++nt) acc[nt][2 * h] *= qs, acc[nt][2 * h + 1] *= qs;
        } else {
          const float ks = sc[64 + r], be = sc[128 + r];
#pragma unroll
          for (int nt = 0; nt < 8; ++nt) {
            float2* vp = reinterpret_cast<float2*>(sV + r * LB + nt * 8 + 2 * t);
            const float2 v = *vp;
            *vp = make_float2(round_tf32f(be * (v.x - ks * acc[nt][2 * h])),
                              round_tf32f(be * (v.y - ks * acc[nt][2 * h + 1])));
          }
        }
      }
    }
    __syncthreads();
    if (more) {
      load_qk(sQ, q_off, ci + 1);
      load_scal(ci + 1);
    }
    cp_async_commit();
    // ---- Ph2: Vn = T·R (T lower: row block rb needs k < 16(rb+1)); Vk = diag(d)·Vn.
    {
      const int rb = warp >> 1, n0 = 32 * (warp & 1);
      float v[4][4] = {};
      for (int k0 = 0; k0 < 16 * (rb + 1); k0 += 8) {
        uint32_t a[4];
        frag_a<false>(a, sT, LCC, 16 * rb, k0, g, t);
        const float* bp = sV + (k0 + t) * LB + n0 + g;
#pragma unroll
        for (int nt = 0; nt < 4; ++nt)
          mma_tf32(v[nt], a, __float_as_uint(bp[nt * 8]), __float_as_uint(bp[4 * LB + nt * 8]));
      }
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        const int r = 16 * rb + g + 8 * h;
        const float d = sc[192 + r];
#pragma unroll
        for (int nt = 0; nt < 4; ++nt) {
          const int c = n0 + nt * 8 + 2 * t;
          const float x0 = v[nt][2 * h], x1 = v[nt][2 * h + 1];
          *reinterpret_cast<float2*>(sVn + r * LB + c) = make_float2(round_tf32f(x0), round_tf32f(x1));
          *reinterpret_cast<float2*>(sVk + r * LB + c) = make_float2(round_tf32f(d * x0), round_tf32f(d * x1));
        }
      }
    }
    cp_async_wait<0>();  // M of this chunk (and the next chunk's Q)
    __syncthreads();
    if (more) {
      load_v(ci + 1);
      load_cc(sT, kSlotT, ci + 1);
    }
    cp_async_commit();
    // ---- Ph3
    if (warp < 4) {  // O += M·Vn, then the chunk's output rows
      const int rb = warp;
      for (int k0 = 0; k0 < 16 * (rb + 1); k0 += 8) {
        uint32_t a[4];
        frag_a<false>(a, sM, LCC, 16 * rb, k0, g, t);
        const float* bp = sVn + (k0 + t) * LB + g;
#pragma unroll
        for (int nt = 0; nt < 8; ++nt)
          mma_tf32(acc[nt], a, __float_as_uint(bp[nt * 8]), __float_as_uint(bp[4 * LB + nt * 8]));
      }
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        const int r = 16 * rb + g + 8 * h;
        if (r < n) {
          float* orow = p.out + ((row0 + r) * HV + j) * int64_t(DV) + c0;
#pragma unroll
          for (int nt = 0; nt < 8; ++nt) {
            const int c = nt * 8 + 2 * t;
            if (c < ncols) *reinterpret_cast<float2*>(orow + c) = make_float2(acc[nt][2 * h], acc[nt][2 * h + 1]);
          }
        }
      }
    } else {  // S = e^{γL}·S + Kᵀ·Vk over the chunk's valid rows
      const float eL = sc[256];
#pragma unroll
      for (int mt = 0; mt < 2; ++mt)
#pragma unroll
        for (int nt = 0; nt < 8; ++nt)
#pragma unroll
          for (int i = 0; i < 4; ++i) sreg[mt][nt][i] *= eL;
      const int kend = (n + 7) & ~7;
      for (int k0 = 0; k0 < kend; k0 += 8) {
        uint32_t a0[4], a1[4];
        frag_at(a0, sK, LQK, 32 * u, k0, g, t);
        frag_at(a1, sK, LQK, 32 * u + 16, k0, g, t);
        const float* bp = sVk + (k0 + t) * LB + g;
#pragma unroll
        for (int nt = 0; nt < 8; ++nt) {
          const uint32_t b0 = __float_as_uint(bp[nt * 8]), b1 = __float_as_uint(bp[4 * LB + nt * 8]);
          mma_tf32(sreg[0][nt], a0, b0, b1);
          mma_tf32(sreg[1][nt], a1, b0, b1);
        }
      }
      for_s_pairs([&](int i, int c, float& x0, float& x1) {
        *reinterpret_cast<float2*>(sS + i * LB + c) = make_float2(round_tf32f(x0), round_tf32f(x1));
      });
    }
    __syncthreads();
    if (more) load_qk(sK, k_off, ci + 1);
    cp_async_commit();
    if (more) load_cc(sM, kSlotM, ci + 1);
    cp_async_commit();
  }
  cp_async_wait<0>();
  if (warp >= 4) for_s_pairs([&](int i, int c, float& x0, float& x1) {
      if (i < DK && c < ncols) *reinterpret_cast<float2*>(Sg + int64_t(i) * DV + c) = make_float2(x0, x1);
    });
}

// The split form's scratch is the caller's workspace (gdn_workspace_bytes → split_scratch_bytes),
// so it needs no allocation and no host read-back, and is CUDA-graph safe; windows of chunks and
// groups of sequences bound it.
constexpr size_t kScratchCap = size_t(64) << 20;

bool split_form(const DeltaParams& p) { return p.DK > 64 && p.DK <= 128; }

bool launch_split(const DeltaParams& p, int num_seqs, cudaStream_t stream) {
  const int max_len = p.max_q_len;
  if (max_len <= 1) return max_len == 1;  // 0 = unknown: let the fused form handle it
  const int chunks = (max_len + kChunk - 1) / kChunk;
  int64_t cap_slots = int64_t(p.scratch_bytes / kSlotBytes);
  if (const char* e = std::getenv("GDN_DELTA_SCRATCH_SLOTS"))  // tests: smaller windows and groups
    cap_slots = std::min<int64_t>(cap_slots, std::max<int64_t>(1, std::atoll(e)));
  if (p.scratch == nullptr || cap_slots < p.HV) return false;
  const int wc = int(std::clamp<int64_t>(cap_slots / p.HV, 1, chunks));
  const int gs = int(std::clamp<int64_t>(cap_slots / (int64_t(p.HV) * wc), 1, num_seqs));
  float* const scratch = p.scratch;
  static bool configured = false;
  if (!configured) {
    GDN_CUDA_CHECK(cudaFuncSetAttribute(gdn_chunk_prep_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                        int(kPrepBytes)));
    GDN_CUDA_CHECK(cudaFuncSetAttribute(gdn_chunk_recurrence_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                        int(kRecBytes)));
    configured = true;
  }
  for (int sb = 0; sb < num_seqs; sb += gs) {
    const int gn = std::min(gs, num_seqs - sb);
    for (int cb = 0; cb < chunks; cb += wc) {
      const dim3 prep_grid(p.HV, std::min(wc, chunks - cb), gn), rec_grid((p.DV + kSplitBV - 1) / kSplitBV, p.HV, gn);
      gdn_chunk_prep_kernel<<<prep_grid, kSplitThreads, kPrepBytes, stream>>>(p, scratch, sb, cb, wc);
      GDN_CUDA_CHECK_LAUNCH();
      gdn_chunk_recurrence_kernel<<<rec_grid, kSplitThreads, kRecBytes, stream>>>(p, scratch, sb, cb, wc);
      GDN_CUDA_CHECK_LAUNCH();
    }
  }
  return true;
}

}  // namespace

size_t split_scratch_bytes(const GdnDims& d, int max_tokens, int max_seqs) {
  DeltaParams p;
  p.DK = d.key_dim;
  if (!split_form(p) || max_tokens < 2) return 0;
  const int64_t chunks = (max_tokens + kChunk - 1) / kChunk + std::max(0, max_seqs - 1);  // partial chunks
  const int64_t need = chunks * d.value_heads * int64_t(kSlotBytes);
  return size_t(std::min<int64_t>(need, int64_t(kScratchCap)));
}

void launch_chunked(const DeltaParams& p, int num_seqs, cudaStream_t stream) {
  const char* force_fused = std::getenv("GDN_DELTA_FUSED");  // tests / benchmarks: the old form
  if (split_form(p) && !(force_fused && force_fused[0] == '1') && launch_split(p, num_seqs, stream)) return;
  launch_fused_chunked(p, num_seqs, stream);
}

}  // namespace gdn::cuda::detail
