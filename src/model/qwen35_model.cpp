#include "model/qwen35_model.h"

#include <vector>

#include "core/error.h"
#include "core/thread_pool.h"
#include "kernels/cpu/elementwise.h"
#include "kernels/cpu/linear.h"
#include "model/layers.h"

namespace gdn {

void validate_token_ids(std::span<const int32_t> ids, int64_t vocab) {
  for (size_t i = 0; i < ids.size(); ++i)
    if (ids[i] < 0 || ids[i] >= vocab)
      fail_input("token id {} at position {} is outside the vocabulary [0, {})", ids[i], i, vocab);
}

std::unique_ptr<Qwen35Model> Qwen35Model::load(const std::string& dir, ActivationMode mode) {
  auto m = std::unique_ptr<Qwen35Model>(new Qwen35Model());
  m->cfg_ = load_qwen35_config(dir);
  m->ck_ = Checkpoint::open(dir);
  m->w_ = load_weights(m->cfg_, *m->ck_, mode);
  return m;
}

SequenceState Qwen35Model::new_state() const { return make_sequence_state(cfg_, cfg_.layer_kinds); }

SequenceState Qwen35Model::new_mtp_state() const {
  GDN_CHECK(has_mtp());
  return make_sequence_state(cfg_, std::vector<LayerKind>(w_.mtp->layers.size(), LayerKind::FullAttention));
}

void Qwen35Model::decoder_layer(const LayerWeights& l, float* x, int64_t n, SequenceState& st, int64_t attn_idx,
                                int64_t gdn_idx, ThreadPool& pool) const {
  const int64_t H = cfg_.hidden_size;
  const float eps = float(cfg_.rms_norm_eps);
  std::vector<float> h(size_t(n * H)), o(size_t(n * H));
  rmsnorm_1p(x, l.input_norm.data(), n, H, eps, h.data());
  if (l.kind == LayerKind::FullAttention)
    attention_block(cfg_, l.attn, h.data(), n, st.k[size_t(attn_idx)], st.v[size_t(attn_idx)], o.data(), pool);
  else
    deltanet_block(cfg_, l.gdn, h.data(), n, st.conv[size_t(gdn_idx)].data(), st.recurrent[size_t(gdn_idx)].data(),
                   o.data(), pool);
  add_inplace(x, o.data(), n * H);
  rmsnorm_1p(x, l.post_attention_norm.data(), n, H, eps, h.data());
  mlp_block(cfg_, l.mlp, h.data(), n, o.data(), pool);
  add_inplace(x, o.data(), n * H);
}

void Qwen35Model::forward(std::span<const int32_t> ids, SequenceState& st, const ForwardOutputs& out,
                          ThreadPool& pool) const {
  const int64_t n = int64_t(ids.size()), H = cfg_.hidden_size;
  GDN_CHECK(n > 0);
  std::vector<float> x(size_t(n * H));
  embed_rows(w_.embed, ids.data(), n, x.data());
  int64_t attn_idx = 0, gdn_idx = 0;
  for (const LayerWeights& l : w_.layers) {
    decoder_layer(l, x.data(), n, st, attn_idx, gdn_idx, pool);
    (l.kind == LayerKind::FullAttention ? attn_idx : gdn_idx)++;
  }
  rmsnorm_1p(x.data(), w_.final_norm.data(), n, H, float(cfg_.rms_norm_eps), x.data());
  st.length += n;
  if (out.hidden) std::copy(x.begin(), x.end(), out.hidden);
  if (out.logits) {
    const int64_t rows = out.all_positions ? n : 1;
    linear(x.data() + (n - rows) * H, rows, w_.lm_head, out.logits, pool);
  }
}

void Qwen35Model::mtp_forward(const float* hidden, std::span<const int32_t> next_ids, SequenceState& st,
                              float* logits, ThreadPool& pool) const {
  GDN_CHECK(has_mtp());
  const MtpWeights& m = *w_.mtp;
  const int64_t n = int64_t(next_ids.size()), H = cfg_.hidden_size;
  const float eps = float(cfg_.rms_norm_eps);
  std::vector<float> e(size_t(n * H)), cat(size_t(n * 2 * H)), x(size_t(n * H));
  embed_rows(w_.embed, next_ids.data(), n, e.data());
  // fc input per row: [norm(embedding) ; norm(hidden)] — embedding first.
  for (int64_t t = 0; t < n; ++t) {
    rmsnorm_1p(e.data() + t * H, m.pre_fc_norm_embedding.data(), 1, H, eps, cat.data() + t * 2 * H);
    rmsnorm_1p(hidden + t * H, m.pre_fc_norm_hidden.data(), 1, H, eps, cat.data() + t * 2 * H + H);
  }
  linear(cat.data(), n, m.fc, x.data(), pool);
  for (size_t i = 0; i < m.layers.size(); ++i) decoder_layer(m.layers[i], x.data(), n, st, int64_t(i), 0, pool);
  rmsnorm_1p(x.data(), m.norm.data(), n, H, eps, x.data());
  st.length += n;
  linear(x.data(), n, w_.lm_head, logits, pool);
}

}  // namespace gdn
