#include "model/config.h"

#include <cstdint>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/json_depth.h"
#include "formats/checkpoint.h"

namespace gdn {

using nlohmann::json;

namespace {

// Typed field access with messages that name the file and field.
struct Fields {
  const json& obj;
  std::string where;  // e.g. "DIR/config.json: text_config"

  const json* find(const char* key) const {
    auto it = obj.find(key);
    return it == obj.end() || it->is_null() ? nullptr : &*it;
  }
  int64_t integer(const char* key) const {
    const json* v = find(key);
    if (!v) fail_input("{}: missing required field '{}'", where, key);
    return as_int(*v, key);
  }
  int64_t integer(const char* key, int64_t dflt) const {
    const json* v = find(key);
    return v ? as_int(*v, key) : dflt;
  }
  int64_t as_int(const json& v, const char* key) const {
    if (!v.is_number_integer()) fail_input("{}: field '{}' must be an integer, got {}", where, key, v.dump());
    return v.get<int64_t>();
  }
  int64_t positive(const char* key) const {
    const int64_t v = integer(key);
    if (v <= 0) fail_input("{}: field '{}' must be positive, got {}", where, key, v);
    return v;
  }
  double number(const char* key, double dflt) const {
    const json* v = find(key);
    if (!v) return dflt;
    if (!v->is_number()) fail_input("{}: field '{}' must be a number, got {}", where, key, v->dump());
    return v->get<double>();
  }
  bool boolean(const char* key, bool dflt) const {
    const json* v = find(key);
    if (!v) return dflt;
    if (!v->is_boolean()) fail_input("{}: field '{}' must be true or false, got {}", where, key, v->dump());
    return v->get<bool>();
  }
  std::string string(const char* key, const std::string& dflt) const {
    const json* v = find(key);
    if (!v) return dflt;
    if (!v->is_string()) fail_input("{}: field '{}' must be a string, got {}", where, key, v->dump());
    return v->get<std::string>();
  }
};

std::vector<int32_t> token_ids(const Fields& f, const char* key) {
  const json* v = f.find(key);
  std::vector<int32_t> ids;
  if (!v) return ids;
  // Ids outside int32 would silently wrap to some other token.
  auto id = [&](const json& e) {
    const int64_t x = f.as_int(e, key);
    if (x < 0 || x > INT32_MAX)
      fail_input("{}: field '{}' has token id {}, expected 0 to {}", f.where, key, x, INT32_MAX);
    return int32_t(x);
  };
  if (v->is_number_integer()) {
    ids.push_back(id(*v));
  } else if (v->is_array()) {
    for (const auto& e : *v) ids.push_back(id(e));
  } else {
    fail_input("{}: field '{}' must be a token id or a list of them, got {}", f.where, key, v->dump());
  }
  return ids;
}

json parse_json(const std::string& text, const std::string& where) {
  auto j = json::parse(text, nullptr, false);
  if (j.is_discarded()) fail_input("{}: not valid JSON", where);
  check_json_depth(j, where);
  if (!j.is_object()) fail_input("{}: expected a JSON object", where);
  return j;
}

void read_layers(const Fields& t, Qwen35Config& c) {
  if (const json* lt = t.find("layer_types")) {
    if (!lt->is_array()) fail_input("{}: field 'layer_types' must be a list", t.where);
    for (const auto& e : *lt) {
      const std::string s = e.is_string() ? e.get<std::string>() : "";
      if (s == "linear_attention") c.layer_kinds.push_back(LayerKind::LinearAttention);
      else if (s == "full_attention") c.layer_kinds.push_back(LayerKind::FullAttention);
      else fail_input("{}: layer_types entry {} is neither \"linear_attention\" nor \"full_attention\"", t.where, e.dump());
    }
    if (int64_t(c.layer_kinds.size()) != c.num_layers)
      fail_input("{}: layer_types has {} entries but num_hidden_layers is {}", t.where, c.layer_kinds.size(), c.num_layers);
  } else {
    const int64_t interval = t.integer("full_attention_interval", 4);  // the reference's default
    if (interval <= 0) fail_input("{}: field 'full_attention_interval' must be positive", t.where);
    for (int64_t i = 0; i < c.num_layers; ++i)
      c.layer_kinds.push_back((i + 1) % interval == 0 ? LayerKind::FullAttention : LayerKind::LinearAttention);
  }
}

void read_rope(const Fields& t, Qwen35Config& c) {
  // rope_parameters (transformers ≥ 5) with the older flat fields as fallback.
  const json* rp = t.find("rope_parameters");
  if (!rp) rp = t.find("rope_scaling");
  if (rp && !rp->is_object()) fail_input("{}: field 'rope_parameters' must be an object", t.where);
  const json empty = json::object();
  const Fields r{rp ? *rp : empty, t.where + ": rope_parameters"};
  std::string type = r.string("rope_type", r.string("type", "default"));
  if (type == "mrope") type = "default";  // older multimodal spelling: plain RoPE for text
  if (type != "default")
    fail_input("{}: rope_type '{}' is not supported (expected \"default\")", r.where, type);
  c.rope_theta = r.number("rope_theta", t.number("rope_theta", 10000.0));
  // The reference defaults partial_rotary_factor to 0.25 for this model family.
  c.partial_rotary_factor = r.number("partial_rotary_factor", t.number("partial_rotary_factor", 0.25));
  if (!(c.partial_rotary_factor > 0.0 && c.partial_rotary_factor <= 1.0))
    fail_input("{}: partial_rotary_factor must be in (0, 1], got {}", t.where, c.partial_rotary_factor);
  if (!(c.rope_theta > 0.0)) fail_input("{}: rope_theta must be positive", t.where);
  c.rotary_dim = int64_t(double(c.head_dim) * c.partial_rotary_factor);
  if (c.rotary_dim % 2 != 0 || c.rotary_dim == 0)
    fail_input("{}: head_dim {} × partial_rotary_factor {} = {} rotary dims; must be even and positive", t.where,
               c.head_dim, c.partial_rotary_factor, c.rotary_dim);
  if (const json* ms = r.find("mrope_section")) {
    if (!ms->is_array()) fail_input("{}: field 'mrope_section' must be a list", r.where);
    for (const auto& e : *ms) c.mrope_section.push_back(r.as_int(e, "mrope_section"));
  }
  c.mrope_interleaved = r.boolean("mrope_interleaved", false);
}

}  // namespace

int64_t Qwen35Config::num_attention_layers() const {
  int64_t n = 0;
  for (auto k : layer_kinds) n += k == LayerKind::FullAttention;
  return n;
}

int64_t Qwen35Config::deltanet_state_bytes(int64_t conv_bytes_per_elem) const {
  const int64_t recurrent = linear_value_heads * linear_key_dim * linear_value_dim * 4;
  const int64_t conv = (conv_kernel - 1) * conv_dim() * conv_bytes_per_elem;
  return num_linear_layers() * (recurrent + conv);
}

int64_t Qwen35Config::kv_bytes_per_token(int64_t bytes_per_elem) const {
  return num_attention_layers() * 2 * num_kv_heads * head_dim * bytes_per_elem;
}

Qwen35Config parse_qwen35_config(const std::string& config_json, const std::string& generation_json,
                                 const std::string& where, const std::string& hf_quant_json) {
  const json root = parse_json(config_json, where);
  const Fields top{root, where};
  Qwen35Config c;
  c.model_type = top.string("model_type", "");
  if (const json* a = top.find("architectures"); a && a->is_array() && !a->empty() && (*a)[0].is_string())
    c.architecture = (*a)[0].get<std::string>();

  const json* text = &root;
  if (c.model_type == "qwen3_5") {
    text = top.find("text_config");
    if (!text || !text->is_object())
      fail_input("{}: model_type 'qwen3_5' needs an object field 'text_config'", where);
    c.tensor_prefix = "model.language_model.";
  } else if (c.model_type == "qwen3_5_text") {
    c.tensor_prefix = "model.";
  } else {
    fail_input("{}: unknown architecture: model_type '{}'{} (gdnserve runs Qwen3.5/3.6 hybrid models: "
               "model_type 'qwen3_5' or 'qwen3_5_text')",
               where, c.model_type, c.architecture.empty() ? "" : " (" + c.architecture + ")");
  }
  if (!c.architecture.empty() && c.architecture != "Qwen3_5ForConditionalGeneration" &&
      c.architecture != "Qwen3_5ForCausalLM" && c.architecture != "Qwen3_5TextModel" &&
      c.architecture != "Qwen3_5Model")
    fail_input("{}: unknown architecture '{}' (expected Qwen3_5ForConditionalGeneration or Qwen3_5ForCausalLM)",
               where, c.architecture);

  const Fields t{*text, text == &root ? where : where + ": text_config"};
  c.vocab_size = t.positive("vocab_size");
  c.hidden_size = t.positive("hidden_size");
  c.intermediate_size = t.positive("intermediate_size");
  c.num_layers = t.positive("num_hidden_layers");
  // Far beyond any real model; bounds what a config alone can make us allocate.
  constexpr int64_t kMaxLayers = 100000;
  if (c.num_layers > kMaxLayers)
    fail_input("{}: num_hidden_layers {} is implausibly large (at most {})", t.where, c.num_layers, kMaxLayers);
  c.num_heads = t.positive("num_attention_heads");
  c.num_kv_heads = t.positive("num_key_value_heads");
  // Absent fields take the reference configuration class's defaults.
  c.head_dim = t.integer("head_dim", 256);
  if (c.head_dim <= 0) fail_input("{}: field 'head_dim' must be positive", t.where);
  c.linear_key_heads = t.integer("linear_num_key_heads", 16);
  c.linear_value_heads = t.integer("linear_num_value_heads", 32);
  c.linear_key_dim = t.integer("linear_key_head_dim", 128);
  c.linear_value_dim = t.integer("linear_value_head_dim", 128);
  if (c.linear_key_heads <= 0 || c.linear_value_heads <= 0 || c.linear_key_dim <= 0 || c.linear_value_dim <= 0)
    fail_input("{}: linear_num_key_heads, linear_num_value_heads, linear_key_head_dim and linear_value_head_dim "
               "must be positive", t.where);
  c.conv_kernel = t.integer("linear_conv_kernel_dim", 4);
  if (c.conv_kernel < 1) fail_input("{}: field 'linear_conv_kernel_dim' must be at least 1", t.where);
  c.rms_norm_eps = t.number("rms_norm_eps", 1e-6);
  c.mtp_layers = t.integer("mtp_num_hidden_layers", 0);

  if (c.num_heads % c.num_kv_heads != 0)
    fail_input("{}: num_attention_heads {} is not a multiple of num_key_value_heads {}", t.where, c.num_heads,
               c.num_kv_heads);
  if (c.linear_value_heads % c.linear_key_heads != 0)
    fail_input("{}: linear_num_value_heads {} is not a multiple of linear_num_key_heads {}", t.where,
               c.linear_value_heads, c.linear_key_heads);
  if (const std::string act = t.string("hidden_act", "silu"); act != "silu")
    fail_input("{}: hidden_act '{}' is not supported (expected \"silu\")", t.where, act);
  if (const std::string g = t.string("output_gate_type", "silu"); g != "silu" && g != "swish")
    fail_input("{}: output_gate_type '{}' is not supported (expected \"swish\" or \"silu\")", t.where, g);
  if (t.boolean("attention_bias", false)) fail_input("{}: attention_bias true is not supported", t.where);
  if (!t.boolean("attn_output_gate", true)) fail_input("{}: attn_output_gate false is not supported", t.where);

  read_layers(t, c);
  read_rope(t, c);

  // The wrapper keeps tie_word_embeddings at the top level; the text config's is the fallback.
  c.tie_word_embeddings = top.find("tie_word_embeddings") ? top.boolean("tie_word_embeddings", false)
                                                          : t.boolean("tie_word_embeddings", false);
  c.eos_token_ids = token_ids(t, "eos_token_id");
  {
    const json* qc = top.find("quantization_config");
    if (!qc) qc = t.find("quantization_config");
    json hf;
    if (!hf_quant_json.empty()) hf = parse_json(hf_quant_json, where + " (hf_quant_config.json)");
    c.quant = QuantConfig::parse(qc, hf_quant_json.empty() ? nullptr : &hf, where);
  }
  if (!generation_json.empty()) {
    // Name generation_config.json beside config.json when `where` is that file's path.
    const std::string cj = "config.json";
    const bool is_path = where.size() >= cj.size() && where.compare(where.size() - cj.size(), cj.size(), cj) == 0;
    const std::string gen_where = is_path ? where.substr(0, where.size() - cj.size()) + "generation_config.json"
                                          : where + " (generation_config.json)";
    const json g = parse_json(generation_json, gen_where);
    auto ids = token_ids(Fields{g, gen_where}, "eos_token_id");
    if (!ids.empty()) c.eos_token_ids = ids;
  }
  return c;
}

Qwen35Config load_qwen35_config(const std::string& dir) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) fail_input("{}: model directory does not exist", dir);
  const std::string cfg = (fs::path(dir) / "config.json").string();
  if (!fs::exists(cfg, ec)) fail_input("{}: missing config.json in the model directory", dir);
  const std::string gen = (fs::path(dir) / "generation_config.json").string();
  const std::string hfq = (fs::path(dir) / "hf_quant_config.json").string();
  return parse_qwen35_config(read_text_file(cfg), fs::exists(gen, ec) ? read_text_file(gen) : "", cfg,
                             fs::exists(hfq, ec) ? read_text_file(hfq) : "");
}

}  // namespace gdn
