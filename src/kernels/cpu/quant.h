// CPU numerics of the quantized layouts: weight rows dequantized to fp32, and activations
// quantized the way the checkpoint declares (then dequantized, so the product of the two equals
// the scaled integer/FP8/FP4 dot product up to fp32 summation order).
#pragma once

#include <cstdint>

#include "core/quant_types.h"

namespace gdn {

// Row r of a [rows, cols] quantized weight (codes at `data`) as fp32.
void dequantize_row(const QuantInfo& q, const void* data, int64_t rows, int64_t cols, int64_t r, float* out);

// out[M, K] = fake-quantized x[M, K] per `q.scheme.act` (FP8 per token, FP8 per token and 128-group,
// or NVFP4 16-blocks with the static global scale). ActQuant::None copies.
void quantize_activations(const QuantInfo& q, const float* x, int64_t M, int64_t K, float* out);

}  // namespace gdn
