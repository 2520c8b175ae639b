// Causal depthwise conv1d + SiLU of the Gated DeltaNet input (model.md §3.5 step 2), fp32.
#pragma once

#include <cstdint>

namespace gdn {

// x: [T, C] new inputs; weight_kc: [K, C], the checkpoint's [C, 1, K] transposed so channels are
// contiguous (tap K−1 multiplies the current token);
// state: [K−1, C], the K−1 inputs before x (oldest first; zeros for a fresh sequence), updated to
// the last K−1 inputs; out: [T, C] = silu(Σ_i weight_kc[i][c] · window_i).
void causal_conv1d_silu(const float* x, int64_t tokens, int64_t channels, const float* weight_kc, int64_t kernel,
                        float* state, float* out);

}  // namespace gdn
