#include "model/state.h"

namespace gdn {

SequenceState make_sequence_state(const Qwen35Config& c, const std::vector<LayerKind>& kinds) {
  SequenceState s;
  for (LayerKind k : kinds) {
    if (k == LayerKind::FullAttention) {
      s.k.emplace_back();
      s.v.emplace_back();
    } else {
      s.conv.emplace_back(size_t((c.conv_kernel - 1) * c.conv_dim()), 0.f);
      s.recurrent.emplace_back(size_t(c.linear_value_heads * c.linear_key_dim * c.linear_value_dim), 0.f);
    }
  }
  return s;
}

}  // namespace gdn
