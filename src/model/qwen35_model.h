// A loaded Qwen3.5/3.6 text model on the CPU reference backend: config, checkpoint and weights.
// The model is immutable after load; all mutable state (SequenceState) belongs to the caller, so
// one model can serve several sequences.
#pragma once

#include <memory>
#include <span>
#include <string>

#include "formats/checkpoint.h"
#include "model/config.h"
#include "model/state.h"
#include "model/weights.h"

namespace gdn {
class ThreadPool;

struct ForwardOutputs {
  float* logits = nullptr;     // [n, V] when all_positions, else [1, V] for the last token; may be null
  bool all_positions = true;
  float* hidden = nullptr;     // [n, H] final-normed hidden states (what lm_head and MTP read); may be null
};

class Qwen35Model {
 public:
  // Reads config.json, generation_config.json and every safetensors file of `dir`; validates all
  // tensors. Throws InputError on any problem.
  // `mode` WeightOnly skips activation quantization of quantized layouts (W8A16 / W4A16).
  static std::unique_ptr<Qwen35Model> load(const std::string& dir, ActivationMode mode = ActivationMode::Declared);

  const Qwen35Config& config() const { return cfg_; }
  const ModelWeights& weights() const { return w_; }
  const Checkpoint& checkpoint() const { return *ck_; }

  SequenceState new_state() const;
  // Runs ids (n ≥ 1, each < vocab_size) through the model at positions state.length.., advancing
  // the state. n > 1 is one "prefill" forward (chunked delta rule), n == 1 a decode step.
  void forward(std::span<const int32_t> ids, SequenceState& state, const ForwardOutputs& out, ThreadPool& pool) const;

  // MTP head (model.md §5.1), when the checkpoint has one. Row i combines hidden[i] (the main
  // model's final-normed hidden at position p = mtp_state.length + i) with next_ids[i] (the token
  // at p+1) and predicts the token at p+2. logits: [n, V].
  bool has_mtp() const { return w_.mtp.has_value(); }
  SequenceState new_mtp_state() const;
  void mtp_forward(const float* hidden, std::span<const int32_t> next_ids, SequenceState& mtp_state, float* logits,
                   ThreadPool& pool) const;

 private:
  Qwen35Model() = default;
  // One decoder layer over x [n, H] (residual stream, updated in place).
  void decoder_layer(const LayerWeights& l, float* x, int64_t n, SequenceState& st, int64_t attn_idx,
                     int64_t gdn_idx, ThreadPool& pool) const;

  Qwen35Config cfg_;
  std::unique_ptr<Checkpoint> ck_;
  ModelWeights w_;
};

// Throws InputError naming the first id outside [0, vocab).
void validate_token_ids(std::span<const int32_t> ids, int64_t vocab);

}  // namespace gdn
