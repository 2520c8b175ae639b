// The model's weights on the GPU: every Linear as a DeviceLinear (fused where the numerics allow:
// q|k|v, in_proj_qkv|in_proj_z, in_proj_b|in_proj_a, gate|up), small vectors as fp32 device arrays.
// Built either from a loaded checkpoint (ModelWeights: the mmap'd tensors are uploaded with a
// progress line) or, for full-scale benchmarks, from a config alone with random weights generated on
// the GPU (--load-format dummy). All memory comes from one arena sized exactly beforehand.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "kernels/cuda/device.h"
#include "kernels/cuda/linear_cuda.h"
#include "model/config.h"
#include "model/weights.h"

namespace gdn::cuda {

// A projection whose output columns are the concatenation of several Linears with the same input.
// One DeviceLinear when the parts could be fused; otherwise one per part, run one after another and
// copied into their columns.
struct GpuProjection {
  std::vector<DeviceLinear> linears;
  std::vector<int64_t> col_begin;  // per linear: first output column
  int64_t cols = 0;                // total output columns
  bool fused() const { return linears.size() == 1; }
};

struct GpuAttentionWeights {
  GpuProjection qkv;  // [q_proj (per head query|gate) | k_proj | v_proj]
  DeviceLinear o;
  const float* q_norm = nullptr;
  const float* k_norm = nullptr;
  float k_scale = 1.f, v_scale = 1.f;
};

struct GpuDeltaNetWeights {
  GpuProjection qkvz;  // [in_proj_qkv | in_proj_z]
  GpuProjection ba;    // [in_proj_b | in_proj_a]
  DeviceLinear out;
  const float* conv_kc = nullptr;  // [K, conv_dim]
  const float* neg_exp_A = nullptr;
  const float* dt_bias = nullptr;
  const float* norm = nullptr;     // [value_dim]
};

struct GpuLayerWeights {
  LayerKind kind = LayerKind::LinearAttention;
  const float* input_norm = nullptr;
  const float* post_attention_norm = nullptr;
  GpuAttentionWeights attn;
  GpuDeltaNetWeights gdn;
  GpuProjection gate_up;
  DeviceLinear down;
};

struct GpuMtpWeights {
  DeviceLinear fc;
  const float* pre_fc_norm_embedding = nullptr;
  const float* pre_fc_norm_hidden = nullptr;
  const float* norm = nullptr;
  std::vector<GpuLayerWeights> layers;
};

// Which layout --load-format dummy imitates (the schemes real checkpoints use, formats.md): every
// decoder Linear quantized except in_proj_a/in_proj_b (N = 48, excluded by the exporters);
// embed_tokens and lm_head BF16; the MTP head like the decoder for FP8, BF16 for NVFP4 ("mtp*"
// excluded by ModelOpt).
enum class DummyLayout { Bf16, Fp8PerChannel, Fp8Block128, Nvfp4 };
DummyLayout parse_dummy_layout(const std::string& name);  // bf16 | fp8 | fp8-block | nvfp4; InputError else
const char* dummy_layout_name(DummyLayout l);

struct GpuWeights {
  DeviceLinear embed;
  DeviceLinear lm_head;  // the same arrays as embed when tied
  const float* final_norm = nullptr;
  std::vector<GpuLayerWeights> layers;
  std::optional<GpuMtpWeights> mtp;
  std::unique_ptr<DeviceArena> arena;
  int64_t bytes = 0;               // arena bytes
  int64_t decode_stream_bytes = 0; // bytes one batch-1 decode step streams (every layer + lm_head, no MTP, no embed)
  double upload_seconds = 0;
};

// Uploads `w` (validated host weights of `cfg`). Progress on stderr when `progress`.
GpuWeights upload_weights(const Qwen35Config& cfg, const ModelWeights& w, cudaStream_t stream, bool progress);

// Random weights of `cfg`'s shapes in `layout` (MTP head when cfg.mtp_layers > 0).
GpuWeights random_weights(const Qwen35Config& cfg, DummyLayout layout, cudaStream_t stream, uint64_t seed = 1);

// The exact Qwen3.5-27B text config (model.md §1.2) for dummy runs.
Qwen35Config qwen35_27b_config();

}  // namespace gdn::cuda
