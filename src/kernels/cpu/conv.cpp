#include "kernels/cpu/conv.h"

#include <algorithm>
#include <vector>

#include "kernels/cpu/elementwise.h"

namespace gdn {

void causal_conv1d_silu(const float* x, int64_t tokens, int64_t channels, const float* weight_kc, int64_t kernel,
                        float* state, float* out) {
  const int64_t hist = kernel - 1;
  // Row r of the virtual sequence [state; x]: r < hist comes from state.
  auto row = [&](int64_t r) { return r < hist ? state + r * channels : x + (r - hist) * channels; };
  for (int64_t t = 0; t < tokens; ++t) {
    float* o = out + t * channels;
    std::fill(o, o + channels, 0.f);
    for (int64_t i = 0; i < kernel; ++i) {
      const float* in = row(t + i);
      const float* w = weight_kc + i * channels;
      for (int64_t c = 0; c < channels; ++c) o[c] += w[c] * in[c];
    }
    for (int64_t c = 0; c < channels; ++c) o[c] = silu(o[c]);
  }
  // New state: the last `hist` rows of [state; x].
  if (hist > 0) {
    std::vector<float> next(size_t(hist * channels));
    for (int64_t r = 0; r < hist; ++r) std::copy_n(row(tokens + r), channels, next.data() + r * channels);
    std::copy(next.begin(), next.end(), state);
  }
}

}  // namespace gdn
