#include "kernels/cpu/quant.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "core/quant_codecs.h"

namespace gdn {

void dequantize_row(const QuantInfo& q, const void* data, int64_t rows, int64_t cols, int64_t r, float* out) {
  const auto* b = static_cast<const uint8_t*>(data);
  const auto& fp8 = fp8_e4m3_table();
  switch (q.scheme.weight) {
    case WeightFormat::Fp8PerChannel: {
      const uint8_t* row = b + r * cols;
      const float s = q.scales[size_t(r)];
      for (int64_t i = 0; i < cols; ++i) out[i] = fp8[row[i]] * s;
      return;
    }
    case WeightFormat::Fp8Block128: {
      const uint8_t* row = b + r * cols;
      const int64_t nb = (cols + 127) / 128;
      const float* s = q.scales.data() + (r / 128) * nb;
      for (int64_t i = 0; i < cols; ++i) out[i] = fp8[row[i]] * s[i / 128];
      return;
    }
    case WeightFormat::Nvfp4ModelOpt:
    case WeightFormat::Nvfp4CT: {
      // Byte j holds element 2j in its low nibble and 2j+1 in its high nibble.
      const uint8_t* row = b + r * (cols / 2);
      const uint8_t* bs = q.nvfp4_block_scales + r * (cols / 16);
      for (int64_t i = 0; i < cols; i += 2) {
        const float s = fp8[bs[i / 16]];
        const uint8_t byte = row[i / 2];
        out[i] = e2m1_to_float(byte & 0xF) * s / q.nvfp4_weight_divisor;
        out[i + 1] = e2m1_to_float(byte >> 4) * s / q.nvfp4_weight_divisor;
      }
      return;
    }
    case WeightFormat::Dense: break;
  }
  GDN_CHECK(false, "dequantize_row on a dense weight ({} rows)", rows);
}

namespace {

float amax(const float* x, int64_t n) {
  float m = 0.f;
  for (int64_t i = 0; i < n; ++i) m = std::max(m, std::fabs(x[i]));
  return m;
}

// FP8 E4M3 fake quantization of n values with one scale s: decode(encode(x / s)) · s.
void fp8_round(const float* x, int64_t n, float s, float* out) {
  const auto& fp8 = fp8_e4m3_table();
  for (int64_t i = 0; i < n; ++i) out[i] = fp8[float_to_fp8_e4m3(x[i] / s)] * s;
}

}  // namespace

void quantize_activations(const QuantInfo& q, const float* x, int64_t M, int64_t K, float* out) {
  switch (q.scheme.act) {
    case ActQuant::None: std::copy(x, x + M * K, out); return;
    case ActQuant::Fp8PerToken:
      for (int64_t m = 0; m < M; ++m) {
        // The 1/(448·512) floor keeps an all-zero row finite (vLLM's min scaling factor).
        const float s = std::max(amax(x + m * K, K) / 448.f, 1.f / (448.f * 512.f));
        fp8_round(x + m * K, K, s, out + m * K);
      }
      return;
    case ActQuant::Fp8PerGroup128:
      for (int64_t m = 0; m < M; ++m)
        for (int64_t g = 0; g < K; g += 128) {
          const int64_t n = std::min<int64_t>(128, K - g);
          const float s = std::max(amax(x + m * K + g, n), 1e-10f) / 448.f;
          fp8_round(x + m * K + g, n, s, out + m * K + g);
        }
      return;
    case ActQuant::Nvfp4: {
      const auto& fp8 = fp8_e4m3_table();
      const float gx = q.nvfp4_input_global;
      for (int64_t m = 0; m < M; ++m)
        for (int64_t b = 0; b < K; b += 16) {
          const float* xb = x + m * K + b;
          float* ob = out + m * K + b;
          // Block scale: FP8(G_x · amax / 6), clamped to the FP8 range; a zero scale zeroes the block.
          const float s = fp8[float_to_fp8_e4m3(std::min(amax(xb, 16) * gx / 6.f, 448.f))];
          for (int i = 0; i < 16; ++i) {
            if (s == 0.f) {
              ob[i] = 0.f;
              continue;
            }
            const float v = std::clamp(xb[i] * gx / s, -6.f, 6.f);
            ob[i] = e2m1_to_float(float_to_e2m1(v)) * s / gx;
          }
        }
      return;
    }
  }
}

}  // namespace gdn
