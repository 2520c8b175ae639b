// From an OpenAI request to a prompt: the template variables (tool-call arguments parsed like
// vLLM does, reasoning under both names, tools/documents None when absent, kwargs at top level),
// continue_final_message, where the template comes from (--chat-template, chat_template.jinja,
// tokenizer_config.json string or named list), special tokens, and the `gdnserve render` CLI
// (exact bytes on stdout, template errors → message + exit code 2).
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>

#include "template/chat_request.h"
#include "template/chat_template.h"
#include "test_util.h"

namespace {

namespace fs = std::filesystem;
using ojson = nlohmann::ordered_json;

const std::string kQwen35 = std::string(GDN_FIXTURES_DIR) + "/../template/qwen35_chat_template.jinja";

ojson req(const char* json) { return ojson::parse(json); }

std::string render(const char* tmpl, const char* request) {
  return gdn::render_chat_request(gdn::ChatTemplate::compile(tmpl), req(request));
}

// A scratch model directory, removed at the end of the test.
struct TempDir {
  TempDir() {
    path = fs::temp_directory_path() / ("gdn_tpl_" + std::to_string(::getpid()) + "_" + std::to_string(counter++));
    fs::create_directories(path);
  }
  ~TempDir() { fs::remove_all(path); }
  void write(const std::string& name, const std::string& text) const {
    std::ofstream(path / name, std::ios::binary) << text;
  }
  std::string str() const { return path.string(); }
  fs::path path;
  static inline int counter = 0;
};

}  // namespace

TEST(TemplateChat, ToolCallArgumentsAreParsedLikeVllm) {
  const ojson ctx = gdn::chat_template_context(req(R"({"messages": [{"role": "assistant", "tool_calls": [
      {"function": {"name": "f", "arguments": "{\"b\": 1, \"a\": [true, null]}"}},
      {"function": {"name": "g", "arguments": ""}},
      {"function": {"name": "h"}},
      {"function": {"name": "i", "arguments": {"already": "parsed"}}}]}]})"));
  const ojson& calls = ctx["messages"][0]["tool_calls"];
  EXPECT_EQ(calls[0]["function"]["arguments"].dump(), R"({"b":1,"a":[true,null]})");  // key order kept
  EXPECT_EQ(calls[1]["function"]["arguments"], ojson::object());
  EXPECT_EQ(calls[2]["function"]["arguments"], ojson::object());
  EXPECT_EQ(calls[3]["function"]["arguments"]["already"], "parsed");
  EXPECT_EQ(ctx["messages"][0]["content"], "");  // null/missing content becomes ""
  EXPECT_THROW(gdn::chat_template_context(req(R"({"messages": [{"role": "assistant", "tool_calls": [
      {"function": {"name": "f", "arguments": "{not json"}}]}]})")),
               gdn::InputError);
}

// Requests are untrusted: JSON nested 100,000 deep (in the content, in a tool call's arguments
// string, in the tools) is an InputError naming where, not a stack overflow in the copies the
// rendering makes (found by fuzz/fuzz_chat_request.cpp). Nesting a real JSON schema needs is fine.
TEST(TemplateChat, DeeplyNestedRequestIsAnInputError) {
  const std::string deep = std::string(100000, '[') + std::string(100000, ']');
  auto expect_error = [](const std::string& body, const std::string& where) {
    try {
      gdn::chat_template_context(ojson::parse(body));
      ADD_FAILURE() << "accepted: " << where;
    } catch (const gdn::InputError& e) {
      EXPECT_NE(std::string(e.what()).find(where + ": JSON nested deeper than 256 levels"), std::string::npos)
          << e.what();
    }
  };
  expect_error(R"({"messages": [{"role": "user", "content": )" + deep + "}]}", "request");
  expect_error(R"({"messages": [{"role": "user", "content": "hi"}], "tools": [)" + deep + "]}", "request");
  const std::string args = ojson(R"({"a": )" + deep + "}").dump();  // a JSON string holding the deep object
  expect_error(R"({"messages": [{"role": "assistant", "tool_calls": [{"function": {"name": "f", "arguments": )" +
                   args + "}}]}]}",
               "request: messages[0].tool_calls[0].function.arguments");
  const std::string schema = std::string(100, '[') + std::string(100, ']');
  EXPECT_NO_THROW(gdn::render_chat_request(
      gdn::ChatTemplate::compile("{{ tools | length }}"),
      ojson::parse(R"({"messages": [{"role": "user", "content": "hi"}], "tools": [)" + schema + "]}")));
}

TEST(TemplateChat, ReasoningUnderBothNames) {
  const ojson ctx = gdn::chat_template_context(req(R"({"messages": [
      {"role": "assistant", "content": "a", "reasoning": "r1"},
      {"role": "assistant", "content": "b", "reasoning_content": "r2"},
      {"role": "user", "content": "c", "reasoning": "not for users"}]})"));
  EXPECT_EQ(ctx["messages"][0]["reasoning_content"], "r1");
  EXPECT_EQ(ctx["messages"][1]["reasoning"], "r2");
  EXPECT_FALSE(ctx["messages"][2].contains("reasoning_content"));
}

TEST(TemplateChat, TemplateVariables) {
  const char* probe =
      "{{ tools is none }} {{ documents is none }} {{ add_generation_prompt }} {{ enable_thinking }} "
      "{{ messages|length }} {{ bos_token is defined }}";
  EXPECT_EQ(render(probe, R"({"messages": [{"role": "user", "content": "x"}]})"), "True True True  1 False");
  EXPECT_EQ(render(probe, R"({"messages": [], "add_generation_prompt": false, "tools": [],
                              "chat_template_kwargs": {"enable_thinking": false, "messages": "ignored"}})"),
            "False True False False 0 False");
  gdn::SpecialTokens specials;
  specials.bos_token = "<s>";
  specials.eos_token = "</s>";
  EXPECT_EQ(gdn::render_chat_request(gdn::ChatTemplate::compile("{{ bos_token }}{{ eos_token }}"),
                                     req(R"({"messages": []})"), specials),
            "<s></s>");
  // a plain (key-sorted) nlohmann::json context works too
  EXPECT_EQ(gdn::ChatTemplate::compile("{{ b }}{{ a }}").render(nlohmann::json{{"a", 1}, {"b", "x"}}), "x1");
  EXPECT_THROW(gdn::chat_template_context(req(R"({"messages": "no"})")), gdn::InputError);
  EXPECT_THROW(gdn::chat_template_context(req(R"({"messages": [], "chat_template_kwargs": 3})")), gdn::InputError);
}

TEST(TemplateChat, ContinueFinalMessage) {
  const char* chatml =
      "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}"
      "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}";
  EXPECT_EQ(render(chatml, R"({"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Once upon"}],
                               "add_generation_prompt": false, "continue_final_message": true})"),
            "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\nOnce upon");
  // trailing spaces the template trims are cut too; the prefix as written is kept
  EXPECT_EQ(render("[{{ messages[-1].content|trim }}]",
                   R"({"messages": [{"role": "assistant", "content": "a b  "}], "add_generation_prompt": false,
                       "continue_final_message": true})"),
            "[a b");
  EXPECT_THROW(render(chatml, R"({"messages": [{"role": "assistant", "content": "x"}], "continue_final_message": true})"),
               gdn::InputError);  // add_generation_prompt defaults to true
  EXPECT_THROW(render("nothing", R"({"messages": [{"role": "assistant", "content": "x"}], "add_generation_prompt": false,
                                     "continue_final_message": true})"),
               gdn::InputError);  // the final message is not in the rendering
}

TEST(TemplateChat, TemplateSources) {
  TempDir dir;
  EXPECT_THROW(gdn::load_chat_template(dir.str()), gdn::InputError);  // nothing there
  dir.write("tokenizer_config.json", R"({"chat_template": [{"name": "tool_use", "template": "T"},
                                                          {"name": "default", "template": "D"}],
                                          "bos_token": null, "eos_token": {"content": "<|im_end|>", "lstrip": false}})");
  EXPECT_EQ(gdn::load_chat_template(dir.str()).render(ojson::object()), "D");
  const gdn::SpecialTokens s = gdn::load_special_tokens(dir.str());
  EXPECT_FALSE(s.bos_token.has_value());
  EXPECT_EQ(s.eos_token.value_or(""), "<|im_end|>");
  dir.write("tokenizer_config.json", R"({"chat_template": "from config", "bos_token": "<s>"})");
  EXPECT_EQ(gdn::load_chat_template(dir.str()).render(ojson::object()), "from config");
  EXPECT_EQ(gdn::load_special_tokens(dir.str()).bos_token.value_or(""), "<s>");
  dir.write("chat_template.jinja", "from jinja file\n");  // wins over tokenizer_config.json
  EXPECT_EQ(gdn::load_chat_template(dir.str()).render(ojson::object()), "from jinja file");
  dir.write("override.jinja", "{{ 'override' }}");
  EXPECT_EQ(gdn::load_chat_template(dir.str(), (dir.path / "override.jinja").string()).render(ojson::object()), "override");
  EXPECT_THROW(gdn::load_chat_template(dir.str(), (dir.path / "missing.jinja").string()), gdn::InputError);
  dir.write("tokenizer_config.json", R"({"chat_template": [{"name": "tool_use", "template": "T"}]})");
  fs::remove(dir.path / "chat_template.jinja");
  EXPECT_THROW(gdn::load_chat_template(dir.str()), gdn::InputError);  // a list without "default"
  // Entries of other shapes are skipped, not a JSON type error escaping as an internal error.
  dir.write("tokenizer_config.json", R"({"chat_template": [{"name": 5, "template": "T"}, 3,
                                                          {"name": "default", "template": "D"}]})");
  EXPECT_EQ(gdn::load_chat_template(dir.str()).render(ojson::object()), "D");
}

TEST(TemplateCli, RenderPrintsThePromptByteForByte) {
  TempDir dir;
  std::ifstream in(kQwen35, std::ios::binary);
  std::ostringstream tmpl;
  tmpl << in.rdbuf();
  dir.write("tokenizer_config.json", nlohmann::json{{"chat_template", tmpl.str()}}.dump());
  dir.write("request.json", R"({"messages": [{"role": "system", "content": "Be brief."},
                                            {"role": "user", "content": "Hi 👋"}],
                               "chat_template_kwargs": {"enable_thinking": false}})");
  const auto r = gdn::test::run_cli("render --model " + dir.str() + " --request " + (dir.path / "request.json").string());
  EXPECT_EQ(r.exit_code, 0) << r.out;
  EXPECT_EQ(r.stdout_text,
            "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi 👋<|im_end|>\n"
            "<|im_start|>assistant\n<think>\n\n</think>\n\n");  // no newline added at the end

  // --chat-template overrides the model's template
  dir.write("other.jinja", "{{ messages[-1].content }}");
  const auto o = gdn::test::run_cli("render --model " + dir.str() + " --request " + (dir.path / "request.json").string() +
                                    " --chat-template " + (dir.path / "other.jinja").string());
  EXPECT_EQ(o.exit_code, 0) << o.out;
  EXPECT_EQ(o.stdout_text, "Hi 👋");
}

TEST(TemplateCli, TemplateErrorsExitWithCode2) {
  TempDir dir;
  std::ifstream in(kQwen35, std::ios::binary);
  std::ostringstream tmpl;
  tmpl << in.rdbuf();
  dir.write("chat_template.jinja", tmpl.str());
  dir.write("late_system.json", R"({"messages": [{"role": "user", "content": "a"}, {"role": "system", "content": "b"}]})");
  const auto r = gdn::test::run_cli("render --model " + dir.str() + " --request " + (dir.path / "late_system.json").string());
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_EQ(r.stdout_text, "");
  EXPECT_NE(r.out.find("System message must be at the beginning."), std::string::npos) << r.out;

  dir.write("bad.json", "{not json");
  EXPECT_EQ(gdn::test::run_cli("render --model " + dir.str() + " --request " + (dir.path / "bad.json").string()).exit_code, 2);
  dir.write("broken.jinja", "{% if %}");
  const auto s = gdn::test::run_cli("render --model " + dir.str() + " --request " + (dir.path / "late_system.json").string() +
                                    " --chat-template " + (dir.path / "broken.jinja").string());
  EXPECT_EQ(s.exit_code, 2);
  EXPECT_NE(s.out.find("broken.jinja:1:7:"), std::string::npos) << s.out;
  TempDir empty;
  EXPECT_EQ(gdn::test::run_cli("render --model " + empty.str() + " --request " + (dir.path / "bad.json").string()).exit_code, 2);
}
