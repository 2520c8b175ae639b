#include "model/layers.h"

#include <algorithm>
#include <cmath>

#include "core/thread_pool.h"
#include "kernels/cpu/attention.h"
#include "kernels/cpu/conv.h"
#include "kernels/cpu/delta_rule.h"
#include "kernels/cpu/elementwise.h"
#include "kernels/cpu/linear.h"

namespace gdn {

void attention_block(const Qwen35Config& c, const AttentionWeights& w, const float* x, int64_t n,
                     std::vector<float>& k_cache, std::vector<float>& v_cache, float* out, ThreadPool& pool) {
  const int64_t D = c.head_dim, Hq = c.num_heads, Hkv = c.num_kv_heads;
  const float eps = float(c.rms_norm_eps);
  std::vector<float> qg(size_t(n * Hq * 2 * D)), q(size_t(n * Hq * D)), gate(size_t(n * Hq * D));
  linear(x, n, w.q_proj, qg.data(), pool);
  // q_proj rows are per head [query (D) | gate (D)]: de-interleave.
  for (int64_t t = 0; t < n; ++t)
    for (int64_t h = 0; h < Hq; ++h) {
      const float* src = qg.data() + (t * Hq + h) * 2 * D;
      std::copy_n(src, D, q.data() + (t * Hq + h) * D);
      std::copy_n(src + D, D, gate.data() + (t * Hq + h) * D);
    }
  const int64_t past = int64_t(k_cache.size()) / (Hkv * D);
  k_cache.resize(size_t((past + n) * Hkv * D));
  v_cache.resize(size_t((past + n) * Hkv * D));
  float* k_new = k_cache.data() + past * Hkv * D;
  linear(x, n, w.k_proj, k_new, pool);
  linear(x, n, w.v_proj, v_cache.data() + past * Hkv * D, pool);

  rmsnorm_1p(q.data(), w.q_norm.data(), n * Hq, D, eps, q.data());
  rmsnorm_1p(k_new, w.k_norm.data(), n * Hkv, D, eps, k_new);
  // Text positions: all three M-RoPE streams equal the token position, i.e. plain RoPE.
  std::vector<int64_t> pos(static_cast<size_t>(n));
  for (int64_t t = 0; t < n; ++t) pos[t] = past + t;
  apply_rope(q.data(), n, Hq, D, c.rotary_dim, c.rope_theta, pos.data());
  apply_rope(k_new, n, Hkv, D, c.rotary_dim, c.rope_theta, pos.data());

  std::vector<float> o(size_t(n * Hq * D));
  causal_attention({n, Hq, Hkv, D, past}, q.data(), k_cache.data(), v_cache.data(), 1.f / std::sqrt(float(D)),
                   o.data(), pool);
  for (size_t i = 0; i < o.size(); ++i) o[i] *= sigmoid(gate[i]);
  linear(o.data(), n, w.o_proj, out, pool);
}

void deltanet_block(const Qwen35Config& c, const DeltaNetWeights& w, const float* x, int64_t n,
                    float* conv_state, float* recurrent_state, float* out, ThreadPool& pool) {
  const int64_t C = c.conv_dim(), KD = c.key_dim(), VD = c.value_dim();
  const int64_t HK = c.linear_key_heads, HV = c.linear_value_heads, DK = c.linear_key_dim, DV = c.linear_value_dim;
  std::vector<float> mixed(size_t(n * C)), z(size_t(n * VD)), b(size_t(n * HV)), a(size_t(n * HV));
  linear(x, n, w.in_proj_qkv, mixed.data(), pool);
  linear(x, n, w.in_proj_z, z.data(), pool);
  linear(x, n, w.in_proj_b, b.data(), pool);
  linear(x, n, w.in_proj_a, a.data(), pool);

  std::vector<float> conv(size_t(n * C));
  causal_conv1d_silu(mixed.data(), n, C, w.conv_kc.data(), c.conv_kernel, conv_state, conv.data());

  std::vector<float> q(size_t(n * KD)), k(size_t(n * KD)), v(size_t(n * VD));
  for (int64_t t = 0; t < n; ++t) {
    const float* row = conv.data() + t * C;
    std::copy_n(row, KD, q.data() + t * KD);
    std::copy_n(row + KD, KD, k.data() + t * KD);
    std::copy_n(row + 2 * KD, VD, v.data() + t * VD);
  }
  const float eps = 1e-6f;  // the reference's l2norm epsilon (fixed, not rms_norm_eps)
  l2norm_scale(q.data(), n * HK, DK, eps, 1.f / std::sqrt(float(DK)));
  l2norm_scale(k.data(), n * HK, DK, eps, 1.f);

  std::vector<float> beta(size_t(n * HV)), g(size_t(n * HV));
  for (int64_t t = 0; t < n; ++t)
    for (int64_t j = 0; j < HV; ++j) {
      beta[t * HV + j] = sigmoid(b[t * HV + j]);
      g[t * HV + j] = w.neg_exp_A[j] * softplus(a[t * HV + j] + w.dt_bias[j]);
    }

  std::vector<float> o(size_t(n * VD));
  const DeltaRuleShape shape{n, HK, HV, DK, DV};
  if (n == 1)
    delta_rule_recurrent(shape, q.data(), k.data(), v.data(), g.data(), beta.data(), recurrent_state, o.data(), pool);
  else
    delta_rule_chunked(shape, q.data(), k.data(), v.data(), g.data(), beta.data(), recurrent_state, o.data(), pool);

  rmsnorm_gated(o.data(), z.data(), w.norm.data(), n * HV, DV, float(c.rms_norm_eps), o.data());
  linear(o.data(), n, w.out_proj, out, pool);
}

void mlp_block(const Qwen35Config& c, const MlpWeights& w, const float* x, int64_t n, float* out, ThreadPool& pool) {
  const int64_t I = c.intermediate_size;
  std::vector<float> gate(size_t(n * I)), up(size_t(n * I));
  linear(x, n, w.gate_proj, gate.data(), pool);
  linear(x, n, w.up_proj, up.data(), pool);
  swiglu(gate.data(), up.data(), n * I, gate.data());
  linear(gate.data(), n, w.down_proj, out, pool);
}

}  // namespace gdn
