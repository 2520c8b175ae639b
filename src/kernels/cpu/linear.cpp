#include "kernels/cpu/linear.h"

#include <algorithm>
#include <atomic>
#include <vector>

#include "core/error.h"
#include "core/thread_pool.h"
#include "kernels/cpu/quant.h"

namespace gdn {

float dot(const float* a, const float* b, int64_t n) {
  constexpr int kLanes = 16;
  float acc[kLanes] = {};
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes)
    for (int j = 0; j < kLanes; ++j) acc[j] += a[i + j] * b[i + j];
  float s = 0.f;
  for (; i < n; ++i) s += a[i] * b[i];
  for (int j = 0; j < kLanes; ++j) s += acc[j];
  return s;
}

int64_t MatrixRef::storage_bytes() const {
  if (!quant) return rows * cols * int64_t(dtype_size(dtype));
  const auto& s = quant->scheme.weight;
  if (s == WeightFormat::Nvfp4CT || s == WeightFormat::Nvfp4ModelOpt) return rows * cols / 2 + rows * cols / 16 + 8;
  return rows * cols + int64_t(quant->scales.size()) * 4;
}

void decode_row(const MatrixRef& m, int64_t r, float* out) {
  const int64_t n = m.cols;
  if (m.quant) {
    dequantize_row(*m.quant, m.data, m.rows, m.cols, r, out);
    return;
  }
  switch (m.dtype) {
    case DType::F32: std::copy_n(static_cast<const float*>(m.data) + r * n, n, out); break;
    case DType::BF16: {
      const auto* p = static_cast<const uint16_t*>(m.data) + r * n;
      for (int64_t i = 0; i < n; ++i) out[i] = bf16_to_float(p[i]);
      break;
    }
    case DType::F16: {
      const auto* p = static_cast<const uint16_t*>(m.data) + r * n;
      for (int64_t i = 0; i < n; ++i) out[i] = f16_to_float(p[i]);
      break;
    }
    default:
      for (int64_t i = 0; i < n; ++i) out[i] = load_as_float(m.dtype, m.data, size_t(r * n + i));
  }
}

namespace {
std::atomic<bool> g_bf16_gemm_inputs{false};
}  // namespace

void set_bf16_gemm_inputs(bool on) { g_bf16_gemm_inputs = on; }
bool bf16_gemm_inputs() { return g_bf16_gemm_inputs; }

void linear(const float* x, int64_t M, const MatrixRef& w, float* y, ThreadPool& pool) {
  const int64_t N = w.rows, K = w.cols;
  std::vector<float> xq, xb;
  if (g_bf16_gemm_inputs) {
    xb.assign(x, x + M * K);
    for (float& v : xb) v = bf16_to_float(float_to_bf16(v));
    x = xb.data();
  }
  if (w.quant && w.quant->scheme.act != ActQuant::None) {
    xq.resize(size_t(M * K));
    quantize_activations(*w.quant, x, M, K, xq.data());
    x = xq.data();
  }
  constexpr int64_t kRowBlock = 4;  // weight rows decoded together, reused across all M inputs
  const int64_t blocks = (N + kRowBlock - 1) / kRowBlock;
  // At least ~64K multiply-adds per task so that scheduling stays negligible on tiny layers.
  const int64_t min_chunk = std::max<int64_t>(1, (int64_t(1) << 16) / std::max<int64_t>(1, kRowBlock * K * M));
  pool.parallel_for(
      blocks,
      [&](int64_t b0, int64_t b1) {
        std::vector<float> rows(size_t(kRowBlock * K));
        for (int64_t b = b0; b < b1; ++b) {
          const int64_t n0 = b * kRowBlock, nr = std::min(kRowBlock, N - n0);
          for (int64_t r = 0; r < nr; ++r) decode_row(w, n0 + r, rows.data() + r * K);
          for (int64_t m = 0; m < M; ++m) {
            const float* xm = x + m * K;
            for (int64_t r = 0; r < nr; ++r) y[m * N + n0 + r] = dot(xm, rows.data() + r * K, K);
          }
        }
      },
      min_chunk);
}

void embed_rows(const MatrixRef& table, const int32_t* ids, int64_t n, float* out) {
  for (int64_t i = 0; i < n; ++i) {
    GDN_CHECK(ids[i] >= 0 && ids[i] < table.rows, "token id {} outside the embedding table", ids[i]);
    decode_row(table, ids[i], out + i * table.cols);
  }
}

}  // namespace gdn
