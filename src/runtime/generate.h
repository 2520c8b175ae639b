// Single-sequence generation loop on the CPU reference: one prefill forward over the prompt,
// then one decode step per new token, sampling each with a Sampler.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <vector>

#include "model/qwen35_model.h"
#include "runtime/sampler.h"

namespace gdn {
class ThreadPool;

struct GenerateOptions {
  int64_t max_tokens = 16;
  SamplingParams sampling;
  std::vector<int32_t> stop_ids;  // generation stops after emitting any of these (eos ids go here)
  // When > 0, ids ≥ this are never sampled: the embedding table is padded past the ids the
  // tokenizer defines (248,320 rows for ~248,077 tokens in Qwen3.5), and those rows decode to nothing.
  int64_t sample_below = 0;
};

enum class FinishReason { Length, Stop };

struct GenerateResult {
  std::vector<int32_t> tokens;  // generated ids (including the stop id, when one ended it)
  FinishReason finish = FinishReason::Length;
  double prefill_seconds = 0, decode_seconds = 0;
};

// on_token (optional) sees each id as soon as it is sampled; returning false stops early.
GenerateResult generate(const Qwen35Model& model, const std::vector<int32_t>& prompt, const GenerateOptions& opts,
                        ThreadPool& pool, const std::function<bool(int32_t)>& on_token = {});

}  // namespace gdn
