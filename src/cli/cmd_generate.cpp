// gdnserve generate --model DIR (--tokens 1,2,3 | --prompt TEXT [--chat]) --max-tokens N [sampling flags] [--ids]
// With --ids (or --tokens and no tokenizer) prints the generated ids comma-separated on one line;
// otherwise streams the decoded text as it is generated. Timing goes to stderr.
#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <memory>

#include "cli/cli.h"
#include "core/error.h"
#include "core/thread_pool.h"
#include "runtime/generate.h"
#include "template/chat_request.h"
#include "tokenizer/tokenizer.h"
#ifdef GDN_HAVE_CUDA
#include "runtime/cuda/gpu_generate.h"
#endif

namespace gdn {

namespace {

SamplingParams greedy_defaults() {
  SamplingParams p;
  p.temperature = 0.f;  // the CLI is greedy unless asked otherwise
  return p;
}

struct GenerateArgs {
  std::string model, tokens, stop_ids, prompt, system, chat_template;
  bool chat = false;
  int64_t max_tokens = 16;
  SamplingParams sampling = greedy_defaults();
  int64_t seed = -1;
  bool ids = false, ignore_eos = false;
  int threads = 0;
  std::string activations = "declared";
  std::string backend = "auto", kv_dtype = "bf16";
  int64_t max_context = 32768;
  bool no_graphs = false;
};

std::unique_ptr<Tokenizer> load_tokenizer(const std::string& dir) {
  const std::string path = dir + "/tokenizer.json";
  if (!std::filesystem::exists(path))
    fail_input("{}: no tokenizer.json: give token ids with --tokens instead of --prompt", dir);
  return Tokenizer::load(path);
}

// --prompt TEXT, rendered through the chat template first with --chat.
std::string prompt_text(const GenerateArgs& a) {
  if (!a.chat) return a.prompt;
  nlohmann::ordered_json req = {{"messages", nlohmann::ordered_json::array()}};
  if (!a.system.empty()) req["messages"].push_back({{"role", "system"}, {"content", a.system}});
  req["messages"].push_back({{"role", "user"}, {"content", a.prompt}});
  return render_chat_request(load_chat_template(a.model, a.chat_template), req, load_special_tokens(a.model));
}

void run_generate(const GenerateArgs& a) {
  if (a.tokens.empty() == a.prompt.empty()) fail_input("give exactly one of --tokens and --prompt");
  if (a.chat && a.prompt.empty()) fail_input("--chat needs --prompt");
  if (a.max_tokens < 0) fail_input("--max-tokens must not be negative");
  std::unique_ptr<Tokenizer> tok;
  std::vector<int32_t> prompt;
  if (!a.prompt.empty()) {
    tok = load_tokenizer(a.model);
    prompt = tok->encode(prompt_text(a));
  } else {
    prompt = parse_id_list(a.tokens, "--tokens");
  }
  const bool cuda = use_cuda_backend(a.backend);
  std::unique_ptr<Qwen35Model> model;
  const Qwen35Config cfg = load_qwen35_config(a.model);
  GenerateOptions opts;
  opts.max_tokens = a.max_tokens;
  opts.sampling = a.sampling;
  if (a.seed >= 0) opts.sampling.seed = uint64_t(a.seed);
  if (!a.ignore_eos) opts.stop_ids = cfg.eos_token_ids;
  if (!a.stop_ids.empty())
    for (int32_t id : parse_id_list(a.stop_ids, "--stop-ids")) opts.stop_ids.push_back(id);

  if (tok) opts.sample_below = int64_t(tok->vocab_size());
  ThreadPool pool(a.threads);
  const bool text_out = tok && !a.ids;
  std::unique_ptr<StreamDecoder> stream;
  if (text_out) stream = std::make_unique<StreamDecoder>(*tok, /*skip_special=*/true);
  auto on_token = [&](int32_t id) {
    if (stream) {
      const std::string piece = stream->push(id);
      std::fwrite(piece.data(), 1, piece.size(), stdout);
      std::fflush(stdout);
    }
    return true;
  };
  GenerateResult r;
  if (cuda) {
#ifdef GDN_HAVE_CUDA
    cuda::GpuRunOptions o;
    o.activations = activation_mode(a.activations);
    o.kv_dtype = cuda::parse_kv_dtype(a.kv_dtype);
    if (a.max_context < 64) fail_input("--max-context must be at least 64");
    o.max_context = int(std::min<int64_t>(a.max_context, int64_t(1) << 30));
    o.graphs = !a.no_graphs;
    cuda::GpuSession s = cuda::open_gpu_session(a.model, o, opts.sample_below);
    r = cuda::generate_gpu(s, prompt, opts, on_token);
#endif
  } else {
    model = Qwen35Model::load(a.model, activation_mode(a.activations));
    r = generate(*model, prompt, opts, pool, on_token);
  }
  if (text_out) {
    const std::string rest = stream->flush();
    std::fwrite(rest.data(), 1, rest.size(), stdout);
    std::printf("\n");
  } else {
    std::string line;
    for (size_t i = 0; i < r.tokens.size(); ++i) line += (i ? "," : "") + std::to_string(r.tokens[i]);
    std::printf("%s\n", line.c_str());
  }
  const double decode_tps = r.tokens.size() > 1 ? double(r.tokens.size() - 1) / r.decode_seconds : 0.0;
  std::fprintf(stderr, "prompt %zu tokens in %.3f s (%.1f tok/s); generated %zu tokens, decode %.1f tok/s; finish: %s\n",
               prompt.size(), r.prefill_seconds, double(prompt.size()) / r.prefill_seconds, r.tokens.size(),
               decode_tps, r.finish == FinishReason::Stop ? "stop" : "length");
}

}  // namespace

void add_generate_command(CLI::App& app) {
  auto a = std::make_shared<GenerateArgs>();
  CLI::App* c = app.add_subcommand("generate", "Generate tokens after a prompt");
  c->add_option("--model", a->model, "Model directory")->required();
  c->add_option("--tokens", a->tokens, "Comma-separated prompt token ids");
  c->add_option("--prompt", a->prompt, "Prompt text (tokenized with DIR/tokenizer.json)");
  c->add_flag("--chat", a->chat, "Render --prompt as a user turn through the model's chat template first");
  c->add_option("--system", a->system, "With --chat: a system message");
  c->add_option("--chat-template", a->chat_template, "With --chat: a Jinja template file instead of the model's");
  c->add_option("--max-tokens", a->max_tokens, "Maximum number of new tokens");
  c->add_option("--temperature", a->sampling.temperature, "Sampling temperature; 0 = greedy (default)");
  c->add_option("--top-k", a->sampling.top_k, "Keep the k most likely tokens (0 = off)");
  c->add_option("--top-p", a->sampling.top_p, "Nucleus sampling threshold (1 = off)");
  c->add_option("--min-p", a->sampling.min_p, "Drop tokens below min_p × the top probability (0 = off)");
  c->add_option("--presence-penalty", a->sampling.presence_penalty, "OpenAI presence penalty");
  c->add_option("--frequency-penalty", a->sampling.frequency_penalty, "OpenAI frequency penalty");
  c->add_option("--repetition-penalty", a->sampling.repetition_penalty, "HF repetition penalty (1 = off)");
  c->add_option("--seed", a->seed, "Random seed (reproducible sampling)");
  c->add_option("--stop-ids", a->stop_ids, "Extra comma-separated ids that end generation");
  c->add_flag("--ignore-eos", a->ignore_eos, "Do not stop on the model's eos ids");
  c->add_flag("--ids", a->ids, "Print generated token ids (comma-separated) instead of text");
  c->add_option("--threads", a->threads, "CPU threads (default: all cores)");
  c->add_option("--activations", a->activations,
                "Quantized checkpoints: declared (W8A8/W4A4 as the checkpoint says) or bf16 (weight-only)");
  c->add_option("--backend", a->backend, "Compute backend: auto (the GPU when one is present), cuda or cpu")
      ->check(CLI::IsMember({"auto", "cpu", "cuda"}));
  c->add_option("--kv-cache-dtype", a->kv_dtype, "GPU KV cache: bf16 or fp8 (E4M3, checkpoint scales)");
  c->add_option("--max-context", a->max_context, "GPU: longest prompt + output (sizes the block table)");
  c->add_flag("--no-cuda-graphs", a->no_graphs, "GPU: run decode steps eagerly instead of replaying CUDA graphs");
  c->callback([a] { run_generate(*a); });
}

}  // namespace gdn
