// Internals shared by the Gated DeltaNet CUDA kernels (gdn_conv.cu, gdn_recurrent.cu,
// gdn_chunked.cu): the scalar activations exactly as kernels/cpu/elementwise.h defines them, a warp
// sum, and the launch parameters of the delta-rule kernels.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "kernels/cuda/deltanet_cuda.h"

namespace gdn::cuda::detail {

__device__ __forceinline__ float gdn_sigmoid(float x) { return 1.f / (1.f + expf(-x)); }
__device__ __forceinline__ float gdn_silu(float x) { return x / (1.f + expf(-x)); }
// torch softplus (beta 1, threshold 20), as the CPU reference.
__device__ __forceinline__ float gdn_softplus(float x) { return x > 20.f ? x : log1pf(expf(x)); }

__device__ __forceinline__ float gdn_warp_sum(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

constexpr float kGdnL2Eps = 1e-6f;  // the reference's l2norm epsilon (fixed, not rms_norm_eps)

// What both delta-rule kernels read. qkv rows have conv_dim floats: q (HK·DK) | k (HK·DK) | v (HV·DV).
struct DeltaParams {
  const float* qkv = nullptr;
  int64_t conv_dim = 0;
  const float* ba = nullptr;  // row t: b[HV] then a[HV]
  int64_t ba_ld = 0;
  const float* neg_exp_A = nullptr;
  const float* dt_bias = nullptr;
  const int32_t* cu_seqlens = nullptr;
  const int32_t* state_slots = nullptr;
  float* state = nullptr;  // [slots, HV, DK, DV]
  float* out = nullptr;    // [T, HV, DV]
  int HK = 0, HV = 0, DK = 0, DV = 0;
  float q_scale = 1.f;  // 1/sqrt(DK)
  // Host-side max tokens of one sequence (StepMeta::max_q_len): sizes the chunked form's windows.
  int max_q_len = 0;
  // Scratch of the split chunked form (gdn_workspace_bytes); too small or null = the fused form.
  float* scratch = nullptr;
  size_t scratch_bytes = 0;
};

// Bytes of scratch the split chunked form uses for steps of up to max_tokens tokens and max_seqs
// sequences (0 when these dims take the fused form). Capped; longer steps run in windows.
size_t split_scratch_bytes(const GdnDims& d, int max_tokens, int max_seqs);

// Sequences of exactly one token (decode): one launch over (DV/32 column blocks, HV, S).
void launch_recurrent(const DeltaParams& p, int num_seqs, cudaStream_t stream);
// Sequences of two or more tokens: the chunked (64) WY/UT form on tensor cores (gdn_chunked.cu: the
// split form for DK 65..128, else the fused form of gdn_chunked_fused.cu).
void launch_chunked(const DeltaParams& p, int num_seqs, cudaStream_t stream);
void launch_fused_chunked(const DeltaParams& p, int num_seqs, cudaStream_t stream);

}  // namespace gdn::cuda::detail
