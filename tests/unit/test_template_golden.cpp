// Golden test: every template in tests/template/ (Qwen3.5, Qwen3.6, Qwen3) rendered for every
// request in tests/template/conversations.json must equal, byte for byte, what Hugging Face
// transformers' apply_chat_template produced (tests/template/goldens.json, written by
// tools/template/make_goldens.py on a machine with transformers). Errors must match too: the
// same Python exception class and, for raise_exception() and the errors we reproduce, the same
// message. A missing goldens file, or one not made by transformers, fails the suite.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "template/chat_request.h"
#include "template/chat_template.h"

namespace {

namespace fs = std::filesystem;
using ojson = nlohmann::ordered_json;

const std::string kDir = std::string(GDN_FIXTURES_DIR) + "/../template";

std::string read(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::ostringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

// Template names: tests/template/<name>_chat_template.jinja
std::vector<std::string> template_names() {
  std::vector<std::string> names;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(kDir, ec)) {
    const std::string f = e.path().filename().string();
    const std::string suffix = "_chat_template.jinja";
    if (f.size() > suffix.size() && f.compare(f.size() - suffix.size(), suffix.size(), suffix) == 0)
      names.push_back(f.substr(0, f.size() - suffix.size()));
  }
  std::sort(names.begin(), names.end());
  return names;
}

const ojson& conversations() {
  static const ojson c = [] {
    ojson j = ojson::parse(read(kDir + "/conversations.json"), nullptr, false);
    return j.is_discarded() ? ojson::object() : j;
  }();
  return c;
}

const ojson* goldens() {
  static const ojson g = [] {
    if (!fs::exists(kDir + "/goldens.json")) return ojson();
    ojson j = ojson::parse(read(kDir + "/goldens.json"), nullptr, false);
    return j.is_discarded() ? ojson() : j;
  }();
  return g.is_object() ? &g : nullptr;
}

struct Pair {
  std::string tmpl, conversation;
};
void PrintTo(const Pair& p, std::ostream* os) { *os << p.tmpl << " / " << p.conversation; }

std::vector<Pair> all_pairs() {
  std::vector<Pair> pairs;
  if (!conversations().contains("conversations")) return pairs;
  for (const std::string& t : template_names())
    for (const ojson& c : conversations()["conversations"]) pairs.push_back({t, c["id"].get<std::string>()});
  return pairs;
}

const ojson& request_of(const std::string& id) {
  for (const ojson& c : conversations()["conversations"])
    if (c["id"] == id) return c["request"];
  static const ojson none;
  return none;
}

// Python exception classes whose messages we reproduce exactly.
bool message_is_reproduced(const std::string& type) {
  return type == "TemplateError" || type == "UndefinedError" || type == "TypeError" || type == "SecurityError";
}

class TemplateGolden : public ::testing::TestWithParam<Pair> {};

}  // namespace

TEST(TemplateGoldenFile, ExistsAndComesFromTransformers) {
  const ojson* g = goldens();
  ASSERT_NE(g, nullptr) << kDir << "/goldens.json is missing or not JSON. Generate it with transformers:\n"
                        << "  python3 tools/template/make_goldens.py";
  ASSERT_TRUE(g->contains("_meta"));
  EXPECT_EQ((*g)["_meta"].value("oracle", ""), "transformers")
      << "goldens.json was not made by transformers (" << (*g)["_meta"].dump() << ")";
  EXPECT_GE(conversations()["conversations"].size(), 12u);
  EXPECT_GE(template_names().size(), 3u);
}

TEST_P(TemplateGolden, MatchesTransformers) {
  const Pair& p = GetParam();
  const ojson* g = goldens();
  ASSERT_NE(g, nullptr) << "tests/template/goldens.json is missing: run python3 tools/template/make_goldens.py";
  ASSERT_TRUE(g->contains(p.tmpl) && (*g)[p.tmpl].contains(p.conversation))
      << "no golden for " << p.tmpl << " / " << p.conversation << ": regenerate goldens.json";
  const ojson& want = (*g)[p.tmpl][p.conversation];
  const gdn::ChatTemplate tmpl =
      gdn::ChatTemplate::compile(read(kDir + "/" + p.tmpl + "_chat_template.jinja"), p.tmpl + "_chat_template.jinja");
  try {
    const std::string got = gdn::render_chat_request(tmpl, request_of(p.conversation));
    ASSERT_TRUE(want.contains("text")) << "transformers raised " << want.value("error_type", "") << ": "
                                       << want.value("error", "") << "\nbut we rendered:\n" << got;
    EXPECT_EQ(got, want["text"].get<std::string>());
  } catch (const gdn::TemplateError& e) {
    ASSERT_TRUE(want.contains("error")) << "we raised " << e.what() << "\nbut transformers rendered:\n" << want["text"];
    const std::string type = want.value("error_type", "");
    EXPECT_EQ(e.python_type(), type) << e.what();
    if (message_is_reproduced(type)) {
      EXPECT_EQ(e.message(), want["error"].get<std::string>());
    }
    if (type == "TemplateError") {  // raise_exception(): what() is the message itself
      EXPECT_EQ(std::string(e.what()), want["error"].get<std::string>());
    }
  } catch (const gdn::InputError& e) {  // request-level errors (e.g. continue_final_message)
    ASSERT_TRUE(want.contains("error")) << "we raised " << e.what() << "\nbut transformers rendered:\n" << want["text"];
  }
}

INSTANTIATE_TEST_SUITE_P(AllTemplatesAndConversations, TemplateGolden, ::testing::ValuesIn(all_pairs()),
                         [](const ::testing::TestParamInfo<Pair>& info) {
                           return info.param.tmpl + "__" + info.param.conversation;
                         });
GTEST_ALLOW_UNINSTANTIATED_PARAMETERIZED_TEST(TemplateGolden);
