// gdnserve tokenize --model DIR --text-file F
//   prints the token ids of the file's bytes as a JSON array (no special tokens added; added
//   tokens such as <|im_start|> written in the text are recognised). F = "-" reads stdin.
// gdnserve detokenize --model DIR --ids 1,2,3 [--skip-special-tokens]
//   prints the decoded text, with no newline added.
// The tokenizer is DIR/tokenizer.json (or --model may name the tokenizer.json file itself).
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <sstream>

#include "cli/cli.h"
#include "core/error.h"
#include "tokenizer/tokenizer.h"

namespace gdn {

namespace {

struct TokenizeArgs {
  std::string model, text_file, ids;
  bool skip_special = false;
};

std::unique_ptr<Tokenizer> load_tokenizer(const std::string& model) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (fs::is_regular_file(model, ec)) return Tokenizer::load(model);
  if (!fs::is_directory(model, ec)) fail_input("--model: {} is not a directory", model);
  const std::string path = (fs::path(model) / "tokenizer.json").string();
  if (!fs::exists(path, ec)) fail_input("{}: no tokenizer.json in the model directory", path);
  return Tokenizer::load(path);
}

std::string read_text(const std::string& file) {
  std::ostringstream ss;
  if (file == "-") {
    ss << std::cin.rdbuf();
    return ss.str();
  }
  std::ifstream f(file, std::ios::binary);
  if (!f) fail_input("--text-file: cannot open {}", file);
  ss << f.rdbuf();
  if (f.bad()) fail_input("--text-file: read error on {}", file);
  return ss.str();
}

void run_tokenize(const TokenizeArgs& a) {
  const std::string text = read_text(a.text_file);
  const std::vector<int32_t> ids = load_tokenizer(a.model)->encode(text);
  std::string out = "[";
  for (size_t i = 0; i < ids.size(); ++i) (out += i ? "," : "") += std::to_string(ids[i]);
  out += "]\n";
  std::fwrite(out.data(), 1, out.size(), stdout);
}

void run_detokenize(const TokenizeArgs& a) {
  const std::vector<int32_t> ids = parse_id_list(a.ids, "--ids");
  const std::string text = load_tokenizer(a.model)->decode(ids, a.skip_special);
  std::fwrite(text.data(), 1, text.size(), stdout);
}

}  // namespace

void add_tokenize_command(CLI::App& app) {
  auto args = std::make_shared<TokenizeArgs>();
  CLI::App* c = app.add_subcommand("tokenize", "Print the token ids of a text file as a JSON array");
  c->add_option("--model", args->model, "Model directory with tokenizer.json (or the tokenizer.json file)")->required();
  c->add_option("--text-file", args->text_file, "Text to tokenize (bytes; - for stdin)")->required();
  c->callback([args] { run_tokenize(*args); });
}

void add_detokenize_command(CLI::App& app) {
  auto args = std::make_shared<TokenizeArgs>();
  CLI::App* c = app.add_subcommand("detokenize", "Print the text of comma-separated token ids");
  c->add_option("--model", args->model, "Model directory with tokenizer.json (or the tokenizer.json file)")->required();
  c->add_option("--ids", args->ids, "Comma-separated token ids")->required();
  c->add_flag("--skip-special-tokens", args->skip_special, "Leave out special tokens such as <|im_end|>");
  c->callback([args] { run_detokenize(*args); });
}

}  // namespace gdn
