// Dense linear layers and embedding lookups on the CPU, fp32 accumulation.
#pragma once

#include <cstdint>

#include <memory>

#include "core/dtype.h"
#include "core/quant_types.h"

namespace gdn {
class ThreadPool;

// A row-major [rows, cols] matrix as stored in the checkpoint (PyTorch Linear: [out, in]).
// Quantized matrices carry their scales and declared activation quantization in `quant`.
struct MatrixRef {
  DType dtype = DType::F32;
  const void* data = nullptr;
  int64_t rows = 0, cols = 0;
  std::shared_ptr<const QuantInfo> quant;  // null = dense
  int64_t storage_bytes() const;           // bytes of codes and scales in the checkpoint
};

// y[M, N] = x[M, K] · Wᵀ with W = [N, K] in F32, BF16, F16 or a quantized layout (its input is
// first quantized as the layout declares). Rows of W are decoded to fp32 once per call and reused
// for all M inputs; work is split over N.
void linear(const float* x, int64_t M, const MatrixRef& w, float* y, ThreadPool& pool);

// out[i, :] = table[ids[i], :] as fp32. Ids must already be validated (< table.rows).
// Numerics experiment switch (process-wide, default off): round every GEMM input to BF16 before
// the declared activation quantization, the way the GPU backend feeds its GEMMs. Tests use it to
// measure how far BF16 activations alone move a model's logits (the "BF16 noise" the GPU is held
// to); the reference itself always runs in fp32.
void set_bf16_gemm_inputs(bool on);
bool bf16_gemm_inputs();

void embed_rows(const MatrixRef& table, const int32_t* ids, int64_t n, float* out);

// Decodes row r of a float matrix to fp32.
void decode_row(const MatrixRef& m, int64_t r, float* out);

// Σ a[i]·b[i] in fp32 with several independent accumulators (vectorisable).
float dot(const float* a, const float* b, int64_t n);

}  // namespace gdn
