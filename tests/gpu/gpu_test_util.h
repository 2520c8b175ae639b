// Helpers of the GPU tests: random host weights of every layout (as MatrixRefs the CPU reference
// reads), activations, one GPU call with poisoned output, and the comparison against kernels/cpu.
//
// Tolerance (stated once, used everywhere): both sides multiply identical operands (the GPU
// quantizes activations exactly like quant.cpp, and every dequantized weight is exact in the
// GPU's operand format), so they differ only in fp32 summation order. Per token row
//   ‖Δ‖₂ / max(‖ref‖₂, ‖|W|·|x|‖₂/√K) ≤ 1e-5,   and   max|Δ| ≤ 1e-4·max|ref| over the output;
// the |W|·|x| term only matters for rows whose outputs cancel to almost nothing (N = 1), where the
// summation error is relative to the size of the terms, not of their sum. One FP8/FP4 activation
// code rounded differently moves its row by ~1e-3 (one E4M3 step is 2⁻³ of an element out of √K
// terms), so a quantization mismatch cannot hide under these bounds.
// Exception, measured on H100: cuBLASLt's FP8 GEMMs (our large-M path for W8A8) are off by ~2.4e-4
// RMS per row for any K (128 … 17408) and also with TF32-exact scales (diagnostic test
// LtFp8ScalePrecision), i.e. the reduced-precision FP8 tensor-core accumulation of its wgmma
// kernels, not fp32 summation order; our mma.sync kernel, promoted to FP32 every 128 K, is at
// ~4e-7 on the same data. That path is held to 1e-3 (per row and max|Δ|/max|ref|); its layouts
// and scale plumbing are still checked, a mistake there is O(1).
#pragma once

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include <cuda_fp16.h>

#include "core/dtype.h"
#include "core/quant_codecs.h"
#include "core/thread_pool.h"
#include "kernels/cpu/linear.h"
#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/device.h"
#include "kernels/cuda/linear_cuda.h"

namespace gdn::test {

constexpr double kRowRelTol = 1e-5;
constexpr double kMaxAbsRelTol = 1e-4;
constexpr double kLtFp8RowRelTol = 1e-3;

enum class Layout { Bf16, F16, F32, Fp8PcA8, Fp8PcW8A16, Fp8BlkA8, Fp8BlkW8A16, Nvfp4A4, Nvfp4W4A16 };

inline const char* layout_name(Layout l) {
  switch (l) {
    case Layout::Bf16: return "bf16";
    case Layout::F16: return "f16";
    case Layout::F32: return "f32";
    case Layout::Fp8PcA8: return "fp8pc_a8";
    case Layout::Fp8PcW8A16: return "fp8pc_w8a16";
    case Layout::Fp8BlkA8: return "fp8blk_a8";
    case Layout::Fp8BlkW8A16: return "fp8blk_w8a16";
    case Layout::Nvfp4A4: return "nvfp4_a4";
    case Layout::Nvfp4W4A16: return "nvfp4_w4a16";
  }
  return "?";
}

// GDN_GPU_TEST_QUICK=1 (compute-sanitizer runs): fewer M values per weight.
inline bool quick() { return std::getenv("GDN_GPU_TEST_QUICK") != nullptr; }

inline ThreadPool& pool() {
  static ThreadPool p;
  return p;
}

// splitmix64: cheap, seedable, parallel-friendly (one stream per chunk).
inline uint64_t mix64(uint64_t z) {
  z += 0x9E3779B97F4A7C15ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}
inline float unit_float(uint64_t h) { return float(h >> 40) / float(1 << 24) * 2.f - 1.f; }  // [-1, 1)

// fill(i, h) for i in [0, n) with h a hash of (seed, i), in parallel.
template <typename F>
void parallel_fill(int64_t n, uint64_t seed, F&& fill) {
  pool().parallel_for(
      n, [&](int64_t b, int64_t e) { for (int64_t i = b; i < e; ++i) fill(i, mix64(seed * 0x100000001B3ull + uint64_t(i))); },
      1 << 16);
}

// A host weight with the buffers its MatrixRef points into.
struct HostLinear {
  Layout layout = Layout::Bf16;
  std::vector<uint8_t> codes, block_scales;
  std::shared_ptr<QuantInfo> quant;
  MatrixRef ref;       // what upload_linear and the GPU see
  MatrixRef cpu_ref;   // what the CPU reference multiplies (F16/F32 rounded to BF16 like the upload)
  std::vector<uint16_t> bf16_copy;
};

// Random E4M3 code, never NaN; ~1/16 subnormal or zero (exponent field 0).
inline uint8_t random_e4m3(uint64_t h) {
  uint8_t c = uint8_t(h);
  if ((c & 0x7F) == 0x7F) c ^= 1;
  return c;
}
// Positive E4M3 scale code of moderate size (2^-3 .. 2^3), 1/64 of them zero when `zeros`.
inline uint8_t random_e4m3_scale(uint64_t h, bool zeros) {
  if (zeros && (h >> 58) == 0) return 0;
  const uint8_t e = uint8_t(4 + (h >> 8) % 7), m = uint8_t(h & 7);
  return uint8_t((e << 3) | m);
}

inline std::unique_ptr<HostLinear> make_linear(Layout l, int64_t N, int64_t K, uint64_t seed) {
  auto h = std::make_unique<HostLinear>();
  h->layout = l;
  const float amp = 1.f / std::sqrt(float(K));
  switch (l) {
    case Layout::Bf16:
    case Layout::F16:
    case Layout::F32: {
      const DType dt = l == Layout::Bf16 ? DType::BF16 : l == Layout::F16 ? DType::F16 : DType::F32;
      h->codes.resize(size_t(N * K) * dtype_size(dt));
      h->bf16_copy.resize(size_t(N * K));
      uint8_t* c = h->codes.data();
      uint16_t* b = h->bf16_copy.data();
      parallel_fill(N * K, seed, [&](int64_t i, uint64_t r) {
        const float v = unit_float(r) * amp * 3.f;
        if (dt == DType::F32) std::memcpy(c + 4 * i, &v, 4);
        if (dt == DType::BF16) {
          const uint16_t u = float_to_bf16(v);
          std::memcpy(c + 2 * i, &u, 2);
        }
        if (dt == DType::F16) {
          const __half_raw hr = __float2half_rn(v);
          std::memcpy(c + 2 * i, &hr.x, 2);
        }
      });
      h->ref = MatrixRef{dt, h->codes.data(), N, K, nullptr};
      // The reference multiplies what the GPU holds: BF16-rounded weights.
      for (int64_t r = 0; r < N; ++r) {
        std::vector<float> row(static_cast<size_t>(K));
        decode_row(h->ref, r, row.data());
        for (int64_t k = 0; k < K; ++k) b[r * K + k] = float_to_bf16(row[size_t(k)]);
      }
      h->cpu_ref = MatrixRef{DType::BF16, h->bf16_copy.data(), N, K, nullptr};
      return h;
    }
    case Layout::Fp8PcA8:
    case Layout::Fp8PcW8A16:
    case Layout::Fp8BlkA8:
    case Layout::Fp8BlkW8A16: {
      const bool block = l == Layout::Fp8BlkA8 || l == Layout::Fp8BlkW8A16;
      const bool a8 = l == Layout::Fp8PcA8 || l == Layout::Fp8BlkA8;
      h->codes.resize(size_t(N * K));
      uint8_t* c = h->codes.data();
      parallel_fill(N * K, seed, [&](int64_t i, uint64_t r) { c[i] = random_e4m3(r); });
      h->quant = std::make_shared<QuantInfo>();
      h->quant->scheme.weight = block ? WeightFormat::Fp8Block128 : WeightFormat::Fp8PerChannel;
      h->quant->scheme.act = a8 ? (block ? ActQuant::Fp8PerGroup128 : ActQuant::Fp8PerToken) : ActQuant::None;
      const int64_t ns = block ? ((N + 127) / 128) * ((K + 127) / 128) : N;
      h->quant->scales.resize(size_t(ns));
      for (int64_t i = 0; i < ns; ++i) h->quant->scales[size_t(i)] = (0.5f + 0.75f * (unit_float(mix64(seed ^ uint64_t(i))) + 1.f)) * 1e-3f;
      h->ref = MatrixRef{DType::F8_E4M3, c, N, K, h->quant};
      h->cpu_ref = h->ref;
      return h;
    }
    case Layout::Nvfp4A4:
    case Layout::Nvfp4W4A16: {
      h->codes.resize(size_t(N * K / 2));
      h->block_scales.resize(size_t(N * K / 16));
      uint8_t* c = h->codes.data();
      uint8_t* s = h->block_scales.data();
      parallel_fill(N * K / 2, seed, [&](int64_t i, uint64_t r) { c[i] = uint8_t(r); });
      parallel_fill(N * K / 16, seed + 7, [&](int64_t i, uint64_t r) { s[i] = random_e4m3_scale(r, true); });
      h->quant = std::make_shared<QuantInfo>();
      h->quant->scheme.weight = WeightFormat::Nvfp4CT;
      h->quant->scheme.act = l == Layout::Nvfp4A4 ? ActQuant::Nvfp4 : ActQuant::None;
      h->quant->nvfp4_block_scales = s;
      h->quant->nvfp4_weight_divisor = 37.5f * std::sqrt(float(K));
      h->quant->nvfp4_input_global = 2688.f / 4.f;  // calibrated for |x| ≲ 4: some blocks clamp at ±6
      h->ref = MatrixRef{DType::U8, c, N, K, h->quant};
      h->cpu_ref = h->ref;
      return h;
    }
  }
  return h;
}

// Activations [M, K] in BF16 with the awkward rows a real model produces: mostly |x| ≲ 2, one
// outlier row (×300), one all-zero row (scale floors), one tiny row (FP8 subnormals).
inline std::vector<uint16_t> make_x(int64_t M, int64_t K, uint64_t seed) {
  std::vector<uint16_t> x(size_t(M * K));
  parallel_fill(M * K, seed, [&](int64_t i, uint64_t r) {
    const int64_t m = i / K;
    float v = unit_float(r) * 2.f;
    if ((r >> 20) % 97 == 0) v *= 8.f;  // sparse large entries inside rows
    if (m == 2) v *= 300.f;
    if (m == 4) v = 0.f;
    if (m == 5) v *= 1e-6f;
    x[size_t(i)] = float_to_bf16(v);
  });
  return x;
}

inline std::vector<float> to_float(const std::vector<uint16_t>& x) {
  std::vector<float> f(x.size());
  for (size_t i = 0; i < x.size(); ++i) f[i] = bf16_to_float(x[i]);
  return f;
}

// |W| in the same layout (sign bits cleared, scales made positive): linear(|W|, |x|) = |W|·|x| with the
// same quantization of the activations (all quantizers are sign-symmetric).
struct AbsMatrix {
  std::vector<uint8_t> codes, block_scales;
  std::shared_ptr<QuantInfo> quant;
  MatrixRef ref;
};
inline std::unique_ptr<AbsMatrix> abs_matrix(const MatrixRef& m) {
  auto a = std::make_unique<AbsMatrix>();
  size_t bytes = size_t(m.rows * m.cols) * (m.quant ? 1 : dtype_size(m.dtype));
  const bool nvfp4 = m.quant && (m.quant->scheme.weight == WeightFormat::Nvfp4CT || m.quant->scheme.weight == WeightFormat::Nvfp4ModelOpt);
  if (nvfp4) bytes /= 2;
  const auto* src = static_cast<const uint8_t*>(m.data);
  a->codes.assign(src, src + bytes);
  uint8_t* c = a->codes.data();
  if (!m.quant) {
    const size_t es = dtype_size(m.dtype);
    for (size_t i = es - 1; i < bytes; i += es) c[i] &= 0x7F;  // little-endian: sign in the last byte
  } else if (nvfp4) {
    for (size_t i = 0; i < bytes; ++i) c[i] &= 0x77;
  } else {
    for (size_t i = 0; i < bytes; ++i) c[i] &= 0x7F;
  }
  if (m.quant) {
    a->quant = std::make_shared<QuantInfo>(*m.quant);
    for (float& s : a->quant->scales) s = std::fabs(s);
    if (nvfp4) {
      a->block_scales.assign(m.quant->nvfp4_block_scales, m.quant->nvfp4_block_scales + m.rows * m.cols / 16);
      for (uint8_t& b : a->block_scales) b &= 0x7F;
      a->quant->nvfp4_block_scales = a->block_scales.data();
    }
  }
  a->ref = MatrixRef{m.dtype, c, m.rows, m.cols, a->quant};
  return a;
}

inline std::vector<float> cpu_linear(const MatrixRef& w, const std::vector<float>& x, int64_t M) {
  std::vector<float> y(size_t(M * w.rows));
  linear(x.data(), M, w, y.data(), pool());
  return y;
}

// One device context for a test: arena, stream, workspace.
struct GpuCtx {
  cuda::DeviceArena arena;
  cuda::Stream stream;
  explicit GpuCtx(size_t bytes) : arena(bytes) {}
};

struct Compare {
  double worst_row_rel = 0, max_abs = 0, max_ref = 0, row_tol = kRowRelTol;
  int64_t worst_row = -1, nonfinite = 0;
  bool ok() const {
    return nonfinite == 0 && worst_row_rel <= row_tol && max_abs <= std::max(kMaxAbsRelTol, row_tol) * max_ref;
  }
  std::string str() const {
    return "worst row ‖Δ‖/‖ref‖ " + std::to_string(worst_row_rel) + " (row " + std::to_string(worst_row) +
           ", tolerance " + std::to_string(row_tol) + "), max|Δ| " + std::to_string(max_abs) + " vs max|ref| " +
           std::to_string(max_ref) + ", non-finite " + std::to_string(nonfinite);
  }
};

// got/want/want_abs: [M, N]; want_abs = |W|·|x| (see the tolerance note above).
inline Compare compare(const float* got, const float* want, const float* want_abs, int64_t M, int64_t N, int64_t K,
                       double row_tol = kRowRelTol) {
  Compare c;
  c.row_tol = row_tol;
  for (int64_t m = 0; m < M; ++m) {
    double d2 = 0, r2 = 0, a2 = 0;
    for (int64_t n = 0; n < N; ++n) {
      const double g = got[m * N + n], w = want[m * N + n], a = want_abs[m * N + n];
      if (!std::isfinite(g)) {
        ++c.nonfinite;
        continue;
      }
      d2 += (g - w) * (g - w);
      r2 += w * w;
      a2 += a * a;
      c.max_abs = std::max(c.max_abs, std::fabs(g - w));
      c.max_ref = std::max(c.max_ref, std::fabs(w));
    }
    const double den = std::max(std::sqrt(r2), std::sqrt(a2 / double(K)));
    const double rel = den > 0 ? std::sqrt(d2) / den : std::sqrt(d2);
    if (rel > c.worst_row_rel) c.worst_row_rel = rel, c.worst_row = m;
  }
  return c;
}

// The row tolerance of a weight on a path (see the note on cuBLASLt FP8 above).
inline double row_tol_for(const cuda::DeviceLinear& w, cuda::LinearPath path) {
  const bool lt_fp8 = w.kind == cuda::DeviceWeightKind::Fp8 && w.scheme.act != ActQuant::None;
  return lt_fp8 && path == cuda::LinearPath::LargeM ? kLtFp8RowRelTol : kRowRelTol;
}

inline std::vector<float> abs_values(std::vector<float> v) {
  for (float& x : v) x = std::fabs(x);
  return v;
}

// A linear workspace for w at up to max_m tokens from g's arena, zeroed as linear_forward needs.
inline cuda::LinearWorkspace make_workspace(GpuCtx& g, const cuda::DeviceLinear& w, int64_t max_m) {
  cuda::LinearWorkspace ws;
  ws.bytes = cuda::linear_workspace_bytes(w, max_m);
  ws.ptr = g.arena.allocate(ws.bytes);
  cuda::linear_workspace_init(ws, g.stream);
  return ws;
}

// y = linear_forward(w, x[:M]) on the GPU, output poisoned (all-ones bytes = NaN) before the call.
inline std::vector<float> gpu_linear(GpuCtx& g, const cuda::DeviceLinear& w, const __nv_bfloat16* dx, int64_t M,
                                     float* dy, cuda::LinearWorkspace ws, cuda::LinearPath path) {
  GDN_CUDA_CHECK(cudaMemsetAsync(dy, 0xFF, size_t(M * w.rows) * 4, g.stream));
  cuda::linear_forward(w, dx, M, dy, ws, g.stream, path);
  GDN_CUDA_CHECK_LAUNCH();
  std::vector<float> y(size_t(M * w.rows));
  GDN_CUDA_CHECK(cudaMemcpyAsync(y.data(), dy, y.size() * 4, cudaMemcpyDeviceToHost, g.stream));
  g.stream.sync();
  return y;
}

}  // namespace gdn::test
