// Gated softmax attention on the GPU (model.md §3.4) over a paged KV cache (step_meta.h).
// The CPU reference is model/layers.cpp attention_block + kernels/cpu/attention.
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

#include "kernels/cuda/step_meta.h"

namespace gdn::cuda {

enum class KvDtype : uint8_t { Bf16, Fp8E4m3 };

// One attention layer's cache: K and V each [num_blocks, kv_heads, kKvBlockTokens, head_dim].
// FP8: stored code = e4m3(value / scale) (RNE, saturating), read back as code · scale; scale is the
// checkpoint's k_scale / v_scale, else 1.
struct KvLayerView {
  void* k = nullptr;
  void* v = nullptr;
  KvDtype dtype = KvDtype::Bf16;
  float k_scale = 1.f, v_scale = 1.f;
  int num_blocks = 0;
};

struct AttnDims {
  int heads = 0, kv_heads = 0, head_dim = 0;  // 27B: 24, 4, 256
  int rotary_dim = 0;                         // even, ≤ head_dim (27B: 64)
  float rope_theta = 1e7f;
  float norm_eps = 1e-6f;
};
size_t kv_block_bytes(const AttnDims& d, KvDtype dt);  // K + V of one block of one layer

// From the fused projection output qkv (fp32, row t at qkv + t·ld): columns [0, 2·heads·D) are
// q_proj's (per head: D query then D gate values), then kv_heads·D of k, then kv_heads·D of v.
// Per token: q and k get the zero-centred RMSNorm (1+w) per head, then rotate-half RoPE on dims
// [0, rotary_dim) at positions[t] (inv_freq_i = theta^(−2i/rotary_dim), angles in fp32 as
// kernels/cpu/attention.cpp); q goes to q_out [T, heads, D] (bf16), k and v to the cache row
// slot_mapping[t] (skip when −1). Gate values stay where they are (paged_attention reads them).
void attention_prepare(const AttnDims& d, const float* qkv, int64_t ld, const StepMeta& m, const float* q_norm_w,
                       const float* k_norm_w, const KvLayerView& kv, __nv_bfloat16* q_out, cudaStream_t stream);

// Scratch of paged_attention (split-KV partials), for steps of up to max_tokens query tokens,
// max_seqs sequences and max_kv_len cached tokens.
size_t attention_workspace_bytes(const AttnDims& d, int max_tokens, int max_seqs, int max_kv_len);

// Causal GQA attention of every query token of the step against its sequence's cache: query t at
// position p (of sequence s = seq_of_token[t]) attends keys at positions [0, p] of s (its own K/V
// already written by attention_prepare); query head h reads kv head h / (heads / kv_heads);
// scale 1/√D; softmax in fp32. Then the output gate: out[t, h, :] = o · sigmoid(gate), where gate =
// qkv[t·gate_ld + h·2D + D + i] (the same qkv buffer as attention_prepare). out: bf16 [T, heads·D]
// (the o_proj input). Prefill chunks use a tensor-core tiled kernel, decode tokens a split-KV
// kernel; both read the cache through block_table. Launch configuration depends only on host
// fields of m (CUDA-graph safe).
void paged_attention(const AttnDims& d, const __nv_bfloat16* q, const StepMeta& m, const KvLayerView& kv,
                     const float* gate, int64_t gate_ld, __nv_bfloat16* out, void* workspace, size_t workspace_bytes,
                     cudaStream_t stream);

// Tests and benchmarks: the prefill kernel for head_dim 256 with a BF16 cache on Hopper — 1: the
// wgmma kernel (default; GDN_ATTN_PREFILL_WGMMA=0 turns it off), 0: the mma.sync kernel, −1: back to
// the default.
void set_prefill_wgmma_mode(int mode);

}  // namespace gdn::cuda
