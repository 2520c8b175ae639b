// gdnserve render --model DIR --request FILE.json [--chat-template FILE]: prints the prompt the
// model's chat template makes of an OpenAI chat-completions request body, byte for byte (no
// newline added), exactly as transformers' apply_chat_template(tokenize=False) would.
// A template error (raise_exception, syntax, runtime) prints its message and exits with code 2.
#include <cstdio>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>

#include "cli/cli.h"
#include "core/error.h"
#include "template/chat_request.h"

namespace gdn {

namespace {

struct RenderArgs {
  std::string model, request, chat_template;
};

nlohmann::ordered_json read_request(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) fail_input("--request: cannot read {}", path);
  std::ostringstream ss;
  ss << f.rdbuf();
  auto j = nlohmann::ordered_json::parse(ss.str(), nullptr, false);
  if (j.is_discarded()) fail_input("--request: {} is not valid JSON", path);
  return j;
}

}  // namespace

void add_render_command(CLI::App& app) {
  auto a = std::make_shared<RenderArgs>();
  CLI::App* c = app.add_subcommand("render", "Render a chat-completions request with the model's chat template");
  c->add_option("--model", a->model, "Model directory (chat_template.jinja or tokenizer_config.json)")->required();
  c->add_option("--request", a->request, "JSON file with an OpenAI chat-completions request body")->required();
  c->add_option("--chat-template", a->chat_template, "Jinja template file to use instead of the model's");
  c->callback([a] {
    const ChatTemplate tmpl = load_chat_template(a->model, a->chat_template);
    const std::string text = render_chat_request(tmpl, read_request(a->request), load_special_tokens(a->model));
    std::fwrite(text.data(), 1, text.size(), stdout);
    std::fflush(stdout);
  });
}

}  // namespace gdn
