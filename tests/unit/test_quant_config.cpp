// Scheme resolution per module (formats.md §9): the three producers' matching rules and the
// schemes they imply.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "formats/quant_config.h"

namespace gdn {
namespace {

using nlohmann::json;

TEST(QuantConfigMatching, CompressedTensorsExactAndAnchoredRegex) {
  EXPECT_TRUE(ct_matches("lm_head", "lm_head"));
  EXPECT_FALSE(ct_matches("lm_head", "model.lm_head"));  // plain strings are exact
  EXPECT_TRUE(ct_matches("re:.*in_proj_a", "model.layers.0.linear_attn.in_proj_a"));
  EXPECT_TRUE(ct_matches("re:.*in_proj_a", "model.layers.0.linear_attn.in_proj_a_foo"));  // start-anchored only
  EXPECT_FALSE(ct_matches("re:in_proj_a", "model.layers.0.linear_attn.in_proj_a"));       // not a search
  EXPECT_THROW(ct_matches("re:([", "x"), InputError);
}

// The "re:" patterns come from an untrusted config.json: a pathological one is an InputError that
// names the field, never a stack overflow or a hang (std::regex, used before, did both; found by
// fuzz/fuzz_config.cpp).
TEST(QuantConfigMatching, HostileRegexIsAnInputErrorNamingTheField) {
  const std::string deep = "re:" + std::string(20000, '(') + "a" + std::string(20000, ')');
  EXPECT_THROW(ct_matches(deep, "a"), InputError);
  const std::string slow = "re:(.*.*)*\\d\\d\\d\\d$";  // exponential backtracking, no literal to rule it out
  EXPECT_THROW(ct_matches(slow, "model.language_model.layers.10.linear_attn.in_proj_qkv"), InputError);
  EXPECT_TRUE(ct_matches("re:" + std::string(40, '(') + "a" + std::string(40, ')'), "ab"));  // modest nesting is fine

  json qc = json::parse(R"({"quant_method": "compressed-tensors", "format": "float-quantized",
    "ignore": ["lm_head", "re:.*visual.*"],
    "config_groups": {"group_0": {"targets": ["Linear"],
      "weights": {"num_bits": 8, "type": "float", "strategy": "channel", "dynamic": false},
      "input_activations": {"num_bits": 8, "type": "float", "strategy": "token", "dynamic": true}}}})");
  qc["ignore"][1] = deep;
  try {
    QuantConfig::parse(&qc, nullptr, "config.json");
    ADD_FAILURE() << "a 20,000-deep pattern was accepted";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("config.json: ignore[1]"), std::string::npos) << e.what();
  }
  qc["ignore"][1] = slow;
  const auto c = QuantConfig::parse(&qc, nullptr, "config.json");  // compiles; matching is bounded
  try {
    c.scheme_for("model.language_model.layers.10.linear_attn.in_proj_qkv");
    ADD_FAILURE() << "the catastrophic pattern matched without hitting its limit";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("within its limits"), std::string::npos) << e.what();
  }
}

TEST(QuantConfigMatching, ModelOptGlobs) {
  EXPECT_TRUE(glob_matches("model.visual*", "model.visual.blocks.0.attn.qkv"));
  EXPECT_TRUE(glob_matches("*lm_head*", "lm_head"));
  EXPECT_TRUE(glob_matches("model.layers.*.linear_attn.conv1d", "model.layers.12.linear_attn.conv1d"));
  EXPECT_TRUE(glob_matches("mtp*", "mtp.layers.0.mlp.up_proj"));
  EXPECT_TRUE(glob_matches("layer?.x", "layer1.x"));
  EXPECT_TRUE(glob_matches("layers.[0-2].x", "layers.1.x"));
  EXPECT_FALSE(glob_matches("layers.[!0-2].x", "layers.1.x"));
  EXPECT_FALSE(glob_matches("mtp*", "model.mtp"));
  EXPECT_FALSE(glob_matches("model.layers.*.conv1d", "model.layers.1.in_proj_a"));
}

TEST(QuantConfigMatching, Fp8SkipListPrefixAndSuffix) {
  EXPECT_TRUE(fp8_skip_matches("lm_head", "lm_head"));
  EXPECT_TRUE(fp8_skip_matches("in_proj_a", "model.layers.3.linear_attn.in_proj_a"));  // suffix
  EXPECT_TRUE(fp8_skip_matches("model.visual", "model.visual.blocks.0.mlp.fc1"));      // parent module
  EXPECT_FALSE(fp8_skip_matches("model.layers.1", "model.layers.10.mlp.up_proj"));     // dot boundary
  EXPECT_FALSE(fp8_skip_matches("proj_a", "model.layers.3.linear_attn.in_proj_a"));    // not at a dot
}

TEST(QuantConfigSchemes, CompressedTensorsFp8Dynamic) {
  const json qc = json::parse(R"({"quant_method": "compressed-tensors", "format": "float-quantized",
    "ignore": ["lm_head", "re:.*in_proj_[ab]$"],
    "config_groups": {"g": {"targets": ["Linear"],
      "weights": {"num_bits": 8, "type": "float", "strategy": "channel"},
      "input_activations": {"num_bits": 8, "type": "float", "strategy": "token", "dynamic": true}}}})");
  const auto c = QuantConfig::parse(&qc, nullptr, "config.json");
  EXPECT_EQ(c.method(), QuantMethod::CompressedTensors);
  EXPECT_EQ(c.scheme_for("model.layers.0.mlp.up_proj"), (LinearScheme{WeightFormat::Fp8PerChannel, ActQuant::Fp8PerToken}));
  EXPECT_EQ(c.scheme_for("model.layers.0.linear_attn.in_proj_b"), LinearScheme{});
  EXPECT_EQ(c.scheme_for("lm_head", true), LinearScheme{});
  EXPECT_EQ(c.scheme_for("model.embed_tokens", true), LinearScheme{});  // an Embedding, never targeted
}

TEST(QuantConfigSchemes, CompressedTensorsNameTargetBeatsClassTarget) {
  const json qc = json::parse(R"({"quant_method": "compressed-tensors", "format": "nvfp4-pack-quantized",
    "config_groups": {
      "a": {"targets": ["Linear"], "weights": {"num_bits": 4, "type": "float", "strategy": "tensor_group", "group_size": 16}},
      "b": {"targets": ["re:.*down_proj"], "weights": {"num_bits": 4, "type": "float", "strategy": "tensor_group", "group_size": 16},
            "input_activations": {"num_bits": 4, "type": "float", "strategy": "tensor_group", "group_size": 16, "dynamic": "local"}}}})");
  const auto c = QuantConfig::parse(&qc, nullptr, "config.json");
  EXPECT_EQ(c.scheme_for("m.mlp.down_proj"), (LinearScheme{WeightFormat::Nvfp4CT, ActQuant::Nvfp4}));
  EXPECT_EQ(c.scheme_for("m.mlp.up_proj"), (LinearScheme{WeightFormat::Nvfp4CT, ActQuant::None}));  // W4A16
}

TEST(QuantConfigSchemes, QwenFp8BlockWithOptIns) {
  json qc = json::parse(R"({"quant_method": "fp8", "fmt": "e4m3", "activation_scheme": "dynamic",
    "weight_block_size": [128, 128], "modules_to_not_convert": ["lm_head", "model.language_model.embed_tokens", "in_proj_a"]})");
  auto c = QuantConfig::parse(&qc, nullptr, "config.json");
  const LinearScheme block{WeightFormat::Fp8Block128, ActQuant::Fp8PerGroup128};
  EXPECT_EQ(c.scheme_for("model.language_model.layers.0.self_attn.q_proj"), block);
  EXPECT_EQ(c.scheme_for("model.language_model.layers.0.linear_attn.in_proj_a"), LinearScheme{});
  EXPECT_EQ(c.scheme_for("lm_head", true), LinearScheme{});
  qc["lm_head"] = true;
  qc["embed_tokens"] = true;
  c = QuantConfig::parse(&qc, nullptr, "config.json");
  EXPECT_EQ(c.scheme_for("lm_head", true), block);
  EXPECT_EQ(c.scheme_for("model.language_model.embed_tokens", true), block);
}

TEST(QuantConfigSchemes, ModelOptFromHfQuantConfigAlone) {
  const json hf = json::parse(R"({"producer": {"name": "modelopt"}, "quantization": {"quant_algo": "NVFP4",
    "group_size": 16, "kv_cache_quant_algo": "FP8", "exclude_modules": ["lm_head", "model.visual*", "mtp*"]}})");
  const auto c = QuantConfig::parse(nullptr, &hf, "config.json");
  EXPECT_EQ(c.method(), QuantMethod::ModelOpt);
  EXPECT_TRUE(c.kv_cache_fp8());
  EXPECT_EQ(c.scheme_for("model.language_model.layers.0.linear_attn.in_proj_a"),
            (LinearScheme{WeightFormat::Nvfp4ModelOpt, ActQuant::Nvfp4}));
  EXPECT_EQ(c.scheme_for("mtp.fc"), LinearScheme{});
  EXPECT_EQ(c.scheme_for("lm_head", true), LinearScheme{});
}

TEST(QuantConfigSchemes, RejectsWhatItCannotCompute) {
  auto rejects = [](const char* text, const char* words) {
    const json qc = json::parse(text);
    try {
      QuantConfig::parse(&qc, nullptr, "config.json");
      ADD_FAILURE() << "accepted " << text;
    } catch (const InputError& e) {
      EXPECT_NE(std::string(e.what()).find(words), std::string::npos) << e.what();
    }
  };
  rejects(R"({"quant_method": "awq"})", "unknown quant_method 'awq'");
  rejects(R"({"quant_method": "compressed-tensors", "format": "pack-quantized", "config_groups": {"g": {"targets": ["Linear"], "weights": {"num_bits": 4, "type": "int"}}}})",
          "format 'pack-quantized' is not supported");
  rejects(R"({"quant_method": "fp8", "activation_scheme": "dynamic"})", "weight_block_size [128, 128]");
  rejects(R"({"quant_method": "fp8", "activation_scheme": "static", "weight_block_size": [128, 128]})", "activation_scheme 'static'");
  rejects(R"({"quant_method": "modelopt", "quant_algo": "FP8"})", "quant_algo 'FP8'");
}

}  // namespace
}  // namespace gdn
