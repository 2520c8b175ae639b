// Weights of a Qwen3.5/3.6 text model (+ optional MTP head), bound to a loaded checkpoint.
// Matrices stay in the mapped checkpoint (zero-copy views); small vectors (norms, gates, conv
// taps) are decoded to fp32 at load. Every tensor is checked against the shape the config implies.
// Immutable after load; the checkpoint must outlive the weights.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "formats/checkpoint.h"
#include "kernels/cpu/linear.h"
#include "model/config.h"
#include "model/tensor_binder.h"

namespace gdn {

struct AttentionWeights {
  MatrixRef q_proj;  // [heads·head_dim·2, H]: per head, head_dim query rows then head_dim gate rows
  MatrixRef k_proj, v_proj;  // [kv_heads·head_dim, H]
  MatrixRef o_proj;          // [H, heads·head_dim]
  std::vector<float> q_norm, k_norm;  // [head_dim], used as 1+w
  // FP8 KV-cache scales (multipliers) when the checkpoint carries them; 1.0 otherwise.
  bool has_kv_scales = false;
  float k_scale = 1.f, v_scale = 1.f;
};

struct DeltaNetWeights {
  MatrixRef in_proj_qkv;  // [2·key_dim + value_dim, H]: q rows, k rows, v rows
  MatrixRef in_proj_z;    // [value_dim, H]
  MatrixRef in_proj_b, in_proj_a;  // [HV, H]
  MatrixRef out_proj;     // [H, value_dim]
  std::vector<float> conv_kc;  // [K, conv_dim] (checkpoint [conv_dim, 1, K] transposed)
  std::vector<float> neg_exp_A;  // [HV] = −exp(A_log)
  std::vector<float> dt_bias;  // [HV]
  std::vector<float> norm;     // [value_head_dim], plain multiplier
};

struct MlpWeights {
  MatrixRef gate_proj, up_proj;  // [I, H]
  MatrixRef down_proj;           // [H, I]
};

struct LayerWeights {
  LayerKind kind = LayerKind::LinearAttention;
  std::vector<float> input_norm, post_attention_norm;  // [H], used as 1+w
  AttentionWeights attn;  // when kind == FullAttention
  DeltaNetWeights gdn;    // when kind == LinearAttention
  MlpWeights mlp;
};

struct MtpWeights {
  MatrixRef fc;  // [H, 2H]: input = [norm(embedding); norm(hidden)]
  std::vector<float> pre_fc_norm_embedding, pre_fc_norm_hidden, norm;  // [H], 1+w
  std::vector<LayerWeights> layers;  // full-attention decoder layers (1 in released models)
};

struct ModelWeights {
  MatrixRef embed;    // [V, H]
  MatrixRef lm_head;  // [V, H] (== embed when tied)
  std::vector<float> final_norm;  // [H], 1+w
  std::vector<LayerWeights> layers;
  std::optional<MtpWeights> mtp;
  std::vector<TensorGroupStats> groups;  // what was loaded, by component (+ "vision" for skipped tensors)
  std::vector<std::string> skipped;      // tensors present but not used (vision tower, ...)
  bool has_kv_scales = false;
};

// Throws InputError naming the tensor/module and the expected vs found shape/dtype/scheme.
// `mode` WeightOnly runs quantized checkpoints without activation quantization (W8A16 / W4A16).
ModelWeights load_weights(const Qwen35Config& cfg, const Checkpoint& ck,
                          ActivationMode mode = ActivationMode::Declared);

}  // namespace gdn
