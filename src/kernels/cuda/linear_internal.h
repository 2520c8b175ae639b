// Internals shared by the linear-layer translation units (kernels, cuBLASLt glue, dispatch).
// Not part of the public API (linear_cuda.h).
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "kernels/cuda/linear_cuda.h"

namespace gdn::cuda::detail {

constexpr int64_t kRowPad = 32;       // device rows are padded to this (two 16-row MMA tiles)
constexpr int64_t kGroupBytes = 128;  // K group: bytes of one weight row one warp iteration reads
constexpr int kMaxSliceTokens = 64;   // tokens per small-M launch (8 MMA n-tiles)
constexpr int kMaxCounters = 32768;   // split-K counters (one per row tile) at the start of the workspace

inline int64_t group_elems(DeviceWeightKind k) {
  return k == DeviceWeightKind::Bf16 ? 64 : k == DeviceWeightKind::Fp8 ? 128 : 256;
}
inline int64_t round_up(int64_t a, int64_t b) { return (a + b - 1) / b * b; }

// Weight × activation pairing of the small-M kernel.
enum class SmFmt : int {
  Bf16 = 0,     // BF16 weight × BF16 x (m16n8k16)
  Fp8Fp8 = 1,   // E4M3 weight × E4M3 x (m16n8k32), per-channel or 128×128 block scales
  Fp8Bf16 = 2,  // E4M3 weight decoded to BF16 × BF16 x (weight-only)
  Nvfp4 = 3,    // E2M1·E4M3 decoded to BF16 × BF16 x (x = q·s when NVFP4 activations)
};

inline SmFmt small_fmt(const DeviceLinear& w) {
  switch (w.kind) {
    case DeviceWeightKind::Bf16: return SmFmt::Bf16;
    case DeviceWeightKind::Fp8: return w.scheme.act == ActQuant::None ? SmFmt::Fp8Bf16 : SmFmt::Fp8Fp8;
    case DeviceWeightKind::Nvfp4: return SmFmt::Nvfp4;
  }
  return SmFmt::Bf16;
}

struct SmallMParams {
  const uint8_t* w = nullptr;        // weight codes, row stride ldw bytes
  int64_t ldw = 0;
  const float* wscale = nullptr;     // FP8: per-channel [rows_pad] or block [⌈N/128⌉][wscale_ld]
  int64_t wscale_ld = 0;
  int block_scaled = 0;              // FP8: scales applied per 128-K group inside the main loop
  const uint8_t* nvfp4_scales = nullptr;
  int64_t ld_bs = 0;                 // bytes per row of nvfp4_scales
  const void* x = nullptr;           // [M][ldx] bf16 or e4m3 (first token of this launch)
  int64_t ldx = 0;                   // elements
  const float* sx = nullptr;         // per-token [M] or per-group [kb][sx_ld] (first token of this launch)
  int64_t sx_ld = 0;
  int act_scaled = 0;                // FP8 per-channel: multiply by sx[token] in the epilogue
  float alpha = 1.f;                 // epilogue constant (NVFP4: 256 / divisor [/ G_x])
  const float* row_alpha = nullptr;  // NVFP4 fused: per-row epilogue multiplier (replaces alpha)
  int M = 0, N = 0;                  // tokens of this launch (≤ 64), logical rows
  int KG = 0;                        // 128-byte K groups per row
  int rtiles = 0;                    // row tiles of 16·MT rows
  int warps = 0;                     // W: warps sharing the rtiles·KG iterations (W ≤ rtiles·KG)
  int ksplit = 0;                    // decode kernel (M ≤ 16): K splits per row tile (CTA = tile·ksplit + split)
  float* partial = nullptr;          // [W][2][MT·NT·4][32]: first/last segment of each warp's range
  int* counters = nullptr;           // [rtiles], zero on entry, left zero
                                     // (decode kernel: partial is [rtiles][ksplit][MT·NT·4][32])
  float* y = nullptr;                // [M][N] (first token of this launch)
  __nv_bfloat16* y16 = nullptr;      // FP8 wgmma kernel only: when set, [M][N] rounded to nearest BF16 here
                                     // instead of y (its BF16 consumers round an fp32 y the same way)
};

// NVFP4 epilogue multiplier: 2⁸ undoes the decode's 2⁻⁸; the divisor and (with NVFP4 activations)
// G_x are the global scales.
inline float nvfp4_alpha(const DeviceLinear& w, float divisor) {
  double a = 256.0 / double(divisor);
  if (w.scheme.act == ActQuant::Nvfp4) a /= double(w.nvfp4_input_global);
  return float(a);
}

struct SmallMPlan {
  int MT = 2, NT = 1, rtiles = 0, KG = 0;
  int warps = 0, blocks = 0, threads = 0;
  size_t smem = 0;
  int ksplit = 0;  // > 0: the decode kernel (work units of one row tile × K split); 0: the stream-K kernel
};
SmallMPlan plan_small_m(const DeviceLinear& w, int M);
// The decode kernel (linear_decode.cu), which plan_small_m / launch_small_m pick where it applies.
bool use_decode_kernel(const DeviceLinear& w, int M);
SmallMPlan plan_decode(const DeviceLinear& w, int M);
void launch_decode(SmFmt f, const SmallMPlan& plan, const SmallMParams& p, cudaStream_t s, bool pdl);
size_t small_m_partial_bytes(const DeviceLinear& w, int M);
void launch_small_m(SmFmt f, const SmallMPlan& plan, const SmallMParams& p, cudaStream_t s, bool pdl);

// Native FP8 small-M path (linear_wgmma.cu): W8A8 FP8 (SmFmt::Fp8Fp8, per-channel or block-128) at
// M ≤ 64 with wgmma E4M3 (Hopper has no native FP8 mma.sync). Routed from run_small when
// fp8_wgmma_applies(): for LinearPath::AutoFast callers (the GPU model), else off by default (~2.5e-4 relative error from the FP8 tensor-core accumulation,
// vs 1e-5 for the exact mma.sync path); GDN_FP8_WGMMA=1 / set_fp8_wgmma_mode(1) opts in,
// GDN_FP8_WGMMA=0 / set_fp8_wgmma_mode(0) forces launch_small_m.
// p: as for launch_small_m (w, ldw, wscale, wscale_ld, block_scaled, x, ldx, sx, sx_ld, act_scaled, M,
// N, partial, counters, y); the K split over 64-row tiles is planned here. partial needs
// fp8_wgmma_partial_bytes(w, M).
constexpr int kFp8WgmmaMaxTokens = 64;  // one wgmma N = 8, 16, 32 or 64 tokens
struct Fp8WgmmaPlan {
  int ntok = 8, stages = 4, promote_k32 = 0, rtiles = 0, KG = 0, ksplit = 1, blocks = 0;
};
struct Fp8WgmmaTuning {  // experiments/tests: 0 = the default
  int stages = 0;        // ring depth: 4, 6 or 8
  int ksplit = 0;        // fixed K split
  int promote_k32 = 0;   // 1: every wgmma k32 into its own accumulator, summed in fp32 (precision probe)
};
bool fp8_wgmma_enabled();
// requested: the caller asked for it (LinearPath::AutoFast); it still needs Hopper and no
// GDN_FP8_WGMMA=0 / set_fp8_wgmma_mode(0). Otherwise only when enabled (GDN_FP8_WGMMA=1 / mode 1).
bool fp8_wgmma_applies(const DeviceLinear& w, int M, bool requested = false);
Fp8WgmmaPlan plan_fp8_wgmma(const DeviceLinear& w, int M);
size_t fp8_wgmma_partial_bytes(const DeviceLinear& w, int M);
void launch_fp8_wgmma(const DeviceLinear& w, const SmallMParams& p, cudaStream_t s, bool pdl);
void set_fp8_wgmma_mode(int mode);  // -1: GDN_FP8_WGMMA decides (unset = off); 0: off; 1: on
void set_fp8_wgmma_tuning(const Fp8WgmmaTuning& t);

// NVFP4 small-M path on wgmma (linear_nvfp4_wgmma.cu): the weights decoded to BF16 once per CTA
// into shared memory, BF16 wgmma against the activations (BF16, or q·s for NVFP4 activations), for
// kNvfp4WgmmaMinTokens ≤ M ≤ 64 on Hopper (GDN_NVFP4_WGMMA_MIN_M overrides the bound; 0 turns it
// off). Below it the mma.sync decode kernel was as fast or faster (H100, bench_gemm). p: as for
// launch_small_m; the schedule is planned here; partial needs nvfp4_wgmma_partial_bytes(w, M).
constexpr int kNvfp4WgmmaMinTokens = 4;
bool nvfp4_wgmma_applies(const DeviceLinear& w, int M);
size_t nvfp4_wgmma_partial_bytes(const DeviceLinear& w, int M);
void launch_nvfp4_wgmma(const DeviceLinear& w, const SmallMParams& p, cudaStream_t s, bool pdl);

// NVFP4 GEMV for 1..kNvfp4GemvMaxTokens tokens on Hopper (linear_nvfp4_gemv.cu): a TMA ring of raw
// codes and scales per CTA, register decode and mma.sync (exact like the other NVFP4 paths), one
// wave of stream-K CTAs, kNvfp4GemvCtasPerSm per SM. GDN_NVFP4_GEMV_MAX_M overrides the bound (0
// turns it off), GDN_NVFP4_GEMV_CTAS the CTAs per SM, GDN_NVFP4_GEMV_STAGES the ring depth. p: as for launch_small_m (the schedule is
// planned here); partial needs nvfp4_gemv_partial_bytes(w).
constexpr int kNvfp4GemvMaxTokens = 3;
constexpr int kNvfp4GemvMinRows = 4096;  // narrower weights keep the decode kernel
constexpr int kNvfp4GemvCtasPerSm = 2;
constexpr int kNvfp4GemvStages = 8;  // ring depth (GDN_NVFP4_GEMV_STAGES: 4, 6 or 8)
bool nvfp4_gemv_applies(const DeviceLinear& w, int M);
size_t nvfp4_gemv_partial_bytes(const DeviceLinear& w);
void launch_nvfp4_gemv(const DeviceLinear& w, const SmallMParams& p, cudaStream_t s, bool pdl);

// Activation pre-kernels. All write [rows_out][ldo] with zeros past K and for rows M..rows_out-1.
void launch_act_copy(const __nv_bfloat16* x, int64_t M, int64_t K, __nv_bfloat16* out, int64_t rows_out,
                     int64_t ldo, cudaStream_t s, bool pdl);
void launch_act_fp8_token(const __nv_bfloat16* x, int64_t M, int64_t K, uint8_t* out, float* sx, int64_t rows_out,
                          int64_t ldo, cudaStream_t s, bool pdl);
// sx: [⌈ldo/128⌉][sx_ld] (token-contiguous per K group, what cuBLASLt VEC128 wants) for tokens
// < split; tokens ≥ split go to tail[kb][tail_ld] at token − split.
void launch_act_fp8_group(const __nv_bfloat16* x, int64_t M, int64_t K, uint8_t* out, float* sx, int64_t sx_ld,
                          int64_t split, float* tail, int64_t tail_ld, int64_t rows_out, int64_t ldo, cudaStream_t s,
                          bool pdl);
// out = q·s (exact in BF16); the 1/G_x goes into the GEMM epilogue.
void launch_act_nvfp4(const __nv_bfloat16* x, int64_t M, int64_t K, float gx, __nv_bfloat16* out, int64_t rows_out,
                      int64_t ldo, cudaStream_t s, bool pdl);
// Rows [r0, r0+nrows) of an NVFP4 weight as BF16 e2m1·s·2⁻⁸ (exact), natural K order, ld cols_pad.
void launch_nvfp4_dequant(const DeviceLinear& w, int64_t r0, int64_t nrows, __nv_bfloat16* out, cudaStream_t s);

// cuBLASLt, D[n][m] (row-major y, ldd) = alpha · scaleA ⊙ scaleB ⊙ Σ_k A[n][k]·B[m][k]
// (A = weights [rows][lda], B = activations [tokens][ldb], both K-contiguous: "TN").
enum class LtType { Bf16, Fp8 };
enum class LtScale { None, OuterVec, Blk128Vec128 };
struct LtProblem {
  LtType type = LtType::Bf16;
  LtScale scale = LtScale::None;
  int64_t n = 0, m = 0, k = 0;    // weight rows, tokens, reduction
  const void* a = nullptr;        // weights
  int64_t lda = 0;
  const void* b = nullptr;        // activations
  int64_t ldb = 0;
  void* d = nullptr;               // fp32, or BF16 when d_bf16
  int64_t ldd = 0;
  bool d_bf16 = false;             // D rounded to nearest BF16 by cuBLASLt's epilogue
  float alpha = 1.f;
  const float* a_scale = nullptr;  // OuterVec: [n]; Blk128: [⌈n/128⌉][ld multiple of 4]
  const float* b_scale = nullptr;  // OuterVec: [m]; Vec128: [⌈k/128⌉][m]
  // FP8 only: let the tensor cores accumulate the whole K in their own (reduced-precision) adder
  // instead of cuBLASLt promoting partial sums to fp32 registers (CUBLASLT_MATMUL_DESC_FAST_ACCUM):
  // the mode vLLM's FP8 GEMMs run in. GDN_LT_FAST_ACCUM=0|1 overrides it (experiments).
  bool fast_accum = false;
};
// false when cuBLASLt has no algorithm for the problem (cached); throws on a failed launch.
bool lt_matmul(const LtProblem& p, void* workspace, size_t workspace_bytes, cudaStream_t s);
constexpr size_t kLtWorkspaceBytes = size_t(32) << 20;

}  // namespace gdn::cuda::detail
