// Tokenizer units that need no downloaded file: a tiny byte-level BPE written here (expected ids
// worked out by hand from its merges), malformed tokenizer.json files, invalid UTF-8, the
// streaming decoder on split characters, ids outside the vocabulary, regex translation.
// Agreement with the reference library on the real Qwen files: test_tokenizer_golden.cpp.
#include <gtest/gtest.h>
#include <utf8proc.h>
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/error.h"
#include "tokenizer/regex.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/utf8.h"

namespace gdn {
namespace {

using json = nlohmann::json;
using Ids = std::vector<int32_t>;

// GPT-2's byte → character table, written out independently of the library's.
std::string byte_char(int b) {
  const bool printable = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
  int cp = b;
  if (!printable) {
    int n = 0;
    for (int x = 0; x < b; ++x)
      if (!((x >= 0x21 && x <= 0x7E) || (x >= 0xA1 && x <= 0xAC) || (x >= 0xAE && x <= 0xFF))) ++n;
    cp = 256 + n;
  }
  std::string s;
  if (cp < 0x80) {
    s += char(cp);
  } else {
    s += char(0xC0 | (cp >> 6));
    s += char(0x80 | (cp & 0x3F));
  }
  return s;
}

// Byte b has id b; then he=256, ll=257, hell=258, hello=259, ab=260, bc=261, abc=262, <s>=263.
json tiny(json merges = json::array({json::array({"h", "e"}), json::array({"l", "l"}), json::array({"he", "ll"}),
                                     json::array({"hell", "o"}), json::array({"a", "b"}), json::array({"b", "c"})})) {
  json vocab = json::object();
  for (int b = 0; b < 256; ++b) vocab[byte_char(b)] = b;
  int id = 256;
  for (const char* t : {"he", "ll", "hell", "hello", "ab", "bc", "abc"}) vocab[t] = id++;
  return {{"version", "1.0"},
          {"added_tokens", json::array({json{{"id", 263}, {"content", "<s>"}, {"special", true}, {"normalized", false}}})},
          {"normalizer", {{"type", "NFC"}}},
          {"pre_tokenizer", {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", true}}},
          {"decoder", {{"type", "ByteLevel"}}},
          {"model", {{"type", "BPE"}, {"vocab", vocab}, {"merges", merges}}}};
}

std::unique_ptr<Tokenizer> make(const json& j) { return Tokenizer::from_json_string(j.dump(), "tiny.json"); }

TEST(TokenizerBpe, MergesByRank) {
  auto t = make(tiny());
  EXPECT_EQ(t->encode("hello"), (Ids{259}));
  EXPECT_EQ(t->encode(" hello"), (Ids{32, 259}));  // GPT-2 split: " hello" is one word; ' ' alone has no merge
  EXPECT_EQ(t->encode("abc"), (Ids{260, 'c'}));     // (a,b) ranks before (b,c)
  json m = json::array({json::array({"b", "c"}), json::array({"a", "b"})});
  EXPECT_EQ(make(tiny(m))->encode("abc"), (Ids{'a', 261}));
  EXPECT_EQ(t->encode("hellohello"), (Ids{259, 259}));
  EXPECT_EQ(t->encode("<s>hello<s>"), (Ids{263, 259, 263}));
  EXPECT_EQ(t->encode(""), Ids{});
}

TEST(TokenizerBpe, LegacyMergeStrings) {
  auto t = make(tiny(json::array({"h e", "l l", "he ll", "hell o", "a b", "b c"})));
  EXPECT_EQ(t->encode("hello abc"), (Ids{259, 32, 260, 'c'}));
}

TEST(TokenizerBpe, IgnoreMerges) {
  json j = tiny();
  EXPECT_EQ(make(j)->encode("abc"), (Ids{260, 'c'}));
  j["model"]["ignore_merges"] = true;
  EXPECT_EQ(make(j)->encode("abc"), (Ids{262}));  // a whole word in the vocabulary is taken as is
}

TEST(TokenizerBpe, UnknownBytes) {
  json j = tiny();
  j["model"]["vocab"].erase(byte_char('x'));
  j["model"]["vocab"].erase(byte_char('y'));
  EXPECT_EQ(make(j)->encode("axyb"), (Ids{260}));  // no unk_token: dropped (as tokenizers does), then a+b merge
  j["model"]["unk_token"] = "<s>";
  j["model"]["vocab"]["<s>"] = 263;
  EXPECT_EQ(make(j)->encode("axyb"), (Ids{'a', 263, 263, 'b'}));
  j["model"]["fuse_unk"] = true;
  EXPECT_EQ(make(j)->encode("axyb"), (Ids{'a', 263, 'b'}));
}

TEST(TokenizerDecode, ByteLevelAndSpecial) {
  auto t = make(tiny());
  EXPECT_EQ(t->decode(Ids{263, 259, 32, 'x'}), "<s>hello x");
  EXPECT_EQ(t->decode(Ids{263, 259, 32, 'x'}, true), "hello x");
  EXPECT_EQ(t->decode(Ids{0xE4, 0xBD, 0xA0}), "\xE4\xBD\xA0");    // 你 from three byte tokens
  EXPECT_EQ(t->decode(Ids{0xE4, 0xBD}), "\xEF\xBF\xBD");          // cut short: one U+FFFD
  EXPECT_EQ(t->decode(Ids{0xE4, 0xBD, 263, 0xA0}, true), "\xE4\xBD\xA0");  // a skipped token joins the bytes
  json j = tiny();
  j["decoder"] = nullptr;  // no decoder: tokens joined with spaces, as tokenizers does
  EXPECT_EQ(make(j)->decode(Ids{259, 263, 'a'}), "hello <s> a");
}

TEST(TokenizerDecode, IdsOutsideTheVocabulary) {
  auto t = make(tiny());
  EXPECT_EQ(t->vocab_size(), 264u);
  for (int32_t bad : {-5, 264, 100000}) {
    try {
      t->decode(Ids{'a', bad});
      ADD_FAILURE() << bad;
    } catch (const InputError& e) {
      EXPECT_NE(std::string(e.what()).find(std::to_string(bad)), std::string::npos) << e.what();
    }
  }
}

TEST(TokenizerStream, HoldsBackPartialCharacters) {
  auto t = make(tiny());
  // U+1F600 😀 = F0 9F 98 80, one byte token each.
  StreamDecoder sd(*t);
  EXPECT_EQ(sd.push('a'), "a");
  EXPECT_EQ(sd.push(0xF0), "");
  EXPECT_EQ(sd.push(0x9F), "");
  EXPECT_EQ(sd.push(0x98), "");
  EXPECT_EQ(sd.pending_bytes(), 3u);
  EXPECT_EQ(sd.push(0x80), "\xF0\x9F\x98\x80");
  EXPECT_EQ(sd.pending_bytes(), 0u);
  // A sequence that cannot complete is emitted as U+FFFD as soon as that is certain.
  EXPECT_EQ(sd.push(0xF0), "");
  EXPECT_EQ(sd.push('b'), "\xEF\xBF\xBD" "b");
  EXPECT_EQ(sd.push(0xFF), "\xEF\xBF\xBD");
  // An unfinished character at the end becomes one U+FFFD on flush, like decode().
  EXPECT_EQ(sd.push(0xE4), "");
  EXPECT_EQ(sd.flush(), "\xEF\xBF\xBD");
  EXPECT_EQ(sd.flush(), "");
  EXPECT_THROW(sd.push(999), InputError);
}

TEST(TokenizerStream, SkipSpecialKeepsPendingBytes) {
  auto t = make(tiny());
  StreamDecoder sd(*t, /*skip_special=*/true);
  EXPECT_EQ(sd.push(0xE4), "");
  EXPECT_EQ(sd.push(263), "");
  EXPECT_EQ(sd.push(0xBD), "");
  EXPECT_EQ(sd.push(0xA0), "\xE4\xBD\xA0");
}

TEST(TokenizerUtf8, LossyRepairFollowsRust) {
  // Expected per Unicode's "maximal subpart" practice, which String::from_utf8_lossy implements.
  auto lossy = [](std::string_view s) {
    std::string o;
    tok::append_utf8_lossy(s, o);
    return o;
  };
  const std::string R = "\xEF\xBF\xBD";
  EXPECT_EQ(lossy("abc"), "abc");
  EXPECT_EQ(lossy("\xFF"), R);
  EXPECT_EQ(lossy("\xC0\xAF"), R + R);                 // overlong lead byte is never valid
  EXPECT_EQ(lossy("\xE0\x80\x80"), R + R + R);         // E0 needs A0..BF next
  EXPECT_EQ(lossy("\xED\xA0\x80"), R + R + R);         // surrogate
  EXPECT_EQ(lossy("\xF4\x90\x80\x80"), R + R + R + R);  // above U+10FFFF
  EXPECT_EQ(lossy("\xF0\x9F\x98" "a"), R + "a");        // truncated 4-byte sequence: one U+FFFD
  EXPECT_EQ(lossy("\xE2\x82"), R);
  EXPECT_EQ(lossy("\x80\xBF"), R + R);
  EXPECT_TRUE(tok::is_valid_utf8("\xF0\x9F\x98\x80 \xE4\xBD\xA0 \xC3\xA9"));
  EXPECT_FALSE(tok::is_valid_utf8("\xF0\x9F\x98"));
  EXPECT_FALSE(tok::is_valid_utf8("\xED\xA0\x80"));
}

TEST(TokenizerUtf8, InvalidInputIsEncodedAsItsRepair) {
  auto t = make(tiny());
  EXPECT_EQ(t->encode("he\xFFllo\xE2\x82"), t->encode("he\xEF\xBF\xBDllo\xEF\xBF\xBD"));
  EXPECT_EQ(t->decode(t->encode("a\xC0" "b")), "a\xEF\xBF\xBD" "b");
}

TEST(TokenizerUtf8, Nfc) {
  auto nfc = [](std::string_view s) {
    std::string o;
    tok::append_nfc(s, o);
    return o;
  };
  EXPECT_EQ(nfc("plain ascii"), "plain ascii");
  EXPECT_EQ(nfc("e\xCC\x81"), "\xC3\xA9");                          // e + U+0301 → é
  EXPECT_EQ(nfc("\xE2\x84\xAB"), "\xC3\x85");                       // U+212B ANGSTROM SIGN → Å
  EXPECT_EQ(nfc("\xE1\x84\x80\xE1\x85\xA1\xE1\x86\xA8"), "\xEA\xB0\x81");  // Hangul jamo → 각
  EXPECT_EQ(nfc("\xE4\xBD\xA0 e\xCC\x81 \xE4\xBD\xA0"), "\xE4\xBD\xA0 \xC3\xA9 \xE4\xBD\xA0");
  // Dives Akuru U+11935 U+11930 composes to U+11938 since Unicode 13, but not in tokenizers'
  // Unicode 9.0 tables (checked against the reference by the goldens).
  EXPECT_EQ(nfc("\xF0\x91\xA4\xB5\xF0\x91\xA4\xB0"), "\xF0\x91\xA4\xB5\xF0\x91\xA4\xB0");
}

TEST(TokenizerRegex, OnigurumaClassesForPcre2) {
  const std::string s = tok::translate_regex_for_pcre2(R"(\s+(?!\S)|[^\s\p{L}]|\\s)");
  EXPECT_EQ(s.find("\\s"), s.rfind("\\\\s") + 1) << s;  // only the escaped backslash + 's' is left
  EXPECT_NE(s.find("\\p{White_Space}"), std::string::npos) << s;
  EXPECT_NE(s.find("[^\\p{White_Space}]"), std::string::npos) << s;  // \S
  tok::Regex ws("\\s", "test");
  size_t hits = 0;
  ws.for_each_match("\xE1\xA0\x8E", [&](size_t, size_t) { ++hits; });  // U+180E is not White_Space
  EXPECT_EQ(hits, 0u);
  tok::Regex letter("\\p{L}", "test");
  letter.for_each_match("\xE1\xB2\x89", [&](size_t, size_t) { ++hits; });  // U+1C89 (Unicode 16) is a letter
  EXPECT_EQ(hits, 1u);
}

TEST(TokenizerRegex, EmptyMatchesLikeOnigFindIter) {
  tok::Regex re("a*", "test");
  std::vector<std::pair<size_t, size_t>> m;
  re.for_each_match("baab", [&](size_t b, size_t e) { m.push_back({b, e}); });
  EXPECT_EQ(m, (std::vector<std::pair<size_t, size_t>>{{0, 0}, {1, 3}, {4, 4}}));
}

// The generated Unicode tables (nfc_unicode9.inc, regex_unicode.inc) were computed for these
// library versions; with others the tokenizer may stop matching the reference on rare characters.
TEST(TokenizerTables, GeneratedForTheInstalledLibraries) {
  EXPECT_STREQ(utf8proc_unicode_version(), "15.0.0")
      << "utf8proc changed: rerun tools/tokenizer/gen_nfc_unicode9.py and the goldens";
  EXPECT_EQ(PCRE2_MAJOR * 100 + PCRE2_MINOR, 1042)
      << "PCRE2 changed: rerun tools/tokenizer/dump_reference_props.mjs + gen_unicode_props.cpp";
}

// Every malformed file is an InputError naming the file and the field.
TEST(TokenizerLoad, MalformedFiles) {
  struct Case {
    std::string name;
    std::string text;
    std::vector<std::string> message;  // substrings of the error
  };
  auto with = [](auto edit) {
    json j = tiny();
    edit(j);
    return j.dump();
  };
  const std::vector<Case> cases = {
      {"not json", "{\"model\": ", {"tiny.json", "not valid JSON"}},
      {"array", "[1, 2]", {"tiny.json", "top level"}},
      {"no model", with([](json& j) { j.erase("model"); }), {"tiny.json", "'model' is missing"}},
      {"model type", with([](json& j) { j["model"]["type"] = "WordPiece"; }), {"model.type", "WordPiece"}},
      {"no vocab", with([](json& j) { j["model"].erase("vocab"); }), {"model.vocab"}},
      {"vocab id", with([](json& j) { j["model"]["vocab"]["he"] = "x"; }), {"model.vocab[\"he\"]"}},
      // Dense id tables: an id far past the vocabulary's size would cost gigabytes (found by fuzzing).
      {"sparse ids", with([](json& j) { j["model"]["vocab"]["zz"] = 2000000000; }),
       {"model.vocab", "too sparse", "2000000000"}},
      {"no merges", with([](json& j) { j["model"].erase("merges"); }), {"model.merges"}},
      {"merge unknown", with([](json& j) { j["model"]["merges"][1] = json::array({"l", "zz"}); }),
       {"model.merges[1]", "'zz'"}},
      {"merge string", with([](json& j) { j["model"]["merges"] = json::array({"h e", "a b c"}); }),
       {"model.merges[1]", "a b c"}},
      {"merge mixed", with([](json& j) { j["model"]["merges"][2] = "he ll"; }), {"model.merges[2]"}},
      {"merge result", with([](json& j) { j["model"]["merges"].push_back(json::array({"o", "o"})); }),
       {"model.merges[6]", "'oo'"}},
      {"dropout", with([](json& j) { j["model"]["dropout"] = 0.1; }), {"model.dropout"}},
      {"normalizer", with([](json& j) { j["normalizer"] = {{"type", "Lowercase"}}; }), {"normalizer", "Lowercase"}},
      {"pre_tokenizer",
       with([](json& j) { j["pre_tokenizer"] = {{"type", "Whitespace"}}; }), {"pre_tokenizer", "Whitespace"}},
      {"no byte level", with([](json& j) { j["pre_tokenizer"] = nullptr; }), {"pre_tokenizer", "ByteLevel"}},
      {"bad regex",
       with([](json& j) {
         j["pre_tokenizer"] = {{"type", "Sequence"},
                               {"pretokenizers", json::array({json{{"type", "Split"},
                                                                   {"pattern", {{"Regex", "(unclosed"}}},
                                                                   {"behavior", "Isolated"},
                                                                   {"invert", false}},
                                                              json{{"type", "ByteLevel"}, {"use_regex", false}}})}};
       }),
       {"pre_tokenizer.pretokenizers[0].pattern", "(unclosed", "does not compile"}},
      {"split behavior",
       with([](json& j) {
         j["pre_tokenizer"] = {{"type", "Sequence"},
                               {"pretokenizers", json::array({json{{"type", "Split"},
                                                                   {"pattern", {{"Regex", "\\s"}}},
                                                                   {"behavior", "Removed"},
                                                                   {"invert", false}},
                                                              json{{"type", "ByteLevel"}}})}};
       }),
       {"pretokenizers[0].behavior", "Removed"}},
      {"decoder", with([](json& j) { j["decoder"] = {{"type", "WordPiece"}}; }), {"decoder", "WordPiece"}},
      {"added_tokens", with([](json& j) { j["added_tokens"] = 5; }), {"added_tokens"}},
      {"added content", with([](json& j) { j["added_tokens"][0]["content"] = 3; }), {"added_tokens[0].content"}},
      {"version", with([](json& j) { j["version"] = "2.0"; }), {"version", "2.0"}},
  };
  for (const Case& c : cases) {
    try {
      Tokenizer::from_json_string(c.text, "tiny.json");
      ADD_FAILURE() << c.name << ": accepted";
    } catch (const InputError& e) {
      for (const std::string& m : c.message)
        EXPECT_NE(std::string(e.what()).find(m), std::string::npos) << c.name << ": " << e.what();
    }
  }
  EXPECT_THROW(Tokenizer::load("/nonexistent/tokenizer.json"), InputError);
}

}  // namespace
}  // namespace gdn
