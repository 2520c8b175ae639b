// gdnserve make-demo-model --out DIR [--preset demo|mid] [--seed S]
#include <cstdio>
#include <memory>

#include "cli/cli.h"
#include "model/demo_checkpoint.h"

namespace gdn {

void add_make_demo_command(CLI::App& app) {
  struct Args {
    std::string out, preset = "demo";
    uint64_t seed = 20261122;
  };
  auto a = std::make_shared<Args>();
  CLI::App* c = app.add_subcommand("make-demo-model",
                                   "Write a small RANDOM-weight checkpoint of the real Qwen3.5 architecture");
  c->add_option("--out", a->out, "Directory to write")->required();
  c->add_option("--preset", a->preset, "demo (default) or mid (a mid-size config for benchmarks)");
  c->add_option("--seed", a->seed, "Random seed of the weights");
  c->callback([a] {
    write_demo_checkpoint(a->out, demo_preset(a->preset), a->seed);
    std::printf("wrote a random-weight %s checkpoint to %s\n", a->preset.c_str(), a->out.c_str());
  });
}

}  // namespace gdn
