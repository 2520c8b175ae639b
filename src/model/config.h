// Qwen3.5 / Qwen3.6 text-model configuration, read from config.json in either layout:
//  * published wrapper: model_type "qwen3_5", architectures [Qwen3_5ForConditionalGeneration],
//    LM fields nested in text_config, LM tensors under model.language_model.*;
//  * text-only: model_type "qwen3_5_text", flat fields, tensors under model.*.
// Plus generation_config.json (eos ids) when present.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "formats/quant_config.h"

namespace gdn {

enum class LayerKind : uint8_t { LinearAttention, FullAttention };

struct Qwen35Config {
  std::string model_type;    // "qwen3_5" or "qwen3_5_text"
  std::string architecture;  // first entry of "architectures" (may be empty)
  std::string tensor_prefix; // "model.language_model." or "model."

  int64_t vocab_size = 0, hidden_size = 0, intermediate_size = 0, num_layers = 0;
  std::vector<LayerKind> layer_kinds;

  // gated softmax attention
  int64_t num_heads = 0, num_kv_heads = 0, head_dim = 0;
  double rope_theta = 10000.0, partial_rotary_factor = 1.0;
  int64_t rotary_dim = 0;             // even, ≤ head_dim
  std::vector<int64_t> mrope_section; // T/H/W split of rotary_dim/2 frequencies (text: irrelevant)
  bool mrope_interleaved = false;

  // Gated DeltaNet
  int64_t linear_key_heads = 0, linear_value_heads = 0, linear_key_dim = 0, linear_value_dim = 0;
  int64_t conv_kernel = 4;

  double rms_norm_eps = 1e-6;
  bool tie_word_embeddings = false;
  int64_t mtp_layers = 0;               // declared by the config (0 when absent)
  std::vector<int32_t> eos_token_ids;   // generation_config.json, else config eos_token_id
  QuantConfig quant;                    // quantization_config / hf_quant_config.json (None if absent)

  int64_t key_dim() const { return linear_key_heads * linear_key_dim; }
  int64_t value_dim() const { return linear_value_heads * linear_value_dim; }
  int64_t conv_dim() const { return 2 * key_dim() + value_dim(); }
  int64_t num_attention_layers() const;
  int64_t num_linear_layers() const { return num_layers - num_attention_layers(); }
  // Bytes of per-sequence state: DeltaNet recurrent (fp32) + conv (fp32 here), and KV per token
  // (bytes_per_elem each for K and V over all attention layers).
  int64_t deltanet_state_bytes(int64_t conv_bytes_per_elem = 4) const;
  int64_t kv_bytes_per_token(int64_t bytes_per_elem) const;
};

// Reads DIR/config.json (and DIR/generation_config.json). Throws InputError naming the file and
// field for anything missing, mistyped or inconsistent, or for an unknown architecture.
Qwen35Config load_qwen35_config(const std::string& dir);

// Same from JSON text (generation_json and hf_quant_json may be empty). `where` names the source
// in messages.
Qwen35Config parse_qwen35_config(const std::string& config_json, const std::string& generation_json,
                                 const std::string& where, const std::string& hf_quant_json = "");

}  // namespace gdn
