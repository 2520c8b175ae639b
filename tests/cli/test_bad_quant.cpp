// Malformed quantized checkpoints (issue 3): each gives one message naming the module, what the
// config declared and what the file holds, and exit code 2.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>

#include "formats/checkpoint.h"
#include "test_util.h"

namespace gdn::test {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

// A scratch copy of a quantized fixture, with helpers to damage it.
class BrokenQuant {
 public:
  explicit BrokenQuant(const std::string& layout) {
    dir_ = fs::temp_directory_path() / ("gdn_badq_" + std::to_string(::getpid()) + "_" + layout + "_" + std::to_string(n_++));
    fs::remove_all(dir_);
    fs::copy(fixture("quant/" + layout), dir_);
  }
  ~BrokenQuant() { fs::remove_all(dir_); }
  std::string dir() const { return dir_.string(); }

  // Rewrites model.safetensors, letting `edit` drop or change tensors.
  void edit_tensors(const std::function<void(std::vector<TensorToWrite>&)>& edit) {
    const std::string path = (dir_ / "model.safetensors").string();
    std::vector<TensorToWrite> ts;
    {
      SafetensorsFile f(path);
      for (const auto& t : f.header().tensors)
        ts.push_back({t.name, t.dtype, t.shape, std::vector<uint8_t>(f.data(t), f.data(t) + t.nbytes)});
    }
    edit(ts);
    write_safetensors(path, ts);
  }
  void edit_config(const std::function<void(json&)>& edit) {
    const std::string path = (dir_ / "config.json").string();
    json j = json::parse(std::ifstream(path));
    edit(j["quantization_config"]);
    std::ofstream(path) << j.dump(2);
  }
  CommandResult run() const { return run_cli("logits --model " + dir() + " --tokens 1,2,3 --out /dev/null"); }

 private:
  fs::path dir_;
  static inline int n_ = 0;
};

void expect_error(const CommandResult& r, std::initializer_list<const char*> words) {
  EXPECT_EQ(r.exit_code, 2) << r.out;
  for (const char* w : words) EXPECT_NE(r.out.find(w), std::string::npos) << "missing '" << w << "' in: " << r.out;
  EXPECT_EQ(r.out.find("internal error"), std::string::npos) << r.out;
}

const std::string kUp = "model.language_model.layers.0.mlp.up_proj";

TEST(BadQuant, MissingScaleTensor) {
  BrokenQuant b("qwen-fp8-block");
  b.edit_tensors([](auto& ts) { std::erase_if(ts, [](auto& t) { return t.name == kUp + ".weight_scale_inv"; }); });
  expect_error(b.run(), {kUp.c_str(), "weight_scale_inv", "missing", "FP8 block-128"});
}

TEST(BadQuant, ScaleWithTheWrongShape) {
  BrokenQuant b("ct-fp8-dynamic");
  b.edit_tensors([](auto& ts) {
    for (auto& t : ts)
      if (t.name == kUp + ".weight_scale") {
        t.shape = {t.shape[0] / 2, 1};
        t.bytes.resize(t.bytes.size() / 2);
      }
  });
  expect_error(b.run(), {kUp.c_str(), "weight_scale", "shape [128, 1]", "[256, 1]"});
}

TEST(BadQuant, ScaleWithTheWrongDtype) {
  BrokenQuant b("modelopt-nvfp4");
  b.edit_tensors([](auto& ts) {
    for (auto& t : ts)
      if (t.name == kUp + ".weight_scale") t.dtype = DType::U8;  // should be F8_E4M3
  });
  expect_error(b.run(), {kUp.c_str(), "weight_scale", "dtype U8", "F8_E4M3"});
}

TEST(BadQuant, PackedWeightWithTheWrongWidth) {
  BrokenQuant b("ct-nvfp4");
  b.edit_tensors([](auto& ts) {
    for (auto& t : ts)
      if (t.name == kUp + ".weight_packed") {  // [256, 64] → [256, 128]: one value per byte
        t.shape[1] *= 2;
        t.bytes.resize(t.bytes.size() * 2);
      }
  });
  expect_error(b.run(), {kUp.c_str(), "weight_packed", "[256, 128]", "[256, 64]", "two E2M1 values per byte"});
}

TEST(BadQuant, UnquantizedWeightWhereTheConfigDeclaresFp8) {
  BrokenQuant b("ct-fp8-dynamic");
  b.edit_tensors([](auto& ts) {
    std::erase_if(ts, [](auto& t) { return t.name == kUp + ".weight_scale"; });
    for (auto& t : ts)
      if (t.name == kUp + ".weight") {
        t.dtype = DType::BF16;
        t.bytes.resize(t.bytes.size() * 2);
      }
  });
  expect_error(b.run(), {kUp.c_str(), "FP8 per-channel", "BF16"});
}

TEST(BadQuant, QuantizedWeightWhereTheConfigSaysIgnore) {
  BrokenQuant b("ct-fp8-dynamic");
  b.edit_config([](json& q) { q["ignore"].push_back(kUp); });
  expect_error(b.run(), {kUp.c_str(), "not quantized", "F8_E4M3"});
}

TEST(BadQuant, UnknownQuantMethod) {
  BrokenQuant b("ct-fp8-dynamic");
  b.edit_config([](json& q) { q["quant_method"] = "bitsandbytes"; });
  expect_error(b.run(), {"config.json", "unknown quant_method 'bitsandbytes'"});
}

TEST(BadQuant, UnknownFormat) {
  BrokenQuant b("ct-nvfp4");
  b.edit_config([](json& q) {
    q["format"] = "marlin-24";
    for (auto& [k, g] : q["config_groups"].items()) g["format"] = "marlin-24";
  });
  expect_error(b.run(), {"config.json", "format 'marlin-24' is not supported"});
}

TEST(BadQuant, NonPositiveGlobalScale) {
  BrokenQuant b("modelopt-nvfp4");
  b.edit_tensors([](auto& ts) {
    for (auto& t : ts)
      if (t.name == kUp + ".weight_scale_2") std::fill(t.bytes.begin(), t.bytes.end(), 0);
  });
  expect_error(b.run(), {kUp.c_str(), "weight_scale_2", "positive finite"});
}

TEST(QuantCli, InspectNamesLayoutPrecisionAndKvScales) {
  const auto r = run_cli("inspect --json --gpu-memory 80 --model " + fixture("quant/modelopt-nvfp4"));
  ASSERT_EQ(r.exit_code, 0) << r.out;
  const json j = json::parse(r.stdout_text);
  EXPECT_NE(j["quantization"].get<std::string>().find("ModelOpt NVFP4"), std::string::npos);
  EXPECT_EQ(j["kv_cache_scales"], true);
  EXPECT_EQ(j["mtp_head"], true);
  bool mlp_nvfp4 = false, mtp_bf16 = false, vision = false;
  for (const auto& g : j["tensor_groups"]) {
    const auto prec = g["precision"].dump();
    mlp_nvfp4 |= g["group"] == "MLP" && prec.find("NVFP4 W4A4") != std::string::npos;
    mtp_bf16 |= g["group"] == "MTP" && prec == "[\"BF16\"]";
    vision |= g["group"] == "vision (skipped)";
  }
  EXPECT_TRUE(mlp_nvfp4 && mtp_bf16 && vision) << j["tensor_groups"].dump();
  // (2 attention layers + the MTP head's layer) × K and V × 1 kv head × 128 dims × 1 byte (FP8),
  // in whole 64-token blocks, with an fp32 DeltaNet state slot per sequence (the GPU engine's layout).
  EXPECT_EQ(j["kv_budget"]["kv_layers"], 3);
  EXPECT_EQ(j["kv_budget"]["kv_fp8"]["bytes_per_token"], 3 * 2 * 128);
  EXPECT_EQ(j["kv_budget"]["kv_fp8"]["max_tokens"].get<int64_t>() % 64, 0);
  EXPECT_EQ(j["kv_budget"]["deltanet_state_bytes_per_sequence"], j["deltanet_state_bytes_per_sequence"]);
  {
    const auto& b = j["kv_budget"];
    const int64_t free = b["free_after_weights_bytes"], state = b["deltanet_state_bytes_per_sequence"];
    const int64_t per_seq = state + 32768 / 64 * 64 * 3 * 2 * 128;  // default --context 32768, FP8
    EXPECT_EQ(b["kv_fp8"]["max_sequences"], free / per_seq);
  }
  EXPECT_GT(j["kv_budget"]["kv_fp8"]["max_tokens"].get<int64_t>(), j["kv_budget"]["kv_bf16"]["max_tokens"].get<int64_t>());
  const auto e = json::parse(run_cli("inspect --json --model " + fixture("quant/fp8-block-lmhead")).stdout_text);
  for (const auto& g : e["tensor_groups"]) {
    if (g["group"] == "lm_head" || g["group"] == "embed_tokens") {
      EXPECT_NE(g["precision"].dump().find("FP8 block-128"), std::string::npos) << g.dump();
    }
  }
}

TEST(QuantCli, ActivationsSwitchSelectsWeightOnly) {
  Golden g("quant/ct-nvfp4");
  const auto ids = join_ids(g.ints("ids"));
  for (const char* mode : {"declared", "bf16"}) {
    const std::string out = (fs::temp_directory_path() / ("gdn_act_" + std::to_string(::getpid()))).string();
    const auto r = run_cli("logits --model " + fixture("quant/ct-nvfp4") + " --tokens " + ids + " --activations " + mode +
                           " --out " + out);
    ASSERT_EQ(r.exit_code, 0) << r.out;
    std::ifstream f(out, std::ios::binary);
    std::vector<float> got(g.floats("declared_logits").size());
    f.read(reinterpret_cast<char*>(got.data()), std::streamsize(got.size() * 4));
    const auto want = g.floats(std::string(mode) == "bf16" ? "weight_only_logits" : "declared_logits");
    EXPECT_LE(max_abs_diff(got, want).value, 1e-3 * stddev(want)) << mode;
    fs::remove(out);
  }
  expect_error(run_cli("logits --model " + fixture("quant/ct-nvfp4") + " --tokens 1 --activations fp4 --out /dev/null"),
               {"--activations", "declared or bf16"});
}

}  // namespace
}  // namespace gdn::test
