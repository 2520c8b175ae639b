#include "model/weights.h"

#include <cmath>
#include <set>

#include "core/error.h"

namespace gdn {

namespace {

void bind_attention(TensorBinder& b, const Qwen35Config& c, const Checkpoint& ck, const std::string& p,
                    AttentionWeights& a, const std::string& g) {
  const int64_t H = c.hidden_size, D = c.head_dim;
  a.q_proj = b.linear(p + "q_proj", c.num_heads * D * 2, H, g);
  a.k_proj = b.linear(p + "k_proj", c.num_kv_heads * D, H, g);
  a.v_proj = b.linear(p + "v_proj", c.num_kv_heads * D, H, g);
  a.o_proj = b.linear(p + "o_proj", H, c.num_heads * D, g);
  a.q_norm = b.vec(p + "q_norm.weight", {D}, g);
  a.k_norm = b.vec(p + "k_norm.weight", {D}, g);
  // FP8 KV-cache scales: compressed-tensors on the attention module, ModelOpt on k_proj/v_proj.
  for (const auto& [k, v] : {std::pair{"k_scale", "v_scale"}, std::pair{"k_proj.k_scale", "v_proj.v_scale"}}) {
    if (ck.has(p + k) || ck.has(p + v)) {
      a.has_kv_scales = true;
      // Only one present: the reference duplicates it.
      a.k_scale = b.scalar(p + (ck.has(p + k) ? k : v), g);
      a.v_scale = b.scalar(p + (ck.has(p + v) ? v : k), g);
    }
  }
}

void bind_deltanet(TensorBinder& b, const Qwen35Config& c, const std::string& p, DeltaNetWeights& d) {
  const std::string g = "DeltaNet";
  const int64_t H = c.hidden_size, HV = c.linear_value_heads, C = c.conv_dim(), K = c.conv_kernel;
  d.in_proj_qkv = b.linear(p + "in_proj_qkv", C, H, g);
  d.in_proj_z = b.linear(p + "in_proj_z", c.value_dim(), H, g);
  d.in_proj_b = b.linear(p + "in_proj_b", HV, H, g);
  d.in_proj_a = b.linear(p + "in_proj_a", HV, H, g);
  d.out_proj = b.linear(p + "out_proj", H, c.value_dim(), g);
  const std::vector<float> conv = b.vec(p + "conv1d.weight", {C, 1, K}, g);
  d.conv_kc.resize(size_t(K * C));
  for (int64_t ch = 0; ch < C; ++ch)
    for (int64_t i = 0; i < K; ++i) d.conv_kc[size_t(i * C + ch)] = conv[size_t(ch * K + i)];
  d.neg_exp_A = b.vec(p + "A_log", {HV}, g);  // F32 (Qwen3.5) or BF16 (Qwen3.6)
  for (float& a : d.neg_exp_A) a = -std::exp(a);
  d.dt_bias = b.vec(p + "dt_bias", {HV}, g);
  d.norm = b.vec(p + "norm.weight", {c.linear_value_dim}, g);
}

void bind_mlp(TensorBinder& b, const Qwen35Config& c, const std::string& p, MlpWeights& m, const std::string& g) {
  m.gate_proj = b.linear(p + "gate_proj", c.intermediate_size, c.hidden_size, g);
  m.up_proj = b.linear(p + "up_proj", c.intermediate_size, c.hidden_size, g);
  m.down_proj = b.linear(p + "down_proj", c.hidden_size, c.intermediate_size, g);
}

void bind_mtp(TensorBinder& b, const Qwen35Config& c, const Checkpoint& ck, MtpWeights& m) {
  const std::string g = "MTP";
  const int64_t H = c.hidden_size;
  m.fc = b.linear("mtp.fc", H, 2 * H, g);
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
    bind_attention(b, c, ck, p + "self_attn.", l.attn, g);
    bind_mlp(b, c, p + "mlp.", l.mlp, g);
    m.layers.push_back(std::move(l));
  }
}

bool starts_with(const std::string& s, const std::string& p) { return s.compare(0, p.size(), p) == 0; }

}  // namespace

ModelWeights load_weights(const Qwen35Config& c, const Checkpoint& ck, ActivationMode mode) {
  ModelWeights w;
  TensorBinder b(c, ck, mode, w.groups);
  const std::string& P = c.tensor_prefix;
  const int64_t H = c.hidden_size, V = c.vocab_size;
  w.embed = b.linear(P + "embed_tokens", V, H, "embed_tokens", /*vocab=*/true);
  w.final_norm = b.vec(P + "norm.weight", {H}, "norms");
  w.lm_head = c.tie_word_embeddings ? w.embed : b.linear("lm_head", V, H, "lm_head", /*vocab=*/true);
  w.layers.resize(size_t(c.num_layers));
  for (int64_t i = 0; i < c.num_layers; ++i) {
    LayerWeights& l = w.layers[size_t(i)];
    const std::string p = P + "layers." + std::to_string(i) + ".";
    l.kind = c.layer_kinds[size_t(i)];
    l.input_norm = b.vec(p + "input_layernorm.weight", {H}, "norms");
    l.post_attention_norm = b.vec(p + "post_attention_layernorm.weight", {H}, "norms");
    if (l.kind == LayerKind::FullAttention) {
      bind_attention(b, c, ck, p + "self_attn.", l.attn, "attention");
      w.has_kv_scales |= l.attn.has_kv_scales;
    } else {
      bind_deltanet(b, c, p + "linear_attn.", l.gdn);
    }
    bind_mlp(b, c, p + "mlp.", l.mlp, "MLP");
  }
  bool any_mtp = false;
  for (const auto& [name, t] : ck.tensors()) any_mtp |= starts_with(name, "mtp.");
  if (any_mtp) {
    w.mtp.emplace();
    bind_mtp(b, c, ck, *w.mtp);
  }
  // Anything left over under the language-model prefix means the config and files disagree.
  TensorGroupStats vision{"vision (skipped)", {}, {}, 0};
  for (const auto& [name, t] : ck.tensors()) {
    if (b.used().count(name)) continue;
    if (starts_with(name, "model.visual.")) {
      vision.bytes_by_dtype[std::string(dtype_name(t.dtype()))] += int64_t(t.nbytes());
      vision.precisions.insert(std::string(dtype_name(t.dtype())));
      vision.params += t.numel();
      w.skipped.push_back(name);
      continue;
    }
    if (starts_with(name, P) || starts_with(name, "mtp."))
      fail_input("tensor '{}' in {} is not part of the model that config.json describes ({} layers{})", name, *t.file,
                 c.num_layers, c.quant.method() == QuantMethod::None ? "" : ", " + c.quant.layout_name());
    if (name == "lm_head.weight" && c.tie_word_embeddings) continue;  // tied: the embedding is the head
    w.skipped.push_back(name);
  }
  if (vision.params > 0) w.groups.push_back(vision);
  return w;
}

}  // namespace gdn
