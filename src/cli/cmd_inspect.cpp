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
  double gpu_memory_gib = 0;  // 0 = no budget section
  int64_t context = 32768;    // tokens per sequence for the concurrency estimate
};

std::string layer_pattern(const Qwen35Config& c) {
  std::string s;
  for (auto k : c.layer_kinds) s += k == LayerKind::FullAttention ? 'A' : 'L';
  return s;
}

// What fits on a GPU of `gib` GiB after the weights, counted the way gdnserve's GPU engine
// allocates it (model/cuda/gpu_cache): KV in blocks of 64 tokens for every attention layer plus the
// MTP head's own KV layer, and per sequence a DeltaNet state slot (fp32 recurrent and conv state).
// Activations and workspaces come on top (the engine measures them at start: ~4 GB for 8K-token
// steps of the 27B).
constexpr int64_t kKvBlockTokens = 64;  // == cuda::kKvBlockTokens (the CLI does not depend on CUDA)

nlohmann::ordered_json kv_budget(const Qwen35Config& c, int64_t mtp_layers, int64_t weight_bytes, double gib,
                                 int64_t context) {
  const int64_t state = c.deltanet_state_bytes(4);
  const int64_t kv_layers = c.num_attention_layers() + mtp_layers;
  const int64_t blocks_per_seq = (context + kKvBlockTokens - 1) / kKvBlockTokens;
  nlohmann::ordered_json j = {{"gpu_memory_bytes", int64_t(gib * double(1ull << 30))},
                              {"weight_bytes", weight_bytes},
                              {"context_tokens", context},
                              {"kv_layers", kv_layers},
                              {"kv_block_tokens", kKvBlockTokens},
                              {"deltanet_state_bytes_per_sequence", state}};
  const int64_t free_bytes = j["gpu_memory_bytes"].get<int64_t>() - weight_bytes;
  j["free_after_weights_bytes"] = free_bytes;
  for (const auto& [name, elem] : {std::pair{"bf16", 2}, std::pair{"fp8", 1}}) {
    const int64_t per_tok = kv_layers * 2 * c.num_kv_heads * c.head_dim * elem;
    const int64_t block = per_tok * kKvBlockTokens;
    const int64_t tokens = free_bytes > state ? (free_bytes - state) / block * kKvBlockTokens : 0;
    const int64_t seqs = free_bytes > 0 ? free_bytes / (state + blocks_per_seq * block) : 0;
    j[std::string("kv_") + name] = {{"bytes_per_token", per_tok}, {"max_tokens", tokens}, {"max_sequences", seqs}};
  }
  return j;
}

nlohmann::ordered_json describe(const Qwen35Model& m) {
  const Qwen35Config& c = m.config();
  const ModelWeights& w = m.weights();
  nlohmann::ordered_json groups = nlohmann::ordered_json::array();
  int64_t params = 0, bytes = 0, mtp_params = 0, mtp_bytes = 0;
  for (const auto& g : w.groups) {
    const int64_t gb = g.bytes();
    groups.push_back({{"group", g.group}, {"precision", g.precisions}, {"params", g.params}, {"bytes", gb},
                      {"bytes_by_dtype", g.bytes_by_dtype}});
    if (g.group == "MTP") {
      mtp_params += g.params;
      mtp_bytes += gb;
    } else if (g.group.rfind("vision", 0) != 0) {
      params += g.params;
      bytes += gb;
    }
  }
  return {
      {"model_dir", m.checkpoint().dir()},
      {"model_type", c.model_type},
      {"architecture", c.architecture},
      {"layout", c.tensor_prefix == "model.language_model." ? "published (wrapper, text_config)" : "text-only"},
      {"quantization", c.quant.layout_name()},
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
      {"kv_cache_scales", w.has_kv_scales},
      {"kv_cache_fp8_declared", c.quant.kv_cache_fp8()},
      {"mtp_parameters", mtp_params},
      {"mtp_bytes", mtp_bytes},
      {"tensor_groups", groups},
      {"skipped_tensors", w.skipped.size()},
      {"deltanet_state_bytes_per_sequence", c.deltanet_state_bytes(4)},
      {"kv_bytes_per_token_bf16", c.kv_bytes_per_token(2)},
      {"kv_bytes_per_token_fp8", c.kv_bytes_per_token(1)},
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
  std::printf("quantization %s\n", d["quantization"].get<std::string>().c_str());
  std::printf("layers       %lld: %lld Gated DeltaNet (L) + %lld gated attention (A)\n",
              (long long)d["num_layers"], (long long)d["deltanet_layers"], (long long)d["attention_layers"]);
  std::printf("pattern      %s\n", d["layer_pattern"].get<std::string>().c_str());
  std::printf("hidden %lld, ffn %lld, vocab %lld, attention %s, deltanet %s\n", (long long)d["hidden_size"],
              (long long)d["intermediate_size"], (long long)d["vocab_size"], d["attention"].dump().c_str(),
              d["deltanet"].dump().c_str());
  std::printf("parameters   %lld (%s), MTP head: %s (%lld parameters)\n", (long long)d["parameters"],
              human(d["weight_bytes"]).c_str(), d["mtp_head"].get<bool>() ? "yes" : "no",
              (long long)d["mtp_parameters"]);
  std::printf("\nWeight breakdown\n%-16s %14s %12s  %-28s %s\n", "component", "parameters", "bytes", "precision",
              "stored dtypes");
  for (const auto& g : d["tensor_groups"]) {
    std::string dts, prec;
    for (auto it = g["bytes_by_dtype"].begin(); it != g["bytes_by_dtype"].end(); ++it)
      dts += (dts.empty() ? "" : ", ") + it.key() + " " + human(it.value());
    for (const auto& p : g["precision"]) prec += (prec.empty() ? "" : " + ") + p.get<std::string>();
    std::printf("%-16s %14lld %12s  %-28s %s\n", g["group"].get<std::string>().c_str(), (long long)g["params"],
                human(g["bytes"]).c_str(), prec.c_str(), dts.c_str());
  }
  std::printf("\nKV-cache scales in the checkpoint: %s%s\n", d["kv_cache_scales"].get<bool>() ? "yes" : "no",
              d["kv_cache_fp8_declared"].get<bool>() ? " (config declares an FP8 KV cache)" : "");
  std::printf("\nper-sequence DeltaNet state (fp32 recurrent + fp32 conv): %s\n",
              human(d["deltanet_state_bytes_per_sequence"]).c_str());
  std::printf("KV cache per token: %s in BF16, %s in FP8\n", human(d["kv_bytes_per_token_bf16"]).c_str(),
              human(d["kv_bytes_per_token_fp8"]).c_str());
  if (d.contains("kv_budget")) {
    const auto& b = d["kv_budget"];
    std::printf("\nKV budget on %s: %s free after %s of weights (KV for %lld layers incl. MTP, in %lld-token "
                "blocks; activations not included)\n",
                human(b["gpu_memory_bytes"]).c_str(), human(b["free_after_weights_bytes"]).c_str(),
                human(b["weight_bytes"]).c_str(), (long long)b["kv_layers"], (long long)b["kv_block_tokens"]);
    for (const char* k : {"kv_bf16", "kv_fp8"})
      std::printf("  %s KV: %lld tokens, or %lld sequences of %lld tokens (+%s DeltaNet state each)\n",
                  k + 3, (long long)b[k]["max_tokens"], (long long)b[k]["max_sequences"],
                  (long long)b["context_tokens"], human(b["deltanet_state_bytes_per_sequence"]).c_str());
  }
  if (d["skipped_tensors"].get<size_t>() > 0)
    std::printf("skipped %zu tensors outside the language model (vision tower)\n", d["skipped_tensors"].get<size_t>());
}

}  // namespace

void add_inspect_command(CLI::App& app) {
  auto a = std::make_shared<InspectArgs>();
  CLI::App* c = app.add_subcommand("inspect", "Describe a checkpoint: architecture, tensors, memory");
  c->add_option("--model", a->model, "Model directory")->required();
  c->add_flag("--json", a->json, "Print JSON");
  c->add_option("--gpu-memory", a->gpu_memory_gib, "GPU memory in GiB: how much KV cache and how many sequences fit");
  c->add_option("--context", a->context, "Tokens per sequence for the --gpu-memory estimate (default 32768)");
  c->callback([a] {
    auto m = Qwen35Model::load(a->model);
    auto d = describe(*m);
    if (a->gpu_memory_gib > 0)
      d["kv_budget"] = kv_budget(m->config(), m->has_mtp() ? int64_t(m->weights().mtp->layers.size()) : 0,
                                 d["weight_bytes"].get<int64_t>() + d["mtp_bytes"].get<int64_t>(), a->gpu_memory_gib,
                                 a->context);
    if (a->json) std::printf("%s\n", d.dump(2).c_str());
    else print_text(d);
  });
}

}  // namespace gdn
