// linear_forward: activation quantization, then the small-M kernel or the large-M (cuBLASLt) path.
#include <algorithm>
#include <cstdlib>
#include <string>

#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/linear_cuda.h"
#include "kernels/cuda/linear_internal.h"

namespace gdn::cuda {

using namespace detail;

namespace {

size_t align256(size_t b) { return (b + 255) & ~size_t(255); }

// Workspace regions, laid out from the start of the buffer. Every region grows with M, so the
// layout for any M ≤ max_m fits a workspace sized for max_m.
struct WsLayout {
  size_t counters = 0, act = 0, sx = 0, sx_tail = 0, partial = 0, dequant = 0, lt = 0, total = 0;
};

int64_t dequant_slice_rows(const DeviceLinear& w) {
  const int64_t budget = int64_t(64) << 20;  // bytes of BF16 per slice: L2-sized pieces, bounded memory
  int64_t r = budget / (w.cols_pad * 2) / 128 * 128;
  return std::max<int64_t>(128, std::min(r, w.rows_pad));
}

WsLayout ws_layout(const DeviceLinear& w, int64_t max_m) {
  WsLayout L;
  const int64_t m4 = round_up(std::max<int64_t>(max_m, 1), 4);
  size_t off = 0;
  auto take = [&](size_t bytes) {
    const size_t at = off;
    off += align256(bytes);
    return at;
  };
  L.counters = take(size_t(kMaxCounters) * 4);
  L.act = take(size_t(m4 * w.cols_pad * 2));                // BF16 copy / q·s, or E4M3 codes
  L.sx = take(size_t((w.cols_pad / 128 + 1) * m4 * 4));    // per token, or [kb][tokens]
  L.sx_tail = take(size_t((w.cols_pad / 128 + 1) * 4 * 4));
  size_t part = 0;
  for (int m : {8, 16, 32, 64}) part = std::max(part, small_m_partial_bytes(w, int(std::min<int64_t>(m, m4))));
  for (int m : {8, 16, 32, 64}) part = std::max(part, fp8_wgmma_partial_bytes(w, int(std::min<int64_t>(m, m4))));
  for (int m : {8, 16, 32, 64}) part = std::max(part, nvfp4_wgmma_partial_bytes(w, int(std::min<int64_t>(m, m4))));
  part = std::max(part, nvfp4_gemv_partial_bytes(w));
  L.partial = take(part);
  L.dequant = take(w.kind == DeviceWeightKind::Nvfp4 ? size_t(dequant_slice_rows(w) * w.cols_pad * 2) : 0);
  L.lt = take(kLtWorkspaceBytes);
  L.total = off;
  return L;
}

bool pdl_enabled() {
  static const bool on = std::getenv("GDN_NO_PDL") == nullptr;
  return on;
}

float nvfp4_alpha(const DeviceLinear& w) { return detail::nvfp4_alpha(w, w.nvfp4_weight_divisor); }

// Prepared activations of one call.
struct Acts {
  const void* x = nullptr;   // first token
  int64_t ldx = 0;           // elements
  size_t elem = 2;           // bytes per element
  const float* sx = nullptr; // per token, or [kb][sx_ld]
  int64_t sx_ld = 0;
  int64_t sx_token0 = 0;     // token whose scale is at sx[0]
};

// Where a call's GEMM writes: fp32 y, or y rounded to nearest BF16 (the large-M path, and the
// small-M FP8 wgmma kernel: small_bf16_applies).
struct YOut {
  void* p = nullptr;
  bool bf16 = false;
  YOut rows_from(int64_t elems) const { return {static_cast<char*>(p) + elems * (bf16 ? 2 : 4), bf16}; }
};

// Whether every small-M launch of tokens [0, M) runs the FP8 wgmma kernel, the one small-M kernel
// that can write BF16.
bool small_bf16_applies(const DeviceLinear& w, int64_t M, bool fast) {
  if (small_fmt(w) != SmFmt::Fp8Fp8) return false;
  for (int64_t t = 0; t < M; t += kMaxSliceTokens)
    if (!fp8_wgmma_applies(w, int(std::min<int64_t>(kMaxSliceTokens, M - t)), fast)) return false;
  return true;
}

// Small-M kernel over tokens [m0, m1) of `a`, 64 tokens per launch (y.bf16: small_bf16_applies).
void run_small(const DeviceLinear& w, const Acts& a, int64_t m0, int64_t m1, YOut y, char* ws, const WsLayout& L,
               cudaStream_t s, bool fast) {
  const SmFmt f = small_fmt(w);
  for (int64_t t = m0; t < m1; t += kMaxSliceTokens) {
    const int M = int(std::min<int64_t>(kMaxSliceTokens, m1 - t));
    const bool wgmma = f == SmFmt::Fp8Fp8 && fp8_wgmma_applies(w, M, fast);  // native FP8 decode (linear_wgmma.cu)
    if (y.bf16 && !wgmma) throw CudaError("linear_forward: BF16 output from a small-M kernel other than FP8 wgmma");
    const bool nv_gemv = f == SmFmt::Nvfp4 && nvfp4_gemv_applies(w, M);                // linear_nvfp4_gemv.cu
    const bool nv_wgmma = !nv_gemv && f == SmFmt::Nvfp4 && nvfp4_wgmma_applies(w, M);  // linear_nvfp4_wgmma.cu
    const SmallMPlan pl = wgmma || nv_wgmma || nv_gemv ? SmallMPlan{} : plan_small_m(w, M);
    SmallMParams p;
    p.w = static_cast<const uint8_t*>(w.weight);
    p.ldw = w.kind == DeviceWeightKind::Bf16 ? w.cols_pad * 2 : w.kind == DeviceWeightKind::Fp8 ? w.cols_pad : w.cols_pad / 2;
    p.wscale = w.scales;
    p.wscale_ld = w.scale_ld;
    p.block_scaled = w.scheme.weight == WeightFormat::Fp8Block128;
    p.nvfp4_scales = w.block_scales;
    p.ld_bs = w.cols_pad / 16;
    p.x = static_cast<const char*>(a.x) + size_t(t) * size_t(a.ldx) * a.elem;
    p.ldx = a.ldx;
    p.sx = a.sx ? a.sx + (t - a.sx_token0) : nullptr;
    p.sx_ld = a.sx_ld;
    p.act_scaled = w.scheme.act == ActQuant::Fp8PerToken;
    p.alpha = w.kind == DeviceWeightKind::Nvfp4 ? nvfp4_alpha(w) : 1.f;
    p.row_alpha = w.kind == DeviceWeightKind::Nvfp4 ? w.nvfp4_row_alpha : nullptr;
    p.M = M;
    p.N = int(w.rows);
    p.KG = pl.KG;
    p.rtiles = pl.rtiles;
    p.warps = pl.warps;
    p.ksplit = pl.ksplit;
    p.partial = reinterpret_cast<float*>(ws + L.partial);
    p.counters = reinterpret_cast<int*>(ws + L.counters);
    const YOut yt = y.rows_from(t * w.rows);
    if (yt.bf16) p.y16 = static_cast<__nv_bfloat16*>(yt.p);
    else p.y = static_cast<float*>(yt.p);
    if (wgmma)
      launch_fp8_wgmma(w, p, s, pdl_enabled());
    else if (nv_gemv)
      launch_nvfp4_gemv(w, p, s, pdl_enabled());
    else if (nv_wgmma)
      launch_nvfp4_wgmma(w, p, s, pdl_enabled());
    else
      launch_small_m(f, pl, p, s, pdl_enabled());
  }
}

// The cuBLASLt problem of y = W·x for M tokens of prepared activations (type, k, a and scales are
// set per layout by the caller).
LtProblem lt_problem(const DeviceLinear& w, const Acts& a, int64_t M, YOut y) {
  LtProblem p;
  p.n = w.rows;
  p.m = M;
  p.b = a.x;
  p.ldb = a.ldx;
  p.d = y.p;
  p.d_bf16 = y.bf16;
  p.ldd = w.rows;
  return p;
}

// NVFP4 at large M: the weight dequantized to BF16 in L2-sized row slices, each a BF16 cuBLASLt GEMM
// with the global scales in alpha. False where cuBLASLt declines (the caller's fallback rewrites
// every row).
bool large_nvfp4(const DeviceLinear& w, const Acts& a, int64_t M, YOut y, char* base, const WsLayout& L,
                 cudaStream_t stream) {
  void* lt_ws = base + L.lt;
  const int64_t K = w.cols, Kp = w.cols_pad;
  LtProblem p = lt_problem(w, a, M, y);
  auto* deq = reinterpret_cast<__nv_bfloat16*>(base + L.dequant);
  const int64_t slice = dequant_slice_rows(w);
  p.type = LtType::Bf16;
  p.k = K;
  p.a = deq;
  p.lda = Kp;
  p.alpha = nvfp4_alpha(w);
  if (w.nvfp4_row_alpha == nullptr) {
    for (int64_t r0 = 0; r0 < w.rows; r0 += slice) {
      const int64_t nr = std::min(slice, w.rows - r0);
      launch_nvfp4_dequant(w, r0, nr, deq, stream);
      p.n = nr;
      p.d = y.rows_from(r0).p;
      if (!lt_matmul(p, lt_ws, kLtWorkspaceBytes, stream)) return false;
    }
    return true;
  }
  // Fused parts with different global divisors: one GEMM per (slice ∩ part) with that part's
  // alpha, so every output row gets exactly its unfused multiplier.
  for (int64_t r0 = 0; r0 < w.rows; r0 += slice) {
    const int64_t r1 = std::min(r0 + slice, w.rows);
    launch_nvfp4_dequant(w, r0, r1 - r0, deq, stream);
    for (int q = 0; q < w.parts; ++q) {
      const int64_t s0 = std::max(r0, w.part_begin[q]), s1 = std::min(r1, w.part_begin[q + 1]);
      if (s0 >= s1) continue;
      p.a = deq + (s0 - r0) * Kp;
      p.n = s1 - s0;
      p.d = y.rows_from(s0).p;
      p.alpha = detail::nvfp4_alpha(w, w.part_weight_divisor[q]);
      if (!lt_matmul(p, lt_ws, kLtWorkspaceBytes, stream)) return false;
    }
  }
  return true;
}

// The large-M (cuBLASLt) GEMM of the first M tokens of `a`: false where cuBLASLt has no algorithm
// (or, for FP8 weights with BF16 activations, no such GEMM at all).
bool run_large(const DeviceLinear& w, const Acts& a, int64_t M, YOut y, char* base, const WsLayout& L,
               cudaStream_t stream, bool fast) {
  void* lt_ws = base + L.lt;
  LtProblem p = lt_problem(w, a, M, y);
  switch (w.kind) {
    case DeviceWeightKind::Bf16:
      p.type = LtType::Bf16;
      p.k = w.cols;
      p.a = w.weight;
      p.lda = w.cols_pad;
      return lt_matmul(p, lt_ws, kLtWorkspaceBytes, stream);
    case DeviceWeightKind::Fp8:
      if (w.scheme.act == ActQuant::None) return false;  // no FP8×BF16 in cuBLASLt
      p.type = LtType::Fp8;
      p.k = w.cols_pad;
      p.a = w.weight;
      p.lda = w.cols_pad;
      p.a_scale = w.scales;
      p.b_scale = a.sx;
      if (w.scheme.act == ActQuant::Fp8PerToken) {  // per-channel × per-token: OUTER_VEC scales
        p.scale = LtScale::OuterVec;
        p.fast_accum = fast;  // AutoFast callers accept the tensor cores' own FP8 accumulation
      } else {
        p.scale = LtScale::Blk128Vec128;
      }
      return lt_matmul(p, lt_ws, kLtWorkspaceBytes, stream);
    case DeviceWeightKind::Nvfp4:
      return large_nvfp4(w, a, M, y, base, L, stream);
  }
  return false;
}

// FP8 block-128 with activation codes: cuBLASLt takes a multiple of 4 tokens (its VEC128 scale
// rule), the rest runs small-M.
int64_t lt_token_count(const DeviceLinear& w, int64_t M) {
  return w.scheme.weight == WeightFormat::Fp8Block128 && w.scheme.act != ActQuant::None ? M / 4 * 4 : M;
}

}  // namespace

int64_t small_m_limit(const DeviceLinear& w) {
  // Crossovers with the large-M path measured by bench_gemm on H100 (bench/results/gemm-h100.json);
  // GDN_SMALL_M_LIMIT overrides them for experiments.
  static const char* env = std::getenv("GDN_SMALL_M_LIMIT");
  if (env) return std::atoll(env);
  switch (w.kind) {
    // BF16: cuBLASLt's GEMV was 5-30% faster than ours at every M on H100 (our kernel stays
    // available as LinearPath::SmallM), except for tiny outputs such as DeltaNet's b|a (96 rows)
    // at M ≤ 16, where cuBLASLt splits K and adds a reduce kernel (7.1 + 3.8 µs per call in the
    // 27B batch-1 decode profile) while ours reduces its splits in the last CTA of one launch
    // (7.6 µs). At M = 64 ours took 25 µs there.
    case DeviceWeightKind::Bf16: return w.rows <= 256 ? 16 : 0;
    // FP8 W8A8: ours up to M = 16 (faster or level, and exact: cuBLASLt's FP8 path carries
    // ~2.4e-4 relative error); cuBLASLt from M = 32 on. Weight-only FP8 is ours at every M.
    case DeviceWeightKind::Fp8: return w.scheme.act == ActQuant::None ? kMaxSliceTokens : 16;
    // NVFP4: the large-M path dequantizes the whole weight to BF16 (~130 µs for in_proj_qkv), so
    // ours up to 64 tokens; with the wgmma kernel (gate|up at 64 tokens 45-48 µs) 64-token slices
    // of wide weights stay faster up to 256 tokens (gate|up at 128: 91 µs vs 238, at 512 the
    // dequantized GEMM wins: 308 µs vs ~360). Narrow ones (k|v_proj) go large from 65.
    case DeviceWeightKind::Nvfp4:
      return w.rows_pad >= 4096 && nvfp4_wgmma_applies(w, kMaxSliceTokens) ? 4 * kMaxSliceTokens : kMaxSliceTokens;
  }
  return kMaxSliceTokens;
}

namespace {

// AutoFast: W8A8 FP8 per-channel takes the native FP8 wgmma kernel up to its 64 tokens (H100, 27B
// shapes, tests/gpu/test_linear_wgmma.cpp timings: 60-73% of the copy bandwidth at M = 64 where
// cuBLASLt streams 55-60%). Block-128 stays at 16: its per-group scales make wgmma slower than
// cuBLASLt above that. GDN_SMALL_M_LIMIT still overrides.
int64_t auto_small_limit(const DeviceLinear& w, bool fast) {
  if (fast && std::getenv("GDN_SMALL_M_LIMIT") == nullptr && small_fmt(w) == SmFmt::Fp8Fp8 &&
      w.scheme.weight == WeightFormat::Fp8PerChannel && fp8_wgmma_applies(w, 1, true))
    return kFp8WgmmaMaxTokens;
  return small_m_limit(w);
}

// What both linear_forward overloads decide first: the workspace layout for M (checked against the
// caller's workspace), and the path.
struct CallPlan {
  WsLayout L;
  char* base = nullptr;
  bool fast = false, small = false;
};

CallPlan plan_call(const DeviceLinear& w, int64_t M, LinearWorkspace ws, LinearPath path) {
  CallPlan c;
  c.L = ws_layout(w, M);
  if (c.L.total > ws.bytes)
    throw CudaError("linear_forward: workspace of " + std::to_string(ws.bytes) + " bytes, M = " + std::to_string(M) +
                    " needs " + std::to_string(c.L.total));
  c.base = static_cast<char*>(ws.ptr);
  c.fast = path == LinearPath::AutoFast;
  if (c.fast) path = LinearPath::Auto;
  c.small = path == LinearPath::SmallM || (path == LinearPath::Auto && M <= auto_small_limit(w, c.fast));
  return c;
}

}  // namespace

void check_fp8_token_out(const Fp8TokenActs& q, int64_t cols, const char* what) {
  if (q.ld % 16 || q.kpad < cols || q.ld < q.kpad || !q.scales)
    throw CudaError(std::string(what) + ": FP8 output of " + std::to_string(cols) + " columns into kpad " +
                    std::to_string(q.kpad) + ", ld " + std::to_string(q.ld));
}

size_t linear_workspace_bytes(const DeviceLinear& w, int64_t max_m) { return ws_layout(w, max_m).total; }

void linear_workspace_init(LinearWorkspace ws, cudaStream_t stream) {
  GDN_CUDA_CHECK(cudaMemsetAsync(ws.ptr, 0, std::min(ws.bytes, size_t(kMaxCounters) * 4), stream));
}

namespace {

// Step 1 of a call on BF16 x: the activations in the layout the GEMM reads (quantized where the
// weight's scheme says so) in the workspace, or x itself.
Acts prepare_acts(const DeviceLinear& w, const __nv_bfloat16* x, int64_t M, const CallPlan& c, cudaStream_t stream) {
  const WsLayout& L = c.L;
  char* const base = c.base;
  const bool pdl = pdl_enabled();
  const int64_t K = w.cols, Kp = w.cols_pad, m4 = round_up(M, 4);
  const ActQuant act = w.scheme.act;
  const bool act_ok = act == ActQuant::None ||
                      (w.kind == DeviceWeightKind::Fp8 && (act == ActQuant::Fp8PerToken || act == ActQuant::Fp8PerGroup128)) ||
                      (w.kind == DeviceWeightKind::Nvfp4 && act == ActQuant::Nvfp4);
  if (!act_ok) throw CudaError("linear_forward: activation quantization does not match the weight layout");
  Acts a;
  switch (act) {
    case ActQuant::None:
      if (K == Kp && (reinterpret_cast<uintptr_t>(x) & 15) == 0) {
        a.x = x, a.ldx = K;
      } else {
        auto* buf = reinterpret_cast<__nv_bfloat16*>(base + L.act);
        launch_act_copy(x, M, K, buf, m4, Kp, stream, pdl);
        a.x = buf, a.ldx = Kp;
      }
      break;
    case ActQuant::Fp8PerToken: {
      auto* buf = reinterpret_cast<uint8_t*>(base + L.act);
      auto* sx = reinterpret_cast<float*>(base + L.sx);
      launch_act_fp8_token(x, M, K, buf, sx, m4, Kp, stream, pdl);
      a.x = buf, a.ldx = Kp, a.elem = 1, a.sx = sx;
      break;
    }
    case ActQuant::Fp8PerGroup128: {
      // Large M: scales of the first lt_token_count tokens [kb][that count] for cuBLASLt, the tail's
      // in sx_tail [kb][4]; small M: all [kb][m4].
      auto* buf = reinterpret_cast<uint8_t*>(base + L.act);
      auto* sx = reinterpret_cast<float*>(base + L.sx);
      const int64_t split = c.small ? m4 : lt_token_count(w, M);
      launch_act_fp8_group(x, M, K, buf, sx, split, split, reinterpret_cast<float*>(base + L.sx_tail), 4, m4, Kp,
                           stream, pdl);
      a.x = buf, a.ldx = Kp, a.elem = 1, a.sx = sx, a.sx_ld = split;
      break;
    }
    case ActQuant::Nvfp4: {
      auto* buf = reinterpret_cast<__nv_bfloat16*>(base + L.act);
      launch_act_nvfp4(x, M, K, w.nvfp4_input_global, buf, m4, Kp, stream, pdl);
      a.x = buf, a.ldx = Kp;
      break;
    }
  }
  return a;
}

// Step 2 into fp32 y: the small-M kernel, or cuBLASLt with the small-M kernel as the fallback and
// for a block-128 token tail.
void gemm_f32(const DeviceLinear& w, const Acts& a, int64_t M, float* y, const CallPlan& c, cudaStream_t stream) {
  if (c.small) return run_small(w, a, 0, M, YOut{y, false}, c.base, c.L, stream, c.fast);
  const int64_t lt_tokens = lt_token_count(w, M);
  if (lt_tokens > 0 && !run_large(w, a, lt_tokens, YOut{y, false}, c.base, c.L, stream, c.fast))
    run_small(w, a, 0, lt_tokens, YOut{y, false}, c.base, c.L, stream, c.fast);
  if (lt_tokens < M) {
    Acts tail = a;
    tail.sx = reinterpret_cast<float*>(c.base + c.L.sx_tail);
    tail.sx_ld = 4;
    tail.sx_token0 = lt_tokens;
    run_small(w, tail, lt_tokens, M, YOut{y, false}, c.base, c.L, stream, c.fast);
  }
}

// Whether a BF16-output call can run: the small-M path where it is the FP8 wgmma kernel, or the
// large-M path without a small-M token tail.
bool bf16_out_applies(const DeviceLinear& w, int64_t M, const CallPlan& c) {
  if (c.small) return small_bf16_applies(w, M, c.fast);
  return lt_token_count(w, M) == M && !(w.kind == DeviceWeightKind::Fp8 && w.scheme.act == ActQuant::None);
}

// The GEMM of a BF16-output call (bf16_out_applies holds).
bool gemm_bf16(const DeviceLinear& w, const Acts& a, int64_t M, __nv_bfloat16* y, const CallPlan& c,
               cudaStream_t stream) {
  if (c.small) {
    run_small(w, a, 0, M, YOut{y, true}, c.base, c.L, stream, c.fast);
    return true;
  }
  return run_large(w, a, M, YOut{y, true}, c.base, c.L, stream, c.fast);
}

Acts token_acts(const Fp8TokenActs& x) {
  Acts a;
  a.x = x.codes, a.ldx = x.ld, a.elem = 1, a.sx = x.scales;
  return a;
}
Acts token_acts(const Nvfp4Acts& x) {
  Acts a;
  a.x = x.x, a.ldx = x.ld;
  return a;
}

void check_fp8_acts(const DeviceLinear& w, const Fp8TokenActs& x) {
  if (!takes_fp8_token_acts(w))
    throw CudaError("linear_forward: pre-quantized FP8 activations given to a weight that does not take them");
  if (x.kpad != w.cols_pad || x.ld < x.kpad || x.ld % 16 || !x.scales)
    throw CudaError("linear_forward: FP8 activations of " + std::to_string(x.kpad) + " columns (ld " +
                    std::to_string(x.ld) + ") for a weight of " + std::to_string(w.cols_pad) + " padded columns");
}

void check_nvfp4_acts(const DeviceLinear& w, const Nvfp4Acts& x) {
  if (!takes_nvfp4_acts(w) || x.gx != w.nvfp4_input_global)
    throw CudaError("linear_forward: pre-quantized NVFP4 activations given to a weight that does not take them");
  if (x.ld < w.cols_pad || (x.ld * 2) % 16 || (reinterpret_cast<uintptr_t>(x.x) & 15))
    throw CudaError("linear_forward: NVFP4 activations of ld " + std::to_string(x.ld) + " for a weight of " +
                    std::to_string(w.cols_pad) + " padded columns");
}

}  // namespace

void linear_forward(const DeviceLinear& w, const __nv_bfloat16* x, int64_t M, float* y, LinearWorkspace ws,
                    cudaStream_t stream, LinearPath path) {
  if (M <= 0) return;
  const CallPlan c = plan_call(w, M, ws, path);
  gemm_f32(w, prepare_acts(w, x, M, c, stream), M, y, c, stream);
}

void linear_forward(const DeviceLinear& w, const Nvfp4Acts& x, int64_t M, float* y, LinearWorkspace ws,
                    cudaStream_t stream, LinearPath path) {
  if (M <= 0) return;
  check_nvfp4_acts(w, x);
  gemm_f32(w, token_acts(x), M, y, plan_call(w, M, ws, path), stream);
}

void linear_forward(const DeviceLinear& w, const Fp8TokenActs& x, int64_t M, float* y, LinearWorkspace ws,
                    cudaStream_t stream, LinearPath path) {
  if (M <= 0) return;
  check_fp8_acts(w, x);
  gemm_f32(w, token_acts(x), M, y, plan_call(w, M, ws, path), stream);
}

bool linear_forward_bf16(const DeviceLinear& w, const __nv_bfloat16* x, int64_t M, __nv_bfloat16* y,
                         LinearWorkspace ws, cudaStream_t stream, LinearPath path) {
  if (M <= 0) return true;
  const CallPlan c = plan_call(w, M, ws, path);
  if (!bf16_out_applies(w, M, c)) return false;
  return gemm_bf16(w, prepare_acts(w, x, M, c, stream), M, y, c, stream);
}

bool linear_forward_bf16(const DeviceLinear& w, const Fp8TokenActs& x, int64_t M, __nv_bfloat16* y,
                         LinearWorkspace ws, cudaStream_t stream, LinearPath path) {
  if (M <= 0) return true;
  check_fp8_acts(w, x);
  const CallPlan c = plan_call(w, M, ws, path);
  return bf16_out_applies(w, M, c) && gemm_bf16(w, token_acts(x), M, y, c, stream);
}

bool linear_forward_bf16(const DeviceLinear& w, const Nvfp4Acts& x, int64_t M, __nv_bfloat16* y, LinearWorkspace ws,
                         cudaStream_t stream, LinearPath path) {
  if (M <= 0) return true;
  check_nvfp4_acts(w, x);
  const CallPlan c = plan_call(w, M, ws, path);
  return bf16_out_applies(w, M, c) && gemm_bf16(w, token_acts(x), M, y, c, stream);
}

}  // namespace gdn::cuda
