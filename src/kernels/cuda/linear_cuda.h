// GPU linear layers (issue 5): y[M, N] = x[M, K] · Wᵀ for every weight layout gdnserve loads,
// with the numerics the checkpoint declares (kernels/cpu is the reference):
//   BF16 weight × BF16 activations;
//   FP8 per-channel weight × per-token dynamic FP8 activations (W8A8; or BF16 activations, W8A16);
//   FP8 block-128 weight × per-token-per-128-group dynamic FP8 activations;
//   NVFP4 weight (E2M1 + E4M3 16-block scales + global) × NVFP4 activations (static global) or BF16.
// Two paths chosen by M: our small-M kernels (M ≤ 64: weight streaming at the memory roofline) and
// a large-M path (cuBLASLt with block-scaling modes, or our own kernels if faster).
//
// Threading: all calls are asynchronous on the given stream; the DeviceLinear is immutable after
// upload and may be used from several streams.
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "core/quant_types.h"
#include "kernels/cpu/linear.h"

namespace gdn::cuda {

class DeviceArena;

// A weight resident on the GPU, converted at upload to what the kernels read:
// scales as FP32 (per-channel [N], block [⌈N/128⌉ × ⌈K/128⌉]), codes as stored.
struct DeviceLinear {
  LinearScheme scheme;                   // act == None: weight-only (W8A16 / W4A16)
  int64_t rows = 0, cols = 0;            // N, K (logical)
  const void* weight = nullptr;          // BF16 [N, K] | E4M3 [N, K] | packed E2M1 [N, K/2]
  const float* scales = nullptr;         // FP8 layouts
  const uint8_t* block_scales = nullptr; // NVFP4: E4M3 [N, K/16]
  float nvfp4_weight_divisor = 1.f;      // W = e2m1 · s_block / divisor
  float nvfp4_input_global = 1.f;        // G_x
  int64_t weight_bytes() const;          // bytes streamed per call (codes + scales)
};

// Copies a host weight (BF16/F16/F32 dense or any quantized layout) into `arena`; F16/F32 dense
// weights become BF16. Synchronous with respect to the host buffer.
DeviceLinear upload_linear(const MatrixRef& host, DeviceArena& arena, cudaStream_t stream);

enum class LinearPath { Auto, SmallM, LargeM };

// Scratch for activation quantization and split-K partials, sized by linear_workspace_bytes().
struct LinearWorkspace {
  void* ptr = nullptr;
  size_t bytes = 0;
};
size_t linear_workspace_bytes(const DeviceLinear& w, int64_t max_m);

// y[M, N] (fp32, row-major) = quantize_activations(x[M, K] bf16) · dequant(W)ᵀ.
void linear_forward(const DeviceLinear& w, const __nv_bfloat16* x, int64_t M, float* y, LinearWorkspace ws,
                    cudaStream_t stream, LinearPath path = LinearPath::Auto);

}  // namespace gdn::cuda
