#include "kernels/cpu/attention.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "core/thread_pool.h"
#include "kernels/cpu/linear.h"

namespace gdn {

void apply_rope(float* x, int64_t tokens, int64_t heads, int64_t head_dim, int64_t rotary_dim, double theta,
                const int64_t* positions) {
  const int64_t half = rotary_dim / 2;
  std::vector<float> inv_freq(static_cast<size_t>(half)), cs(inv_freq.size()), sn(inv_freq.size());
  // fp32 like the reference: inv_freq = 1 / theta^(2i/dim), angle = pos · inv_freq.
  for (int64_t i = 0; i < half; ++i)
    inv_freq[i] = 1.f / std::pow(float(theta), float(2 * i) / float(rotary_dim));
  for (int64_t t = 0; t < tokens; ++t) {
    for (int64_t i = 0; i < half; ++i) {
      const float a = float(positions[t]) * inv_freq[i];
      cs[i] = std::cos(a);
      sn[i] = std::sin(a);
    }
    for (int64_t h = 0; h < heads; ++h) {
      float* v = x + (t * heads + h) * head_dim;
      for (int64_t i = 0; i < half; ++i) {
        const float a = v[i], b = v[i + half];
        v[i] = a * cs[i] - b * sn[i];
        v[i + half] = b * cs[i] + a * sn[i];
      }
    }
  }
}

void causal_attention(const AttentionShape& s, const float* q, const float* k_cache, const float* v_cache,
                      float scale, float* out, ThreadPool& pool) {
  const int64_t D = s.head_dim, group = s.heads / s.kv_heads;
  const int64_t kv_stride = s.kv_heads * D;
  pool.parallel_for(s.tokens * s.heads, [&](int64_t b, int64_t e) {
    std::vector<float> scores(size_t(s.past + s.tokens));
    for (int64_t idx = b; idx < e; ++idx) {
      const int64_t t = idx / s.heads, h = idx % s.heads, kvh = h / group;
      const int64_t n = s.past + t + 1;  // visible keys
      const float* qv = q + (t * s.heads + h) * D;
      float mx = -INFINITY;
      for (int64_t j = 0; j < n; ++j) {
        scores[j] = dot(qv, k_cache + j * kv_stride + kvh * D, D) * scale;
        mx = std::max(mx, scores[j]);
      }
      double sum = 0.0;
      for (int64_t j = 0; j < n; ++j) {
        scores[j] = std::exp(scores[j] - mx);
        sum += scores[j];
      }
      const float inv = float(1.0 / sum);
      float* o = out + (t * s.heads + h) * D;
      std::fill(o, o + D, 0.f);
      for (int64_t j = 0; j < n; ++j) {
        const float p = scores[j] * inv;
        const float* vv = v_cache + j * kv_stride + kvh * D;
        for (int64_t d = 0; d < D; ++d) o[d] += p * vv[d];
      }
    }
  });
}

}  // namespace gdn
