// Small fused ops of the GPU forward (model.md §3.2–3.3): embedding lookup, residual add +
// zero-centred RMSNorm, SwiGLU, row gathers. The CPU reference is kernels/cpu/elementwise and
// linear.cpp embed_rows / decode_row.
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

#include "kernels/cuda/linear_cuda.h"

namespace gdn::cuda {

// out[t, :] = dequantized row ids[t] of the table (an uploaded DeviceLinear of any kind: BF16,
// FP8 per-channel or block-128, NVFP4), fp32 [T, cols]. Ids must be valid (the caller checks them).
void embed_lookup(const DeviceLinear& table, const int32_t* ids, int T, float* out, cudaStream_t stream);

// Residual update and pre-norm of the next block, one pass over the residual:
//   if delta: residual[t] += bf16(delta[t])   (in place; delta [T, H] is the block output, GemmOut)
//   out_bf16[t] = bf16(residual[t] · rsqrt(mean(residual[t]²) + eps) · (1 + w))
//   out_f32 (optional) = the same in fp32.
// rows (optional, [R]): only normalise residual rows rows[0..R) into output rows 0..R (the add
// still covers all T rows when delta is given) — the final norm before lm_head.
// q (optional): the BF16 output also quantized per token for the next linear (Fp8TokenActs,
// linear_cuda.h), bit for bit what linear_forward would make of out_bf16; out_bf16 may then be null
// when fp8_row_fusable(H).
// nv (optional): the BF16 output also quantized to NVFP4 activations (Nvfp4Acts, linear_cuda.h) for
// the next linear; in the kernel when nvfp4_row_fusable(nv, H), else by the linear's pre-kernel on
// out_bf16 (which must then be given).
void add_rmsnorm(float* residual, GemmOut delta, const float* w, int T, int H, float eps,
                 __nv_bfloat16* out_bf16, float* out_f32, cudaStream_t stream, const int32_t* rows = nullptr,
                 int R = 0, const Fp8TokenActs& q = {}, const Nvfp4Acts& nv = {});

// out[t, i] = bf16(silu(g) · u) with g = bf16(gu[t, i]), u = bf16(gu[t, I + i]) for the fused
// gate|up output gu [T, 2I] (GemmOut: fp32 or BF16, the same bits).
// q: as for add_rmsnorm (out may be null when fp8_row_fusable(I)).
// nv: as for add_rmsnorm (out may be null when nvfp4_row_fusable(nv, I)); not together with q.
void swiglu(GemmOut gu, int T, int I, __nv_bfloat16* out, cudaStream_t stream, const Fp8TokenActs& q = {},
            const Nvfp4Acts& nv = {});

// Whether a producer quantizes a row of `cols` values in the same kernel (else it needs its BF16
// output and quantizes it afterwards).
bool fp8_row_fusable(int64_t cols);
// Whether a producer writes NVFP4 activations of a row of `cols` values itself.
bool nvfp4_row_fusable(const Nvfp4Acts& nv, int64_t cols);

}  // namespace gdn::cuda
