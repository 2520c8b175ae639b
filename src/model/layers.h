// The three blocks of a Qwen3.5 decoder layer on the CPU (model.md §3.3–3.5). Each takes the
// normed input x [n, H] of n consecutive tokens of one sequence and writes the block output
// [n, H] (before the residual add).
#pragma once

#include <cstdint>
#include <vector>

#include "model/config.h"
#include "model/weights.h"

namespace gdn {
class ThreadPool;

// Gated softmax attention. k_cache/v_cache: the layer's cache, [past, kv_heads·head_dim], grown
// by n rows; positions are past .. past+n−1.
void attention_block(const Qwen35Config& c, const AttentionWeights& w, const float* x, int64_t n,
                     std::vector<float>& k_cache, std::vector<float>& v_cache, float* out, ThreadPool& pool);

// Gated DeltaNet. conv_state [K−1, conv_dim] and recurrent_state [HV, DK, DV] are advanced.
// n == 1 uses the recurrent delta rule, n > 1 the chunked one (as the reference does).
void deltanet_block(const Qwen35Config& c, const DeltaNetWeights& w, const float* x, int64_t n,
                    float* conv_state, float* recurrent_state, float* out, ThreadPool& pool);

// SwiGLU MLP.
void mlp_block(const Qwen35Config& c, const MlpWeights& w, const float* x, int64_t n, float* out, ThreadPool& pool);

}  // namespace gdn
