// Gated DeltaNet on the GPU (model.md §3.5–3.7): causal conv1d, gates + q/k L2 norm, the gated
// delta rule (chunked on tensor cores for prefill, recurrent for decode) and the gated RMSNorm.
// The CPU reference is model/layers.cpp deltanet_block + kernels/cpu/{conv,delta_rule,elementwise}.
// Sequences and state slots as in step_meta.h.
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

#include "kernels/cuda/linear_cuda.h"
#include "kernels/cuda/step_meta.h"

namespace gdn::cuda {

struct GdnDims {
  int key_heads = 0, value_heads = 0;  // HK, HV (27B: 16, 48)
  int key_dim = 0, value_dim = 0;      // DK, DV (27B: 128, 128)
  int conv_kernel = 4;                 // K
  float norm_eps = 1e-6f;              // gated RMSNorm epsilon (rms_norm_eps)
  int conv_dim() const { return 2 * key_heads * key_dim + value_heads * value_dim; }
};

// Per-slot state of one DeltaNet layer: conv [slots, K−1, conv_dim] (the K−1 previous conv
// inputs, oldest first) and recurrent [slots, HV, DK, DV], both fp32, zero for a fresh sequence.
struct GdnStateView {
  float* conv = nullptr;
  float* recurrent = nullptr;
  int slots = 0;
};
size_t gdn_slot_bytes(const GdnDims& d);  // conv + recurrent bytes of one slot of one layer

// Causal depthwise conv1d + SiLU, varlen: x row t = x + t·ld, first conv_dim columns (the
// in_proj_qkv output, GemmOut: fp32 or BF16, taken as BF16 holds it); weight_kc [K, conv_dim] fp32
// (tap K−1 multiplies the current token). Sequence s starts from conv state slot state_slots[s]
// and leaves its last K−1 inputs there. out: fp32 [T, conv_dim] (q | k | v per token).
void gdn_conv1d_silu(const GdnDims& d, GemmOut x, int64_t ld, const float* weight_kc, const StepMeta& m,
                     GdnStateView st, float* out, cudaStream_t stream);

// Scratch of gdn_delta_rule for up to max_tokens tokens and max_seqs sequences.
size_t gdn_workspace_bytes(const GdnDims& d, int max_tokens, int max_seqs);

// Gates, L2 norm and the gated delta rule. qkv: conv output [T, conv_dim]; ba row t = ba + t·ba_ld
// holds b (HV values) then a (HV values); neg_exp_A, dt_bias [HV].
//   q, k ← l2norm (eps 1e-6), q × 1/√DK;  beta = sigmoid(b);  g = neg_exp_A · softplus(a + dt_bias)
// then per sequence, from recurrent slot state_slots[s] (advanced in place): the recurrence of
// kernels/cpu/delta_rule.h. Sequences of one token take the recurrent kernel; longer ones the
// chunked (64) form on tensor cores. out: fp32 [T, HV, DV].
void gdn_delta_rule(const GdnDims& d, const float* qkv, const float* ba, int64_t ba_ld, const float* neg_exp_A,
                    const float* dt_bias, const StepMeta& m, GdnStateView st, float* out, void* workspace,
                    size_t workspace_bytes, cudaStream_t stream);

// y = rmsnorm(o) · w · silu(z) per value head (DV elements, eps = d.norm_eps), as
// kernels/cpu/elementwise rmsnorm_gated; o [T, HV·DV] fp32; z row t = z + t·z_ld (in_proj_z's
// output, GemmOut, taken as BF16 holds it like the conv input above); w [DV].
// y: bf16 [T, HV·DV] (the out_proj input). q (optional): the same values quantized per token for
// out_proj (ops_cuda.h add_rmsnorm); y may then be null when gdn_gated_rmsnorm_fusable(d).
// nv (optional): also NVFP4 activations for out_proj (Nvfp4Acts, linear_cuda.h); y may then be null
// when DV % 32 == 0 and nv.ld == HV·DV.
void gdn_gated_rmsnorm(const GdnDims& d, const float* o, GemmOut z, int64_t z_ld, const float* w, int T,
                       __nv_bfloat16* y, cudaStream_t stream, const Fp8TokenActs& q = {}, const Nvfp4Acts& nv = {});
bool gdn_gated_rmsnorm_fusable(const GdnDims& d);
// Whether gdn_gated_rmsnorm writes nv itself (else from its BF16 output).
bool gdn_gated_rmsnorm_nvfp4_fusable(const GdnDims& d, const Nvfp4Acts& nv);

}  // namespace gdn::cuda
