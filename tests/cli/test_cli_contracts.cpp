// The CLI contracts other tools build on (issue 2 §6), run as a subprocess: `logits` output file
// layout and values, `generate --ids`, seeded sampling, `inspect --json`.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "test_util.h"

namespace gdn::test {
namespace {

namespace fs = std::filesystem;

std::vector<float> read_f32(const std::string& path) {
  std::ifstream f(path, std::ios::binary | std::ios::ate);
  std::vector<float> v(size_t(f.tellg()) / 4);
  f.seekg(0);
  f.read(reinterpret_cast<char*>(v.data()), std::streamsize(v.size() * 4));
  return v;
}

std::string temp_path(const std::string& name) {
  return (fs::temp_directory_path() / ("gdn_cli_" + std::to_string(::getpid()) + "_" + name)).string();
}

std::string first_line(const std::string& s) { return s.substr(0, s.find('\n')); }

TEST(CliLogits, WritesEveryPositionForEachFeedingMode) {
  const std::string fx = fixture("qwen36-wrapper-sharded");
  Golden g("qwen36-wrapper-sharded");
  const auto ids = g.ints("long_ids");
  const auto want = g.floats("long_logits");
  for (const std::string mode : {"", "--prefill 70", "--prefill 0", "--chunk 33", "--chunk 64"}) {
    const std::string out = temp_path("logits.bin");
    const auto r = run_cli("logits --model " + fx + " --tokens " + join_ids(ids) + " " + mode + " --backend cpu --out " + out);
    ASSERT_EQ(r.exit_code, 0) << r.out;
    const auto got = read_f32(out);
    ASSERT_EQ(got.size(), ids.size() * 512) << "file must hold [n_tokens, vocab] float32";
    expect_logits_near(got, want, "logits " + mode);
    fs::remove(out);
  }
}

TEST(CliLogits, PrefillAndChunkAreExclusive) {
  const auto r = run_cli("logits --model " + fixture("qwen35-wrapper-bf16") + " --tokens 1,2 --prefill 1 --chunk 1 --out " +
                         temp_path("x.bin"));
  EXPECT_EQ(r.exit_code, 2) << r.out;
}

TEST(CliGenerate, GreedyIdsMatchTheReference) {
  for (const std::string name : {"qwen35-wrapper-bf16", "qwen35-text-f32-tied", "qwen36-wrapper-sharded"}) {
    Golden g(name);
    const auto r = run_cli("generate --model " + fixture(name) + " --tokens " + join_ids(g.ints("greedy_prompt")) +
                           " --max-tokens 24 --temperature 0 --ignore-eos --ids");
    ASSERT_EQ(r.exit_code, 0) << r.out;
    EXPECT_EQ(first_line(r.stdout_text), join_ids(g.ints("greedy_continuation"))) << name;
  }
}

TEST(CliGenerate, StopsOnAStopId) {
  Golden g("qwen35-wrapper-bf16");
  const auto cont = g.ints("greedy_continuation");
  // Stop on the 6th greedy token: the output is the first 6 tokens (stop id included).
  const auto r = run_cli("generate --model " + fixture("qwen35-wrapper-bf16") + " --tokens " +
                         join_ids(g.ints("greedy_prompt")) + " --max-tokens 24 --ignore-eos --stop-ids " +
                         std::to_string(cont[5]) + " --ids");
  ASSERT_EQ(r.exit_code, 0) << r.out;
  const size_t first = size_t(std::find(cont.begin(), cont.end(), cont[5]) - cont.begin());
  EXPECT_EQ(first_line(r.stdout_text), join_ids({cont.begin(), cont.begin() + long(first) + 1}));
  EXPECT_NE(r.out.find("finish: stop"), std::string::npos) << r.out;
}

TEST(CliGenerate, MaxTokensBoundsTheOutput) {
  const auto r = run_cli("generate --model " + fixture("qwen35-text-f32-tied") + " --tokens 5,6,7 --max-tokens 3 --ids");
  ASSERT_EQ(r.exit_code, 0) << r.out;
  const std::string line = first_line(r.stdout_text);
  EXPECT_EQ(std::count(line.begin(), line.end(), ','), 2) << line;
}

TEST(CliGenerate, SeededSamplingIsReproducible) {
  const std::string base = "generate --model " + fixture("qwen36-wrapper-sharded") +
                           " --tokens 1,2,3,4 --max-tokens 20 --ignore-eos --temperature 1.0 --top-k 50 --top-p 0.95 --min-p 0.01 --ids";
  const auto a = run_cli(base + " --seed 7"), b = run_cli(base + " --seed 7"), c = run_cli(base + " --seed 8");
  ASSERT_EQ(a.exit_code, 0) << a.out;
  EXPECT_EQ(first_line(a.stdout_text), first_line(b.stdout_text));
  EXPECT_NE(first_line(a.stdout_text), first_line(c.stdout_text));
}

TEST(CliGenerate, RejectsBadSamplingParameters) {
  const auto r = run_cli("generate --model " + fixture("qwen35-text-f32-tied") + " --tokens 5 --top-p 1.5 --ids");
  EXPECT_EQ(r.exit_code, 2) << r.out;
  EXPECT_NE(r.out.find("top_p"), std::string::npos) << r.out;
}

TEST(CliInspect, DescribesTheCheckpoint) {
  const auto r = run_cli("inspect --model " + fixture("qwen35-wrapper-bf16") + " --json");
  ASSERT_EQ(r.exit_code, 0) << r.out;
  const auto j = nlohmann::json::parse(r.stdout_text);
  EXPECT_EQ(j["model_type"], "qwen3_5");
  EXPECT_EQ(j["num_layers"], 8);
  EXPECT_EQ(j["layer_pattern"], "LLLALLLA");
  EXPECT_EQ(j["mtp_head"], true);
  EXPECT_EQ(j["eos_token_ids"], nlohmann::json::array({383}));
  // 6 DeltaNet layers × (recurrent 4 heads × 16 × 24 × 4 B + conv 3 × 160 channels × 4 B)
  EXPECT_EQ(j["deltanet_state_bytes_per_sequence"], 6 * (4 * 16 * 24 * 4 + 3 * 160 * 4));
  // 2 attention layers × (K and V) × 2 kv heads × 32 dims × 2 B
  EXPECT_EQ(j["kv_bytes_per_token_bf16"], 2 * 2 * 2 * 32 * 2);
  // Parameters: every language-model tensor in the files (not the vision tower, not MTP).
  int64_t params = 0;
  for (const auto& e : fs::directory_iterator(fixture("qwen35-wrapper-bf16"))) {
    if (e.path().extension() != ".safetensors" || e.path().filename() == "golden.safetensors") continue;
    SafetensorsFile f(e.path().string());
    for (const auto& t : f.header().tensors)
      if (t.name.rfind("model.visual.", 0) != 0 && t.name.rfind("mtp.", 0) != 0) params += t.numel();
  }
  EXPECT_EQ(j["parameters"], params);
  const auto sharded = nlohmann::json::parse(run_cli("inspect --json --model " + fixture("qwen36-wrapper-sharded")).stdout_text);
  EXPECT_EQ(sharded["eos_token_ids"], nlohmann::json::array({511, 510}));  // generation_config list
  EXPECT_EQ(sharded["layer_pattern"], "LALA");                             // full_attention_interval 2
  const auto text = nlohmann::json::parse(run_cli("inspect --json --model " + fixture("qwen35-text-f32-tied")).stdout_text);
  EXPECT_EQ(text["tie_word_embeddings"], true);
  EXPECT_EQ(text["layout"], "text-only");
}

TEST(CliInspect, TextOutputNamesTheGroups) {
  const auto r = run_cli("inspect --model " + fixture("qwen36-wrapper-sharded"));
  ASSERT_EQ(r.exit_code, 0) << r.out;
  for (const char* w : {"DeltaNet", "attention", "MLP", "lm_head", "embed_tokens", "MTP", "KV cache per token"})
    EXPECT_NE(r.out.find(w), std::string::npos) << w;
}

}  // namespace
}  // namespace gdn::test
