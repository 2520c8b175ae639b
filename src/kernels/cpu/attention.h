// Rotary position embedding and causal GQA softmax attention over a KV cache, fp32.
#pragma once

#include <cstdint>

namespace gdn {
class ThreadPool;

// Rotate-half (NeoX) RoPE on dims [0, rotary_dim) of every head; the rest pass through.
// x: [T, heads, head_dim]; positions: [T]. inv_freq_i = theta^(−2i/rotary_dim).
void apply_rope(float* x, int64_t tokens, int64_t heads, int64_t head_dim, int64_t rotary_dim, double theta,
                const int64_t* positions);

struct AttentionShape {
  int64_t tokens;     // T new queries
  int64_t heads;      // query heads
  int64_t kv_heads;   // key/value heads (heads % kv_heads == 0)
  int64_t head_dim;
  int64_t past;       // cache entries before the first new query; query t sees keys [0, past + t]
};

// q: [T, heads, D]; k_cache, v_cache: [past + T, kv_heads, D]; out: [T, heads, D].
// Softmax(q·kᵀ · scale) in fp32; query head h reads kv head h / (heads / kv_heads).
void causal_attention(const AttentionShape& s, const float* q, const float* k_cache, const float* v_cache,
                      float scale, float* out, ThreadPool& pool);

}  // namespace gdn
