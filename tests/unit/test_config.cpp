// Qwen3.5/3.6 config parsing: both layouts, layer pattern, RoPE spellings, tied embeddings,
// eos ids, and one InputError (naming the source and field) per kind of bad config.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/error.h"
#include "model/config.h"
#include "test_util.h"

namespace gdn::test {
namespace {

using nlohmann::json;

// A small valid text-only config (flat fields).
json text_cfg() {
  return {{"model_type", "qwen3_5_text"},
          {"architectures", {"Qwen3_5ForCausalLM"}},
          {"vocab_size", 320},
          {"hidden_size", 48},
          {"intermediate_size", 96},
          {"num_hidden_layers", 4},
          {"num_attention_heads", 4},
          {"num_key_value_heads", 2},
          {"head_dim", 16},
          {"linear_num_key_heads", 1},
          {"linear_num_value_heads", 2},
          {"linear_key_head_dim", 8},
          {"linear_value_head_dim", 8}};
}

// The published wrapper layout around a text config.
json wrap(json text) {
  text["model_type"] = "qwen3_5_text";
  text.erase("architectures");
  return {{"model_type", "qwen3_5"}, {"architectures", {"Qwen3_5ForConditionalGeneration"}}, {"text_config", text}};
}

Qwen35Config parse(const json& cfg, const std::string& gen = "") {
  return parse_qwen35_config(cfg.dump(), gen, "cfg.json");
}

// Parsing must throw InputError naming the source and containing every word.
void expect_error(const json& cfg, const std::vector<std::string>& words, const std::string& gen = "") {
  SCOPED_TRACE(cfg.dump());
  try {
    parse(cfg, gen);
    ADD_FAILURE() << "no error";
  } catch (const InputError& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("cfg.json"), std::string::npos) << msg;
    for (const auto& w : words) EXPECT_NE(msg.find(w), std::string::npos) << "missing '" << w << "' in: " << msg;
  }
}

std::string pattern(const Qwen35Config& c) {
  std::string s;
  for (auto k : c.layer_kinds) s += k == LayerKind::FullAttention ? 'A' : 'L';
  return s;
}

TEST(ConfigLayout, TextOnly) {
  const Qwen35Config c = parse(text_cfg());
  EXPECT_EQ(c.model_type, "qwen3_5_text");
  EXPECT_EQ(c.architecture, "Qwen3_5ForCausalLM");
  EXPECT_EQ(c.tensor_prefix, "model.");
  EXPECT_EQ(c.vocab_size, 320);
  EXPECT_EQ(c.hidden_size, 48);
  EXPECT_EQ(c.intermediate_size, 96);
  EXPECT_EQ(c.num_layers, 4);
  EXPECT_EQ(c.num_heads, 4);
  EXPECT_EQ(c.num_kv_heads, 2);
  EXPECT_EQ(c.head_dim, 16);
  EXPECT_EQ(c.linear_key_heads, 1);
  EXPECT_EQ(c.linear_value_heads, 2);
  EXPECT_EQ(c.conv_dim(), 2 * 8 + 2 * 8);
  EXPECT_EQ(c.conv_kernel, 4);
  EXPECT_DOUBLE_EQ(c.rms_norm_eps, 1e-6);
}

TEST(ConfigLayout, Wrapper) {
  json w = wrap(text_cfg());
  w["text_config"]["hidden_size"] = 64;
  w["hidden_size"] = 999;  // top-level LM fields are not read in the wrapper layout
  const Qwen35Config c = parse(w);
  EXPECT_EQ(c.model_type, "qwen3_5");
  EXPECT_EQ(c.architecture, "Qwen3_5ForConditionalGeneration");
  EXPECT_EQ(c.tensor_prefix, "model.language_model.");
  EXPECT_EQ(c.hidden_size, 64);
  EXPECT_EQ(c.vocab_size, 320);

  expect_error(json{{"model_type", "qwen3_5"}}, {"needs an object field 'text_config'"});
  expect_error(json{{"model_type", "qwen3_5"}, {"text_config", 3}}, {"'text_config'"});
  w = wrap(text_cfg());
  w["text_config"].erase("vocab_size");
  expect_error(w, {"cfg.json: text_config", "missing required field 'vocab_size'"});
}

TEST(ConfigLayout, RealFixturesParse) {
  const Qwen35Config a = load_qwen35_config(fixture("qwen35-wrapper-bf16"));
  EXPECT_EQ(a.tensor_prefix, "model.language_model.");
  EXPECT_EQ(pattern(a), "LLLALLLA");
  const Qwen35Config b = load_qwen35_config(fixture("qwen35-text-f32-tied"));
  EXPECT_EQ(b.tensor_prefix, "model.");
  EXPECT_TRUE(b.tie_word_embeddings);
  EXPECT_EQ(b.rotary_dim, 8);  // head_dim 16 × 0.5
}

TEST(ConfigLayers, ExplicitLayerTypes) {
  json j = text_cfg();
  j["layer_types"] = {"full_attention", "linear_attention", "linear_attention", "full_attention"};
  j["full_attention_interval"] = 2;  // layer_types wins
  const Qwen35Config c = parse(j);
  EXPECT_EQ(pattern(c), "ALLA");
  EXPECT_EQ(c.num_attention_layers(), 2);
  EXPECT_EQ(c.num_linear_layers(), 2);
}

TEST(ConfigLayers, Interval) {
  json j = text_cfg();
  j["num_hidden_layers"] = 6;
  j["full_attention_interval"] = 2;
  EXPECT_EQ(pattern(parse(j)), "LALALA");
  j["full_attention_interval"] = 1;
  EXPECT_EQ(pattern(parse(j)), "AAAAAA");
  j.erase("full_attention_interval");
  j["num_hidden_layers"] = 8;
  EXPECT_EQ(pattern(parse(j)), "LLLALLLA");  // default interval 4
  j["full_attention_interval"] = 0;
  expect_error(j, {"'full_attention_interval' must be positive"});
}

TEST(ConfigRope, RopeParametersWinOverFlatFields) {
  json j = text_cfg();
  j["rope_theta"] = 5000.0;
  j["partial_rotary_factor"] = 1.0;
  j["rope_parameters"] = {{"rope_type", "default"}, {"rope_theta", 1e6}, {"partial_rotary_factor", 0.5},
                          {"mrope_section", {2, 1, 1}}, {"mrope_interleaved", true}};
  const Qwen35Config c = parse(j);
  EXPECT_DOUBLE_EQ(c.rope_theta, 1e6);
  EXPECT_DOUBLE_EQ(c.partial_rotary_factor, 0.5);
  EXPECT_EQ(c.rotary_dim, 8);
  EXPECT_EQ(c.mrope_section, (std::vector<int64_t>{2, 1, 1}));
  EXPECT_TRUE(c.mrope_interleaved);
}

TEST(ConfigRope, FlatFallbackAndDefaults) {
  json j = text_cfg();
  j["rope_theta"] = 5000.0;
  j["partial_rotary_factor"] = 0.5;
  j["rope_parameters"] = {{"rope_type", "default"}};  // present but without the values
  Qwen35Config c = parse(j);
  EXPECT_DOUBLE_EQ(c.rope_theta, 5000.0);
  EXPECT_DOUBLE_EQ(c.partial_rotary_factor, 0.5);
  EXPECT_EQ(c.rotary_dim, 8);
  j.erase("rope_parameters");
  c = parse(j);
  EXPECT_DOUBLE_EQ(c.rope_theta, 5000.0);
  EXPECT_EQ(c.rotary_dim, 8);
  // Neither: theta 10000 and the family's partial_rotary_factor 0.25.
  c = parse(text_cfg());
  EXPECT_DOUBLE_EQ(c.rope_theta, 10000.0);
  EXPECT_DOUBLE_EQ(c.partial_rotary_factor, 0.25);
  EXPECT_EQ(c.rotary_dim, 4);
  // Older spellings: rope_scaling with "type", and "mrope" meaning plain RoPE for text.
  j = text_cfg();
  j["rope_scaling"] = {{"type", "mrope"}, {"rope_theta", 2e5}};
  c = parse(j);
  EXPECT_DOUBLE_EQ(c.rope_theta, 2e5);
}

TEST(ConfigRope, RotaryDim) {
  json j = text_cfg();
  j["head_dim"] = 256;
  j["partial_rotary_factor"] = 0.25;
  EXPECT_EQ(parse(j).rotary_dim, 64);
  j["partial_rotary_factor"] = 1.0;
  EXPECT_EQ(parse(j).rotary_dim, 256);
}

TEST(ConfigTie, TopLevelOverridesTextConfig) {
  json w = wrap(text_cfg());
  w["text_config"]["tie_word_embeddings"] = true;
  EXPECT_TRUE(parse(w).tie_word_embeddings);  // only the text config says so
  w["tie_word_embeddings"] = false;
  EXPECT_FALSE(parse(w).tie_word_embeddings);
  w["text_config"]["tie_word_embeddings"] = false;
  w["tie_word_embeddings"] = true;
  EXPECT_TRUE(parse(w).tie_word_embeddings);
  EXPECT_FALSE(parse(text_cfg()).tie_word_embeddings);  // default
  w["tie_word_embeddings"] = "yes";
  expect_error(w, {"'tie_word_embeddings' must be true or false"});
}

TEST(ConfigEos, FromConfigAndGenerationConfig) {
  json j = text_cfg();
  EXPECT_TRUE(parse(j).eos_token_ids.empty());
  j["eos_token_id"] = 5;
  EXPECT_EQ(parse(j).eos_token_ids, (std::vector<int32_t>{5}));
  j["eos_token_id"] = {5, 6};
  EXPECT_EQ(parse(j).eos_token_ids, (std::vector<int32_t>{5, 6}));
  // generation_config.json overrides, as an int or a list; without eos it leaves config's.
  EXPECT_EQ(parse(j, R"({"eos_token_id": 7})").eos_token_ids, (std::vector<int32_t>{7}));
  EXPECT_EQ(parse(j, R"({"eos_token_id": [9, 8]})").eos_token_ids, (std::vector<int32_t>{9, 8}));
  EXPECT_EQ(parse(j, R"({"bos_token_id": 1})").eos_token_ids, (std::vector<int32_t>{5, 6}));
  EXPECT_EQ(parse(j, R"({"eos_token_id": null})").eos_token_ids, (std::vector<int32_t>{5, 6}));
  json w = wrap(text_cfg());
  w["text_config"]["eos_token_id"] = 3;
  EXPECT_EQ(parse(w).eos_token_ids, (std::vector<int32_t>{3}));
  EXPECT_EQ(parse(w, R"({"eos_token_id": [4]})").eos_token_ids, (std::vector<int32_t>{4}));
}

TEST(ConfigEos, Errors) {
  json j = text_cfg();
  j["eos_token_id"] = "end";
  expect_error(j, {"'eos_token_id' must be a token id or a list"});
  j["eos_token_id"] = {1, "x"};
  expect_error(j, {"'eos_token_id' must be an integer"});
  j["eos_token_id"] = 4294967296;  // must not wrap to token 0
  expect_error(j, {"'eos_token_id'", "4294967296"});
  j["eos_token_id"] = -1;
  expect_error(j, {"'eos_token_id'", "-1"});
  try {
    parse_qwen35_config(text_cfg().dump(), "{", "/m/config.json");
    ADD_FAILURE() << "no error";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("/m/generation_config.json: not valid JSON"), std::string::npos) << e.what();
  }
  try {
    parse_qwen35_config(text_cfg().dump(), R"({"eos_token_id": "x"})", "/m/config.json");
    ADD_FAILURE() << "no error";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("/m/generation_config.json: field 'eos_token_id'"), std::string::npos)
        << e.what();
  }
}

// ---------------------------------------------------------------------------------------------
// Errors: each names the source and the offending field or value.

TEST(ConfigErrors, NotJsonOrNotObject) {
  EXPECT_THROW(parse_qwen35_config("{", "", "cfg.json"), InputError);
  EXPECT_THROW(parse_qwen35_config("[]", "", "cfg.json"), InputError);
  EXPECT_THROW(parse_qwen35_config("", "", "cfg.json"), InputError);
}

TEST(ConfigErrors, UnknownModelType) {
  json j = text_cfg();
  j["model_type"] = "llama";
  expect_error(j, {"unknown architecture", "model_type 'llama'", "qwen3_5"});
  j.erase("model_type");
  expect_error(j, {"unknown architecture", "model_type ''"});
  j = text_cfg();
  j["architectures"] = {"LlamaForCausalLM"};
  expect_error(j, {"unknown architecture 'LlamaForCausalLM'"});
}

TEST(ConfigErrors, LayerTypes) {
  json j = text_cfg();
  j["layer_types"] = {"linear_attention", "full_attention"};
  expect_error(j, {"layer_types has 2 entries but num_hidden_layers is 4"});
  j["layer_types"] = {"linear_attention", "sliding_attention", "linear_attention", "full_attention"};
  expect_error(j, {"layer_types entry \"sliding_attention\"", "linear_attention", "full_attention"});
  j["layer_types"] = {"linear_attention", 1, "linear_attention", "full_attention"};
  expect_error(j, {"layer_types entry 1"});
  j["layer_types"] = "full_attention";
  expect_error(j, {"'layer_types' must be a list"});
}

TEST(ConfigErrors, HeadsNotDivisible) {
  json j = text_cfg();
  j["num_attention_heads"] = 6;
  j["num_key_value_heads"] = 4;
  expect_error(j, {"num_attention_heads 6 is not a multiple of num_key_value_heads 4"});
  j = text_cfg();
  j["linear_num_key_heads"] = 2;
  j["linear_num_value_heads"] = 3;
  expect_error(j, {"linear_num_value_heads 3 is not a multiple of linear_num_key_heads 2"});
}

TEST(ConfigErrors, OddOrZeroRotaryDim) {
  json j = text_cfg();
  j["head_dim"] = 18;
  j["partial_rotary_factor"] = 0.5;  // 9 rotary dims
  expect_error(j, {"head_dim 18", "= 9 rotary dims", "must be even"});
  j["head_dim"] = 2;
  j["partial_rotary_factor"] = 0.25;  // 0 rotary dims
  expect_error(j, {"= 0 rotary dims"});
  j["partial_rotary_factor"] = 1.5;
  expect_error(j, {"partial_rotary_factor must be in (0, 1]"});
}

TEST(ConfigErrors, UnsupportedRope) {
  json j = text_cfg();
  j["rope_parameters"] = {{"rope_type", "yarn"}, {"factor", 4.0}};
  expect_error(j, {"rope_parameters", "rope_type 'yarn' is not supported", "expected \"default\""});
  j["rope_parameters"] = "default";
  expect_error(j, {"'rope_parameters' must be an object"});
  j["rope_parameters"] = {{"rope_theta", -1.0}};
  expect_error(j, {"rope_theta must be positive"});
}

TEST(ConfigErrors, WrongFieldTypes) {
  json j = text_cfg();
  j["hidden_size"] = "big";
  expect_error(j, {"field 'hidden_size' must be an integer", "\"big\""});
  j["hidden_size"] = 48.5;
  expect_error(j, {"field 'hidden_size' must be an integer", "48.5"});
  j = text_cfg();
  j["hidden_size"] = 0;
  expect_error(j, {"field 'hidden_size' must be positive"});
  j = text_cfg();
  j["rms_norm_eps"] = "small";
  expect_error(j, {"field 'rms_norm_eps' must be a number"});
  j = text_cfg();
  j["hidden_act"] = "gelu";
  expect_error(j, {"hidden_act 'gelu' is not supported"});
  j = text_cfg();
  j["head_dim"] = -16;
  expect_error(j, {"'head_dim' must be positive"});
  j = text_cfg();
  j["linear_key_head_dim"] = 0;
  expect_error(j, {"linear_key_head_dim", "must be positive"});
  j = text_cfg();
  j["attention_bias"] = true;
  expect_error(j, {"attention_bias true is not supported"});
}

TEST(ConfigErrors, MissingRequiredField) {
  for (const char* f : {"vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
                        "num_key_value_heads"}) {
    json j = text_cfg();
    j.erase(f);
    expect_error(j, {std::string("missing required field '") + f + "'"});
    j[f] = nullptr;  // null counts as missing
    expect_error(j, {std::string("missing required field '") + f + "'"});
  }
}

// A config cannot make us allocate without bound before the checkpoint is even read.
TEST(ConfigErrors, ImplausibleLayerCount) {
  json j = text_cfg();
  j["num_hidden_layers"] = 10000000;
  expect_error(j, {"num_hidden_layers 10000000", "implausibly large"});
}

}  // namespace
}  // namespace gdn::test
