// Single-sequence driving of the GPU model for the CLI (generate, logits): chunked prefill, decode
// steps replaying CUDA graphs, sampling on the GPU with the semantics of runtime/sampler.h. The
// multi-sequence scheduler of the server drives GpuModel::step the same way with many sequences.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "model/cuda/gpu_model.h"
#include "runtime/generate.h"

namespace gdn::cuda {

struct GpuRunOptions {
  int prefill_chunk = 2048;   // tokens per prefill step (= GpuModelOptions::max_tokens)
  int max_context = 32768;
  KvDtype kv_dtype = KvDtype::Bf16;
  bool graphs = true;
  ActivationMode activations = ActivationMode::Declared;
};

KvDtype parse_kv_dtype(const std::string& name);  // bf16 | fp8; InputError otherwise

// A model and a cache for one sequence at a time.
struct GpuSession {
  std::unique_ptr<GpuModel> model;
  std::unique_ptr<GpuCache> cache;
};
GpuSession open_gpu_session(const std::string& model_dir, const GpuRunOptions& o, int64_t sample_below = 0);

// Generation with the contract of gdn::generate (runtime/generate.h).
GenerateResult generate_gpu(GpuSession& s, const std::vector<int32_t>& prompt, const GenerateOptions& opts,
                            const std::function<bool(int32_t)>& on_token = {});

// Logits of every position of `ids` (row-major [n, vocab]), fed in the given segments [begin, end)
// one step each (as the CPU `logits` command feeds the reference). Long segments are split into
// steps of at most the model's max_tokens / logits rows.
std::vector<float> logits_gpu(GpuSession& s, const std::vector<int32_t>& ids,
                              const std::vector<std::pair<int64_t, int64_t>>& segments);

}  // namespace gdn::cuda
