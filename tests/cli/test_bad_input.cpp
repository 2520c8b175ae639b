// Bad input never crashes us: every broken checkpoint, config or argument below must make the
// CLI print one clear line naming the file/tensor/field and what was expected, and exit with
// code 2 (never abort, segfault or report an internal error).
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "formats/safetensors.h"
#include "test_util.h"

namespace gdn::test {
namespace {

namespace fs = std::filesystem;
using ojson = nlohmann::ordered_json;

// A fresh directory under the system temp dir, removed on destruction.
class TempDir {
 public:
  TempDir() {
    std::string tmpl = (fs::temp_directory_path() / "gdn-badinput-XXXXXX").string();
    if (!mkdtemp(tmpl.data())) throw std::runtime_error("mkdtemp failed");
    path_ = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  std::string str() const { return path_.string(); }
  fs::path operator/(const std::string& name) const { return path_ / name; }

 private:
  fs::path path_;
};

// Copies a fixture checkpoint (without its goldens, which the model does not need).
void copy_fixture(const std::string& name, const TempDir& dir) {
  for (const auto& e : fs::directory_iterator(fixture(name)))
    if (e.path().filename() != "golden.safetensors") fs::copy_file(e.path(), dir / e.path().filename().string());
}

std::vector<uint8_t> read_bytes(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>()};
}
void write_bytes(const fs::path& p, const std::vector<uint8_t>& b) {
  std::ofstream f(p, std::ios::binary | std::ios::trunc);
  f.write(reinterpret_cast<const char*>(b.data()), std::streamsize(b.size()));
}
void write_text(const fs::path& p, const std::string& s) { std::ofstream(p, std::ios::trunc) << s; }

uint64_t header_len(const std::vector<uint8_t>& b) {
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | b[size_t(i)];
  return n;
}
void put_header_len(std::vector<uint8_t>& b, uint64_t n) {
  for (int i = 0; i < 8; ++i) b[size_t(i)] = uint8_t(n >> (8 * i));
}

// Rewrites a safetensors file's JSON header through `edit`, keeping the data region as is.
void edit_header(const fs::path& p, const std::function<void(ojson&)>& edit) {
  const std::vector<uint8_t> b = read_bytes(p);
  const uint64_t n = header_len(b);
  ojson h = ojson::parse(b.begin() + 8, b.begin() + 8 + long(n));
  edit(h);
  std::string text = h.dump();
  text.append((8 - text.size() % 8) % 8, ' ');
  std::vector<uint8_t> len(8);
  put_header_len(len, text.size());
  std::ofstream f(p, std::ios::binary | std::ios::trunc);
  f.write(reinterpret_cast<const char*>(len.data()), 8);
  f.write(text.data(), std::streamsize(text.size()));
  f.write(reinterpret_cast<const char*>(b.data() + 8 + n), std::streamsize(b.size() - 8 - n));
}

// Copies tensors out of a safetensors file (all of them, or those `keep` accepts).
std::vector<TensorToWrite> tensors_of(const fs::path& p, const std::function<bool(const std::string&)>& keep) {
  SafetensorsFile f(p.string());
  std::vector<TensorToWrite> out;
  for (const auto& t : f.header().tensors)
    if (keep(t.name)) out.push_back({t.name, t.dtype, t.shape, std::vector<uint8_t>(f.data(t), f.data(t) + t.nbytes)});
  return out;
}

// Runs the CLI and checks the input-error contract: exit code exactly 2, every word present
// ("a|b": either spelling), and no sign of a crash or internal error.
void expect_input_error(const std::string& args, const std::vector<std::string>& words) {
  SCOPED_TRACE("gdnserve " + args);
  const CommandResult r = run_cli(args);
  EXPECT_EQ(r.exit_code, 2) << r.out;
  for (const auto& w : words) {
    bool found = false;
    for (size_t b = 0, e; b <= w.size(); b = e + 1) {
      e = std::min(w.find('|', b), w.size());
      found |= r.out.find(w.substr(b, e - b)) != std::string::npos;
    }
    EXPECT_TRUE(found) << "missing '" << w << "' in: " << r.out;
  }
  for (const char* bad : {"internal error", "Aborted", "terminate called", "Segmentation"})
    EXPECT_EQ(r.out.find(bad), std::string::npos) << r.out;
  // One line: "gdnserve: error: ..." and nothing else.
  EXPECT_EQ(r.out.rfind("gdnserve: error: ", 0), 0u) << r.out;
  EXPECT_EQ(std::count(r.out.begin(), r.out.end(), '\n'), 1) << r.out;
}

std::string logits_args(const TempDir& d, const std::string& tokens = "1,2,3") {
  return "logits --model " + d.str() + " --tokens " + tokens + " --out " + (d / "x.bin").string();
}
std::string inspect_args(const TempDir& d) { return "inspect --model " + d.str(); }

const char* kBf16 = "qwen35-wrapper-bf16";
const char* kSharded = "qwen36-wrapper-sharded";
const std::string kNorm = "model.language_model.norm.weight";

// Control: the undamaged copies load and run, so every failure below is caused by the damage.
TEST(BadInputControl, UndamagedCopiesWork) {
  for (const char* fx : {kBf16, kSharded, "qwen35-text-f32-tied"}) {
    TempDir d;
    copy_fixture(fx, d);
    const CommandResult r = run_cli(logits_args(d));
    EXPECT_EQ(r.exit_code, 0) << fx << ": " << r.out;
  }
}

TEST(BadInputDir, MissingModelDirectory) {
  TempDir d;
  const std::string missing = (d / "no-such-model").string();
  expect_input_error("logits --model " + missing + " --tokens 1,2,3 --out " + (d / "x.bin").string(),
                     {missing, "model directory does not exist"});
  expect_input_error("inspect --model " + missing, {missing, "model directory does not exist"});
}

TEST(BadInputDir, NoConfigJson) {
  TempDir d;
  copy_fixture(kBf16, d);
  fs::remove(d / "config.json");
  expect_input_error(logits_args(d), {d.str(), "missing config.json"});
}

TEST(BadInputDir, NoSafetensorsFiles) {
  TempDir d;
  fs::copy_file(fs::path(fixture(kBf16)) / "config.json", d / "config.json");
  expect_input_error(logits_args(d), {d.str(), "no *.safetensors files"});
}

TEST(BadInputSafetensors, TruncatedToFiveBytes) {
  TempDir d;
  copy_fixture(kBf16, d);
  fs::resize_file(d / "model.safetensors", 5);
  expect_input_error(logits_args(d), {"model.safetensors", "truncated", "5 bytes", "8-byte header length"});
  expect_input_error(inspect_args(d), {"model.safetensors", "truncated"});
}

TEST(BadInputSafetensors, EmptyFile) {
  TempDir d;
  copy_fixture(kBf16, d);
  fs::resize_file(d / "mtp.safetensors", 0);
  expect_input_error(logits_args(d), {"mtp.safetensors", "truncated", "0 bytes"});
}

TEST(BadInputSafetensors, TruncatedInDataRegion) {
  TempDir d;
  copy_fixture(kBf16, d);
  const fs::path p = d / "model.safetensors";
  const uint64_t data_start = 8 + header_len(read_bytes(p));
  fs::resize_file(p, data_start + (fs::file_size(p) - data_start) / 2);
  expect_input_error(logits_args(d), {"model.safetensors", "data_offsets", "outside the data region"});
}

TEST(BadInputSafetensors, HeaderLengthPastEnd) {
  TempDir d;
  copy_fixture(kBf16, d);
  const fs::path p = d / "model.safetensors";
  std::vector<uint8_t> b = read_bytes(p);
  put_header_len(b, b.size());
  write_bytes(p, b);
  expect_input_error(logits_args(d), {"model.safetensors", "header length " + std::to_string(b.size()),
                                      "runs past the end of the file"});
}

TEST(BadInputSafetensors, HeaderNotJson) {
  TempDir d;
  copy_fixture(kBf16, d);
  const fs::path p = d / "mtp.safetensors";
  std::vector<uint8_t> b = read_bytes(p);
  b[8] = 'X';  // the opening brace
  write_bytes(p, b);
  expect_input_error(logits_args(d), {"mtp.safetensors", "header is not valid JSON"});
  expect_input_error(inspect_args(d), {"mtp.safetensors", "not valid JSON"});
}

TEST(BadInputSafetensors, DataOffsetsOutsideFile) {
  TempDir d;
  copy_fixture(kBf16, d);
  const fs::path p = d / "model.safetensors";
  edit_header(p, [](ojson& h) { h[kNorm]["data_offsets"] = {2000000, 2000128}; });
  expect_input_error(logits_args(d), {"model.safetensors", kNorm, "[2000000, 2000128]", "outside the data region"});
}

TEST(BadInputSafetensors, OverlappingTensors) {
  TempDir d;
  copy_fixture(kBf16, d);
  const std::string a = "model.language_model.layers.0.input_layernorm.weight";
  const std::string b = "model.language_model.layers.0.post_attention_layernorm.weight";
  edit_header(d / "model.safetensors", [&](ojson& h) { h[b]["data_offsets"] = h[a]["data_offsets"]; });
  expect_input_error(logits_args(d), {"model.safetensors", a, b, "[98976, 99104]", "overlap"});
}

TEST(BadInputSafetensors, ByteSizeNotMatchingShape) {
  TempDir d;
  copy_fixture(kBf16, d);
  edit_header(d / "model.safetensors", [](ojson& h) { h[kNorm]["shape"] = {65}; });
  expect_input_error(logits_args(d), {"model.safetensors", kNorm, "128 bytes", "BF16", "[65]", "needs 130"});
}

TEST(BadInputSafetensors, UnknownDtype) {
  TempDir d;
  copy_fixture(kBf16, d);
  edit_header(d / "model.safetensors", [](ojson& h) { h[kNorm]["dtype"] = "Q4_K"; });
  expect_input_error(logits_args(d), {"model.safetensors", kNorm, "unknown dtype 'Q4_K'", "expected F32"});
  expect_input_error(inspect_args(d), {kNorm, "unknown dtype"});
}

TEST(BadInputTensors, MissingTensor) {
  TempDir d;
  copy_fixture(kBf16, d);
  const std::string gone = "model.language_model.layers.2.mlp.up_proj.weight";
  const fs::path p = d / "model.safetensors";
  const auto kept = tensors_of(p, [&](const std::string& n) { return n != gone; });
  write_safetensors(p.string(), kept);
  // The module or tensor name, and that its weight is missing.
  const std::string module = "model.language_model.layers.2.mlp.up_proj";
  const std::string missing = "not found|is missing|no weight";
  expect_input_error(logits_args(d), {module, missing});
  expect_input_error(inspect_args(d), {module, missing});
}

TEST(BadInputTensors, WrongShape) {
  TempDir d;
  copy_fixture(kBf16, d);
  // Same byte count, transposed shape: the file is valid, the model is not.
  const std::string embed = "model.language_model.embed_tokens.weight";
  edit_header(d / "model.safetensors", [&](ojson& h) { h[embed]["shape"] = {64, 384}; });
  expect_input_error(logits_args(d), {embed, "model.safetensors", "shape [64, 384]", "[384, 64]"});
}

TEST(BadInputTensors, WrongDtypeForMatrix) {
  TempDir d;
  copy_fixture(kBf16, d);
  const std::string q = "model.language_model.layers.3.self_attn.k_proj";
  edit_header(d / "model.safetensors", [&](ojson& h) {
    h[q + ".weight"]["dtype"] = "I16";  // same element size as BF16
  });
  expect_input_error(logits_args(d), {q, "I16", "BF16, F16 or F32"});
}

TEST(BadInputTensors, ExtraLayerTensor) {
  TempDir d;
  copy_fixture(kBf16, d);
  const fs::path p = d / "model.safetensors";
  auto all = tensors_of(p, [](const std::string&) { return true; });
  auto extra = tensors_of(p, [](const std::string& n) { return n == kNorm; });
  ASSERT_EQ(extra.size(), 1u);
  extra[0].name = "model.language_model.layers.8.input_layernorm.weight";  // a 9th layer in an 8-layer model
  all.push_back(extra[0]);
  write_safetensors(p.string(), all);
  expect_input_error(logits_args(d), {"layers.8.input_layernorm.weight", "not part of the model", "8 layers"});
}

TEST(BadInputConfig, UnknownModelType) {
  TempDir d;
  copy_fixture(kBf16, d);
  auto j = nlohmann::json::parse(read_bytes(d / "config.json"));
  j["model_type"] = "llama";
  write_text(d / "config.json", j.dump());
  expect_input_error(logits_args(d), {"config.json", "unknown architecture", "'llama'", "qwen3_5"});
  expect_input_error(inspect_args(d), {"config.json", "'llama'"});
}

// A compressed-tensors "re:" pattern is code from the checkpoint: one nested 5,000 deep (which
// overflowed std::regex's recursive compiler) and one that backtracks exponentially on a module
// name must each be one clear error naming the field, not a crash or a hang.
TEST(BadInputConfig, HostileIgnoreRegex) {
  TempDir d;
  copy_fixture("quant/ct-fp8-dynamic", d);
  auto j = nlohmann::json::parse(read_bytes(d / "config.json"));
  j["quantization_config"]["ignore"] = {"lm_head", "re:" + std::string(5000, '(') + "x" + std::string(5000, ')')};
  write_text(d / "config.json", j.dump());
  expect_input_error(inspect_args(d), {"config.json", "ignore[1]", "not a valid regular expression"});
  j["quantization_config"]["ignore"] = {"lm_head", "re:(.*.*)*\\d\\d\\d\\d$"};
  write_text(d / "config.json", j.dump());
  expect_input_error(logits_args(d), {"config.json", "ignore[1]", "within its limits"});
}

// A field nested 100,000 deep used to overflow the stack when its error message printed it.
TEST(BadInputConfig, DeeplyNestedField) {
  TempDir d;
  copy_fixture(kBf16, d);
  std::string text = nlohmann::json::parse(read_bytes(d / "config.json")).dump();
  text.insert(1, "\"eos_token_id\": " + std::string(100000, '[') + std::string(100000, ']') + ", ");
  write_text(d / "config.json", text);
  expect_input_error(inspect_args(d), {"config.json", "nested deeper than 256 levels"});
}

TEST(BadInputConfig, NotJson) {
  TempDir d;
  copy_fixture(kBf16, d);
  write_text(d / "config.json", "{\"model_type\": \"qwen3_5\",");
  expect_input_error(logits_args(d), {"config.json", "not valid JSON"});
}

TEST(BadInputConfig, MissingHiddenSize) {
  TempDir d;
  copy_fixture(kBf16, d);
  auto j = nlohmann::json::parse(read_bytes(d / "config.json"));
  j["text_config"].erase("hidden_size");
  write_text(d / "config.json", j.dump());
  expect_input_error(logits_args(d), {"config.json", "text_config", "missing required field 'hidden_size'"});
}

TEST(BadInputConfig, GenerationConfigNotJson) {
  TempDir d;
  copy_fixture(kBf16, d);
  write_text(d / "generation_config.json", "eos=1");
  expect_input_error(logits_args(d), {(d / "generation_config.json").string() + ": not valid JSON"});
}

TEST(BadInputTokens, IdNotInVocab) {
  TempDir d;
  expect_input_error("logits --model " + fixture(kBf16) + " --tokens 1,400 --out " + (d / "x.bin").string(),
                     {"token id 400", "position 1", "[0, 384)"});
  EXPECT_FALSE(fs::exists(d / "x.bin"));
}

TEST(BadInputTokens, Malformed) {
  TempDir d;
  for (const std::string bad : {"1,x,3", "1,,3", "99999999999"}) {
    expect_input_error("logits --model " + fixture(kBf16) + " --tokens " + bad + " --out " + (d / "x.bin").string(),
                       {"--tokens", "is not a token id", "comma-separated integers"});
  }
}

TEST(BadInputIndex, TensorInNoFile) {
  TempDir d;
  copy_fixture(kSharded, d);
  const fs::path idx = d / "model.safetensors.index.json";
  auto j = nlohmann::json::parse(read_bytes(idx));
  j["weight_map"]["model.language_model.layers.9.mlp.up_proj.weight"] = "model-00002-of-00013.safetensors";
  write_text(idx, j.dump());
  expect_input_error(logits_args(d), {"model.safetensors.index.json", "layers.9.mlp.up_proj.weight",
                                      "not stored in model-00002-of-00013.safetensors"});
}

TEST(BadInputIndex, ShardFileMissing) {
  TempDir d;
  copy_fixture(kSharded, d);
  fs::remove(d / "model-00005-of-00013.safetensors");
  expect_input_error(logits_args(d), {"model.safetensors.index.json", "model-00005-of-00013.safetensors",
                                      "does not exist"});
  expect_input_error(inspect_args(d), {"model-00005-of-00013.safetensors", "does not exist"});
}

TEST(BadInputIndex, TensorInWrongShard) {
  TempDir d;
  copy_fixture(kSharded, d);
  const fs::path idx = d / "model.safetensors.index.json";
  auto j = nlohmann::json::parse(read_bytes(idx));
  j["weight_map"]["lm_head.weight"] = "model-00001-of-00013.safetensors";
  write_text(idx, j.dump());
  expect_input_error(logits_args(d), {"lm_head.weight", "mapped to model-00001-of-00013.safetensors",
                                      "stored in", "model-00013-of-00013.safetensors"});
}

TEST(BadInputIndex, NotJson) {
  TempDir d;
  copy_fixture(kSharded, d);
  write_text(d / "model.safetensors.index.json", "{\"weight_map\": ");
  expect_input_error(logits_args(d), {"model.safetensors.index.json", "not valid JSON"});
}

TEST(BadInputIndex, TensorInTwoFiles) {
  TempDir d;
  copy_fixture(kSharded, d);
  // lm_head.weight also lands in a new file beside the shards.
  write_safetensors((d / "extra.safetensors").string(),
                    tensors_of(d / "model-00013-of-00013.safetensors", [](const std::string&) { return true; }));
  expect_input_error(logits_args(d), {"tensor 'lm_head.weight' appears in both", "extra.safetensors",
                                      "model-00013-of-00013.safetensors"});
}

TEST(BadInputIndex, TensorInTwoFilesWithoutIndex) {
  TempDir d;
  copy_fixture(kBf16, d);
  write_safetensors((d / "copy.safetensors").string(),
                    tensors_of(d / "model.safetensors", [](const std::string& n) { return n == kNorm; }));
  expect_input_error(logits_args(d), {kNorm, "appears in both", "copy.safetensors", "model.safetensors"});
}

}  // namespace
}  // namespace gdn::test
