#include "model/demo_checkpoint.h"

#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>

#include "core/dtype.h"
#include "core/error.h"
#include "core/json_depth.h"
#include "formats/safetensors.h"

namespace gdn {

namespace fs = std::filesystem;

DemoPreset demo_preset(const std::string& name) {
  // Proportions follow the 27B (GQA 6:1 → here 4:1, GDN value/key heads 3:1, every 4th layer
  // attention) at a size a laptop CPU runs interactively.
  if (name == "demo") return {"demo", 248320, 256, 768, 8, 4, 1, 64, 2, 6, 32, 32};
  if (name == "mid") return {"mid", 248320, 1024, 3072, 16, 8, 2, 128, 4, 12, 64, 64};
  fail_input("unknown demo preset '{}' (expected demo or mid)", name);
}

namespace {

class TensorMaker {
 public:
  explicit TensorMaker(uint64_t seed) : rng_(seed) {}

  // Normal(0, std) values stored as `dtype`.
  TensorToWrite normal(const std::string& name, std::vector<int64_t> shape, float std, DType dtype,
                       float mean = 0.f) {
    int64_t n = 1;
    for (auto d : shape) n *= d;
    std::normal_distribution<float> dist(mean, std);
    TensorToWrite t{name, dtype, shape, {}};
    t.bytes.resize(size_t(n) * dtype_size(dtype));
    for (int64_t i = 0; i < n; ++i) {
      const float v = dist(rng_);
      if (dtype == DType::BF16) {
        const uint16_t h = float_to_bf16(v);
        std::memcpy(t.bytes.data() + 2 * i, &h, 2);
      } else {
        std::memcpy(t.bytes.data() + 4 * i, &v, 4);
      }
    }
    return t;
  }
  TensorToWrite linear(const std::string& name, int64_t out, int64_t in) {
    return normal(name, {out, in}, 1.f / std::sqrt(float(in)), DType::BF16);
  }
  TensorToWrite norm(const std::string& name, int64_t n) { return normal(name, {n}, 0.1f, DType::BF16); }

 private:
  std::mt19937_64 rng_;
};

void add_attention(TensorMaker& m, std::vector<TensorToWrite>& ts, const std::string& p, const DemoPreset& c) {
  ts.push_back(m.linear(p + "q_proj.weight", c.heads * c.head_dim * 2, c.hidden));
  ts.push_back(m.linear(p + "k_proj.weight", c.kv_heads * c.head_dim, c.hidden));
  ts.push_back(m.linear(p + "v_proj.weight", c.kv_heads * c.head_dim, c.hidden));
  ts.push_back(m.linear(p + "o_proj.weight", c.hidden, c.heads * c.head_dim));
  ts.push_back(m.norm(p + "q_norm.weight", c.head_dim));
  ts.push_back(m.norm(p + "k_norm.weight", c.head_dim));
}

void add_mlp(TensorMaker& m, std::vector<TensorToWrite>& ts, const std::string& p, const DemoPreset& c) {
  ts.push_back(m.linear(p + "gate_proj.weight", c.intermediate, c.hidden));
  ts.push_back(m.linear(p + "up_proj.weight", c.intermediate, c.hidden));
  ts.push_back(m.linear(p + "down_proj.weight", c.hidden, c.intermediate));
}

nlohmann::ordered_json config_json(const DemoPreset& c) {
  std::vector<std::string> types;
  for (int64_t i = 0; i < c.layers; ++i) types.push_back((i + 1) % 4 == 0 ? "full_attention" : "linear_attention");
  const int64_t half_rot = c.head_dim / 4 / 2;  // partial_rotary_factor 0.25
  nlohmann::ordered_json text = {
      {"model_type", "qwen3_5_text"}, {"vocab_size", c.vocab}, {"hidden_size", c.hidden},
      {"intermediate_size", c.intermediate}, {"num_hidden_layers", c.layers}, {"layer_types", types},
      {"full_attention_interval", 4}, {"num_attention_heads", c.heads}, {"num_key_value_heads", c.kv_heads},
      {"head_dim", c.head_dim}, {"attn_output_gate", true}, {"attention_bias", false},
      {"linear_num_key_heads", c.linear_key_heads}, {"linear_num_value_heads", c.linear_value_heads},
      {"linear_key_head_dim", c.linear_key_dim}, {"linear_value_head_dim", c.linear_value_dim},
      {"linear_conv_kernel_dim", 4}, {"hidden_act", "silu"}, {"rms_norm_eps", 1e-6},
      {"max_position_embeddings", 262144}, {"mamba_ssm_dtype", "float32"}, {"mtp_num_hidden_layers", 1},
      {"mtp_use_dedicated_embeddings", false}, {"tie_word_embeddings", false}, {"eos_token_id", 248044},
      {"dtype", "bfloat16"},
      {"rope_parameters",
       {{"rope_type", "default"}, {"rope_theta", 10000000.0}, {"partial_rotary_factor", 0.25},
        {"mrope_section", {half_rot - 2 * (half_rot / 3), half_rot / 3, half_rot / 3}}, {"mrope_interleaved", true}}}};
  return {{"architectures", {"Qwen3_5ForConditionalGeneration"}}, {"model_type", "qwen3_5"},
          {"text_config", text}, {"tie_word_embeddings", false}, {"gdnserve_demo", "random weights"}};
}

void write_json(const fs::path& path, const nlohmann::ordered_json& j) {
  std::ofstream f(path);
  if (!f) fail_input("{}: cannot create file", path.string());
  f << j.dump(2) << "\n";
}

}  // namespace

namespace {

nlohmann::ordered_json read_json(const fs::path& p) {
  std::ifstream f(p);
  if (!f) fail_input("{}: cannot read", p.string());
  auto j = nlohmann::ordered_json::parse(f, nullptr, false);
  if (j.is_discarded()) fail_input("{}: not valid JSON", p.string());
  check_json_depth(j, p.string());
  return j;
}

// Copies the tokenizer and chat template in; returns the eos ids {<|im_end|>, <|endoftext|>}.
std::vector<int64_t> add_text_files(const fs::path& out, const DemoText& text) {
  const fs::path tok = fs::path(text.tokenizer_dir) / "tokenizer.json";
  std::error_code ec;
  fs::copy_file(tok, out / "tokenizer.json", fs::copy_options::overwrite_existing, ec);
  if (ec) fail_input("{}: cannot copy the tokenizer: {}", tok.string(), ec.message());
  const fs::path cfg = fs::path(text.tokenizer_dir) / "tokenizer_config.json";
  if (fs::exists(cfg)) {
    auto j = read_json(cfg);
    j.erase("chat_template");
    write_json(out / "tokenizer_config.json", j);
  }
  fs::copy_file(text.chat_template_file, out / "chat_template.jinja", fs::copy_options::overwrite_existing, ec);
  if (ec) fail_input("{}: cannot copy the chat template: {}", text.chat_template_file, ec.message());
  std::vector<int64_t> eos;
  const auto t = read_json(tok);
  const auto added = t.is_object() && t.contains("added_tokens") ? t["added_tokens"] : nlohmann::ordered_json::array();
  if (!added.is_array()) fail_input("{}: added_tokens must be a list", tok.string());
  for (const char* name : {"<|im_end|>", "<|endoftext|>"})
    for (const auto& a : added)
      if (a.is_object() && a.contains("content") && a["content"] == name && a.contains("id") &&
          a["id"].is_number_integer())
        eos.push_back(a["id"].get<int64_t>());
  return eos;
}

}  // namespace

void write_demo_checkpoint(const std::string& dir, const DemoPreset& c, uint64_t seed, const DemoText& text) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) fail_input("{}: cannot create directory: {}", dir, ec.message());
  TensorMaker m(seed);
  std::vector<TensorToWrite> ts;
  const std::string P = "model.language_model.";
  ts.push_back(m.normal(P + "embed_tokens.weight", {c.vocab, c.hidden}, 1.f, DType::BF16));
  ts.push_back(m.norm(P + "norm.weight", c.hidden));
  ts.push_back(m.linear("lm_head.weight", c.vocab, c.hidden));
  const int64_t key_dim = c.linear_key_heads * c.linear_key_dim, value_dim = c.linear_value_heads * c.linear_value_dim;
  for (int64_t i = 0; i < c.layers; ++i) {
    const std::string p = P + "layers." + std::to_string(i) + ".";
    ts.push_back(m.norm(p + "input_layernorm.weight", c.hidden));
    ts.push_back(m.norm(p + "post_attention_layernorm.weight", c.hidden));
    if ((i + 1) % 4 == 0) {
      add_attention(m, ts, p + "self_attn.", c);
    } else {
      const std::string g = p + "linear_attn.";
      ts.push_back(m.linear(g + "in_proj_qkv.weight", 2 * key_dim + value_dim, c.hidden));
      ts.push_back(m.linear(g + "in_proj_z.weight", value_dim, c.hidden));
      ts.push_back(m.linear(g + "in_proj_b.weight", c.linear_value_heads, c.hidden));
      ts.push_back(m.linear(g + "in_proj_a.weight", c.linear_value_heads, c.hidden));
      ts.push_back(m.linear(g + "out_proj.weight", c.hidden, value_dim));
      ts.push_back(m.normal(g + "conv1d.weight", {2 * key_dim + value_dim, 1, 4}, 0.5f, DType::BF16));
      ts.push_back(m.normal(g + "A_log", {c.linear_value_heads}, 0.5f, DType::F32));  // Qwen3.5: F32
      ts.push_back(m.normal(g + "dt_bias", {c.linear_value_heads}, 0.5f, DType::BF16));
      ts.push_back(m.normal(g + "norm.weight", {c.linear_value_dim}, 0.1f, DType::F32, 1.f));
    }
    add_mlp(m, ts, p + "mlp.", c);
  }
  write_safetensors((fs::path(dir) / "model.safetensors").string(), ts);

  std::vector<TensorToWrite> mtp;
  mtp.push_back(m.linear("mtp.fc.weight", c.hidden, 2 * c.hidden));
  for (const char* n : {"mtp.pre_fc_norm_embedding.weight", "mtp.pre_fc_norm_hidden.weight", "mtp.norm.weight",
                        "mtp.layers.0.input_layernorm.weight", "mtp.layers.0.post_attention_layernorm.weight"})
    mtp.push_back(m.norm(n, c.hidden));
  add_attention(m, mtp, "mtp.layers.0.self_attn.", c);
  add_mlp(m, mtp, "mtp.layers.0.mlp.", c);
  write_safetensors((fs::path(dir) / "mtp.safetensors").string(), mtp);

  std::vector<int64_t> eos = {248046, 248044};  // Qwen3.5's <|im_end|>, <|endoftext|>
  if (!text.tokenizer_dir.empty()) eos = add_text_files(dir, text);
  auto cfg = config_json(c);
  cfg["text_config"]["eos_token_id"] = eos.back();
  write_json(fs::path(dir) / "config.json", cfg);
  write_json(fs::path(dir) / "generation_config.json",
             {{"eos_token_id", eos}, {"bos_token_id", eos.back()}, {"pad_token_id", eos.back()},
              {"do_sample", true}, {"temperature", 1.0}, {"top_k", 20}, {"top_p", 0.95}});
}

}  // namespace gdn
