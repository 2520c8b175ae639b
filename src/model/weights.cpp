#include "model/weights.h"

#include <cmath>
#include <set>

#include "core/error.h"

namespace gdn {

namespace {

// Looks tensors up by name, checks shape and dtype, and records what was used per group.
class Binder {
 public:
  Binder(const Checkpoint& ck, ModelWeights& w) : ck_(ck), w_(w) {}

  MatrixRef matrix(const std::string& name, int64_t rows, int64_t cols, const std::string& group) {
    const TensorRef t = take(name, {rows, cols}, group);
    if (t.dtype() != DType::F32 && t.dtype() != DType::BF16 && t.dtype() != DType::F16)
      fail_input("tensor '{}' in {}: dtype {} is not supported here (expected BF16, F16 or F32)", name, *t.file,
                 dtype_name(t.dtype()));
    return MatrixRef{t.dtype(), t.data, rows, cols};
  }

  std::vector<float> vec(const std::string& name, std::vector<int64_t> shape, const std::string& group) {
    const TensorRef t = take(name, shape, group);
    if (!dtype_is_float(t.dtype()))
      fail_input("tensor '{}' in {}: dtype {} is not a floating-point type", name, *t.file, dtype_name(t.dtype()));
    std::vector<float> out(size_t(t.numel()));
    for (size_t i = 0; i < out.size(); ++i) out[i] = load_as_float(t.dtype(), t.data, i);
    return out;
  }

  const std::set<std::string>& used() const { return used_; }

 private:
  TensorRef take(const std::string& name, const std::vector<int64_t>& shape, const std::string& group) {
    const TensorRef t = ck_.get(name);
    if (t.shape() != shape)
      fail_input("tensor '{}' in {}: shape {} but the config implies {}", name, *t.file, shape_str(t.shape()),
                 shape_str(shape));
    used_.insert(name);
    TensorGroupStats* g = nullptr;
    for (auto& s : w_.groups)
      if (s.group == group) g = &s;
    if (!g) {
      w_.groups.push_back({group, {}, 0});
      g = &w_.groups.back();
    }
    g->bytes_by_dtype[std::string(dtype_name(t.dtype()))] += int64_t(t.nbytes());
    g->params += t.numel();
    return t;
  }

  const Checkpoint& ck_;
  ModelWeights& w_;
  std::set<std::string> used_;
};

void bind_attention(Binder& b, const Qwen35Config& c, const std::string& p, AttentionWeights& a, const std::string& g) {
  const int64_t H = c.hidden_size, D = c.head_dim;
  a.q_proj = b.matrix(p + "q_proj.weight", c.num_heads * D * 2, H, g);
  a.k_proj = b.matrix(p + "k_proj.weight", c.num_kv_heads * D, H, g);
  a.v_proj = b.matrix(p + "v_proj.weight", c.num_kv_heads * D, H, g);
  a.o_proj = b.matrix(p + "o_proj.weight", H, c.num_heads * D, g);
  a.q_norm = b.vec(p + "q_norm.weight", {D}, g);
  a.k_norm = b.vec(p + "k_norm.weight", {D}, g);
}

void bind_deltanet(Binder& b, const Qwen35Config& c, const std::string& p, DeltaNetWeights& d) {
  const std::string g = "DeltaNet";
  const int64_t H = c.hidden_size, HV = c.linear_value_heads, C = c.conv_dim(), K = c.conv_kernel;
  d.in_proj_qkv = b.matrix(p + "in_proj_qkv.weight", C, H, g);
  d.in_proj_z = b.matrix(p + "in_proj_z.weight", c.value_dim(), H, g);
  d.in_proj_b = b.matrix(p + "in_proj_b.weight", HV, H, g);
  d.in_proj_a = b.matrix(p + "in_proj_a.weight", HV, H, g);
  d.out_proj = b.matrix(p + "out_proj.weight", H, c.value_dim(), g);
  const std::vector<float> conv = b.vec(p + "conv1d.weight", {C, 1, K}, g);
  d.conv_kc.resize(size_t(K * C));
  for (int64_t ch = 0; ch < C; ++ch)
    for (int64_t i = 0; i < K; ++i) d.conv_kc[i * C + ch] = conv[ch * K + i];
  d.neg_exp_A = b.vec(p + "A_log", {HV}, g);  // F32 (Qwen3.5) or BF16 (Qwen3.6)
  for (float& a : d.neg_exp_A) a = -std::exp(a);
  d.dt_bias = b.vec(p + "dt_bias", {HV}, g);
  d.norm = b.vec(p + "norm.weight", {c.linear_value_dim}, g);
}

void bind_mlp(Binder& b, const Qwen35Config& c, const std::string& p, MlpWeights& m, const std::string& g) {
  m.gate_proj = b.matrix(p + "gate_proj.weight", c.intermediate_size, c.hidden_size, g);
  m.up_proj = b.matrix(p + "up_proj.weight", c.intermediate_size, c.hidden_size, g);
  m.down_proj = b.matrix(p + "down_proj.weight", c.hidden_size, c.intermediate_size, g);
}

void bind_mtp(Binder& b, const Qwen35Config& c, const Checkpoint& ck, MtpWeights& m) {
  const std::string g = "MTP";
  const int64_t H = c.hidden_size;
  m.fc = b.matrix("mtp.fc.weight", H, 2 * H, g);
  m.pre_fc_norm_embedding = b.vec("mtp.pre_fc_norm_embedding.weight", {H}, g);
  m.pre_fc_norm_hidden = b.vec("mtp.pre_fc_norm_hidden.weight", {H}, g);
  m.norm = b.vec("mtp.norm.weight", {H}, g);
  const int64_t n = std::max<int64_t>(1, c.mtp_layers);
  for (int64_t i = 0; i < n; ++i) {
    const std::string p = "mtp.layers." + std::to_string(i) + ".";
    if (i > 0 && !ck.has(p + "input_layernorm.weight")) break;
    LayerWeights l;
    l.kind = LayerKind::FullAttention;
    l.input_norm = b.vec(p + "input_layernorm.weight", {H}, g);
    l.post_attention_norm = b.vec(p + "post_attention_layernorm.weight", {H}, g);
    bind_attention(b, c, p + "self_attn.", l.attn, g);
    bind_mlp(b, c, p + "mlp.", l.mlp, g);
    m.layers.push_back(std::move(l));
  }
}

bool starts_with(const std::string& s, const std::string& p) { return s.compare(0, p.size(), p) == 0; }

}  // namespace

ModelWeights load_weights(const Qwen35Config& c, const Checkpoint& ck) {
  ModelWeights w;
  Binder b(ck, w);
  const std::string& P = c.tensor_prefix;
  const int64_t H = c.hidden_size, V = c.vocab_size;
  w.embed = b.matrix(P + "embed_tokens.weight", V, H, "embed_tokens");
  w.final_norm = b.vec(P + "norm.weight", {H}, "norms");
  w.lm_head = c.tie_word_embeddings ? w.embed : b.matrix("lm_head.weight", V, H, "lm_head");
  w.layers.resize(size_t(c.num_layers));
  for (int64_t i = 0; i < c.num_layers; ++i) {
    LayerWeights& l = w.layers[size_t(i)];
    const std::string p = P + "layers." + std::to_string(i) + ".";
    l.kind = c.layer_kinds[size_t(i)];
    l.input_norm = b.vec(p + "input_layernorm.weight", {H}, "norms");
    l.post_attention_norm = b.vec(p + "post_attention_layernorm.weight", {H}, "norms");
    if (l.kind == LayerKind::FullAttention) bind_attention(b, c, p + "self_attn.", l.attn, "attention");
    else bind_deltanet(b, c, p + "linear_attn.", l.gdn);
    bind_mlp(b, c, p + "mlp.", l.mlp, "MLP");
  }
  bool any_mtp = false;
  for (const auto& [name, t] : ck.tensors()) any_mtp |= starts_with(name, "mtp.");
  if (any_mtp) {
    w.mtp.emplace();
    bind_mtp(b, c, ck, *w.mtp);
  }
  // Anything left over under the language-model prefix means the config and files disagree.
  for (const auto& [name, t] : ck.tensors()) {
    if (b.used().count(name)) continue;
    if ((starts_with(name, P) && !starts_with(name, "model.visual.")) || starts_with(name, "mtp."))
      fail_input("tensor '{}' in {} is not part of the model that config.json describes ({} layers)", name,
                 *t.file, c.num_layers);
    if (name == "lm_head.weight" && c.tie_word_embeddings) continue;  // tied: the embedding is the head
    w.skipped.push_back(name);
  }
  return w;
}

}  // namespace gdn
