// Per-sequence state of the CPU reference: a growing KV cache per attention layer and the
// DeltaNet conv and recurrent states (fp32) per linear-attention layer. Owned by the caller
// (runtime); the model reads and advances it. Copyable on purpose: tests and speculative
// decoding snapshot it.
#pragma once

#include <cstdint>
#include <vector>

#include "model/config.h"

namespace gdn {

struct SequenceState {
  int64_t length = 0;                         // tokens already processed (next position)
  std::vector<std::vector<float>> k, v;       // per attention layer: [length, kv_heads·head_dim]
  std::vector<std::vector<float>> conv;       // per DeltaNet layer: [K−1, conv_dim]
  std::vector<std::vector<float>> recurrent;  // per DeltaNet layer: [HV, DK, DV]
};

// A fresh state for `layer_kinds` (zeros; empty KV). For the MTP head pass its layer count of
// full-attention layers.
SequenceState make_sequence_state(const Qwen35Config& cfg, const std::vector<LayerKind>& layer_kinds);

}  // namespace gdn
