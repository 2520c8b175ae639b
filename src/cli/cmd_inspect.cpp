// gdnserve inspect --model DIR [--json]: architecture, layer pattern, tensor groups (dtype, bytes),
// parameter count, per-sequence DeltaNet state bytes, KV bytes per token.
#include <cstdio>
#include <memory>
#include <nlohmann/json.hpp>

#include "cli/cli.h"
#include "model/qwen35_model.h"

namespace gdn {

namespace {

struct InspectArgs {
  std::string model;
  bool json = false;
};

std::string layer_pattern(const Qwen35Config& c) {
  std::string s;
  for (auto k : c.layer_kinds) s += k == LayerKind::FullAttention ? 'A' : 'L';
  return s;
}

nlohmann::ordered_json describe(const Qwen35Model& m) {
  const Qwen35Config& c = m.config();
  const ModelWeights& w = m.weights();
  nlohmann::ordered_json groups = nlohmann::ordered_json::array();
  int64_t params = 0, bytes = 0, mtp_params = 0;
  for (const auto& g : w.groups) {
    int64_t gb = 0;
    for (const auto& [dt, b] : g.bytes_by_dtype) gb += b;
    groups.push_back({{"group", g.group}, {"params", g.params}, {"bytes", gb}, {"bytes_by_dtype", g.bytes_by_dtype}});
    if (g.group == "MTP") {
      mtp_params += g.params;
    } else {
      params += g.params;
      bytes += gb;
    }
  }
  return {
      {"model_dir", m.checkpoint().dir()},
      {"model_type", c.model_type},
      {"architecture", c.architecture},
      {"layout", c.tensor_prefix == "model.language_model." ? "published (wrapper, text_config)" : "text-only"},
      {"hidden_size", c.hidden_size},
      {"intermediate_size", c.intermediate_size},
      {"vocab_size", c.vocab_size},
      {"num_layers", c.num_layers},
      {"layer_pattern", layer_pattern(c)},
      {"deltanet_layers", c.num_linear_layers()},
      {"attention_layers", c.num_attention_layers()},
      {"attention", {{"heads", c.num_heads}, {"kv_heads", c.num_kv_heads}, {"head_dim", c.head_dim},
                     {"rotary_dim", c.rotary_dim}, {"rope_theta", c.rope_theta}}},
      {"deltanet", {{"key_heads", c.linear_key_heads}, {"value_heads", c.linear_value_heads},
                    {"key_head_dim", c.linear_key_dim}, {"value_head_dim", c.linear_value_dim},
                    {"conv_kernel", c.conv_kernel}}},
      {"tie_word_embeddings", c.tie_word_embeddings},
      {"eos_token_ids", c.eos_token_ids},
      {"parameters", params},
      {"weight_bytes", bytes},
      {"mtp_head", m.has_mtp()},
      {"mtp_parameters", mtp_params},
      {"tensor_groups", groups},
      {"skipped_tensors", w.skipped.size()},
      {"deltanet_state_bytes_per_sequence", c.deltanet_state_bytes(4)},
      {"kv_bytes_per_token_bf16", c.kv_bytes_per_token(2)},
      {"kv_bytes_per_token_fp32_cpu", c.kv_bytes_per_token(4)},
  };
}

std::string human(int64_t b) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double v = double(b);
  int u = 0;
  while (v >= 1024 && u < 4) v /= 1024, ++u;
  char buf[32];
  std::snprintf(buf, sizeof buf, u ? "%.2f %s" : "%.0f %s", v, units[u]);
  return buf;
}

void print_text(const nlohmann::ordered_json& d) {
  std::printf("model        %s\n", d["model_dir"].get<std::string>().c_str());
  std::printf("architecture %s (%s), layout %s\n", d["architecture"].get<std::string>().c_str(),
              d["model_type"].get<std::string>().c_str(), d["layout"].get<std::string>().c_str());
  std::printf("layers       %lld: %lld Gated DeltaNet (L) + %lld gated attention (A)\n",
              (long long)d["num_layers"], (long long)d["deltanet_layers"], (long long)d["attention_layers"]);
  std::printf("pattern      %s\n", d["layer_pattern"].get<std::string>().c_str());
  std::printf("hidden %lld, ffn %lld, vocab %lld, attention %s, deltanet %s\n", (long long)d["hidden_size"],
              (long long)d["intermediate_size"], (long long)d["vocab_size"], d["attention"].dump().c_str(),
              d["deltanet"].dump().c_str());
  std::printf("parameters   %lld (%s), MTP head: %s (%lld parameters)\n", (long long)d["parameters"],
              human(d["weight_bytes"]).c_str(), d["mtp_head"].get<bool>() ? "yes" : "no",
              (long long)d["mtp_parameters"]);
  std::printf("\n%-14s %14s %12s  %s\n", "group", "parameters", "bytes", "dtypes");
  for (const auto& g : d["tensor_groups"]) {
    std::string dts;
    for (auto it = g["bytes_by_dtype"].begin(); it != g["bytes_by_dtype"].end(); ++it)
      dts += (dts.empty() ? "" : ", ") + it.key() + " " + human(it.value());
    std::printf("%-14s %14lld %12s  %s\n", g["group"].get<std::string>().c_str(), (long long)g["params"],
                human(g["bytes"]).c_str(), dts.c_str());
  }
  std::printf("\nper-sequence DeltaNet state (fp32 recurrent + fp32 conv): %s\n",
              human(d["deltanet_state_bytes_per_sequence"]).c_str());
  std::printf("KV cache per token: %s in BF16\n", human(d["kv_bytes_per_token_bf16"]).c_str());
  if (d["skipped_tensors"].get<size_t>() > 0)
    std::printf("skipped %zu tensors outside the language model (vision tower)\n", d["skipped_tensors"].get<size_t>());
}

}  // namespace

void add_inspect_command(CLI::App& app) {
  auto a = std::make_shared<InspectArgs>();
  CLI::App* c = app.add_subcommand("inspect", "Describe a checkpoint: architecture, tensors, memory");
  c->add_option("--model", a->model, "Model directory")->required();
  c->add_flag("--json", a->json, "Print JSON");
  c->callback([a] {
    auto m = Qwen35Model::load(a->model);
    const auto d = describe(*m);
    if (a->json) std::printf("%s\n", d.dump(2).c_str());
    else print_text(d);
  });
}

}  // namespace gdn
