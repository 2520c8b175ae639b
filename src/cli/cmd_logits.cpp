// gdnserve logits --model DIR --tokens 1,2,3 [--prefill N | --chunk N] [--backend auto|cuda|cpu] --out FILE
// Writes float32 little-endian logits for every input position, row-major [n_tokens, vocab].
#include <cstdio>
#include <fstream>
#include <memory>

#include "cli/cli.h"
#include "core/error.h"
#include "core/thread_pool.h"
#include "model/qwen35_model.h"
#ifdef GDN_HAVE_CUDA
#include "runtime/cuda/gpu_generate.h"
#endif

namespace gdn {

namespace {

struct LogitsArgs {
  std::string model, tokens, out, backend = "auto", kv_dtype = "bf16";
  int64_t prefill = -1, chunk = -1;
  int threads = 0;
  std::string activations = "declared";
};

void run_logits(const LogitsArgs& a) {
  const bool cuda = use_cuda_backend(a.backend);
  const std::vector<int32_t> ids = parse_id_list(a.tokens, "--tokens");
  const int64_t n = int64_t(ids.size());
  if (a.prefill > n) fail_input("--prefill {} is larger than the {} tokens given", a.prefill, n);
  if (a.chunk == 0) fail_input("--chunk must be at least 1");

  // Segments fed to the model in order: [begin, end).
  std::vector<std::pair<int64_t, int64_t>> segments;
  if (a.prefill >= 0) {
    if (a.prefill > 0) segments.push_back({0, a.prefill});
    for (int64_t i = a.prefill; i < n; ++i) segments.push_back({i, i + 1});
  } else {
    const int64_t step = a.chunk > 0 ? a.chunk : n;
    for (int64_t i = 0; i < n; i += step) segments.push_back({i, std::min(n, i + step)});
  }

  std::vector<float> logits;
  int64_t V = 0;
  if (cuda) {
#ifdef GDN_HAVE_CUDA
    cuda::GpuRunOptions o;
    o.activations = activation_mode(a.activations);
    o.kv_dtype = cuda::parse_kv_dtype(a.kv_dtype);
    o.max_context = int(std::max<int64_t>(n, 64));
    o.prefill_chunk = int(std::clamp<int64_t>(n, 1, 2048));
    cuda::GpuSession s = cuda::open_gpu_session(a.model, o);
    V = s.model->config().vocab_size;
    logits = cuda::logits_gpu(s, ids, segments);
#endif
  } else {
    auto model = Qwen35Model::load(a.model, activation_mode(a.activations));
    V = model->config().vocab_size;
    validate_token_ids(ids, V);
    ThreadPool pool(a.threads);
    SequenceState st = model->new_state();
    logits.resize(size_t(n * V));
    for (auto [b, e] : segments)
      model->forward(std::span<const int32_t>(ids.data() + b, size_t(e - b)), st,
                     {logits.data() + b * V, true, nullptr}, pool);
  }

  std::ofstream f(a.out, std::ios::binary | std::ios::trunc);
  if (!f) fail_input("--out: cannot create {}", a.out);
  static_assert(std::endian::native == std::endian::little, "logits files are little-endian");
  f.write(reinterpret_cast<const char*>(logits.data()), std::streamsize(logits.size() * sizeof(float)));
  if (!f) fail_input("--out: write to {} failed", a.out);
  std::fprintf(stderr, "wrote logits [%lld, %lld] float32 to %s (%zu forward calls, %s backend)\n", (long long)n,
               (long long)V, a.out.c_str(), segments.size(), cuda ? "cuda" : "cpu");
}

}  // namespace

void add_logits_command(CLI::App& app) {
  auto args = std::make_shared<LogitsArgs>();
  CLI::App* c = app.add_subcommand("logits", "Write the logits of every input position to a float32 file");
  c->add_option("--model", args->model, "Model directory (config.json + *.safetensors)")->required();
  c->add_option("--tokens", args->tokens, "Comma-separated input token ids")->required();
  auto* pre = c->add_option("--prefill", args->prefill, "First N tokens in one forward, then one at a time");
  auto* chk = c->add_option("--chunk", args->chunk, "Feed the prompt in consecutive chunks of N tokens");
  pre->excludes(chk);
  chk->excludes(pre);
  c->add_option("--backend", args->backend, "Compute backend: auto (the GPU when one is present), cuda or cpu")
      ->check(CLI::IsMember({"auto", "cpu", "cuda"}));
  c->add_option("--kv-cache-dtype", args->kv_dtype, "GPU KV cache: bf16 or fp8 (E4M3, checkpoint scales)");
  c->add_option("--out", args->out, "Output file (float32 little-endian, [n_tokens, vocab])")->required();
  c->add_option("--threads", args->threads, "CPU threads (default: all cores)");
  c->add_option("--activations", args->activations,
                "Quantized checkpoints: declared (W8A8/W4A4 as the checkpoint says) or bf16 (weight-only)");
  c->callback([args] { run_logits(*args); });
}

}  // namespace gdn
