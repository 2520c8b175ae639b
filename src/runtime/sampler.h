// Token sampling on the CPU: greedy and stochastic with the usual serving knobs.
//
// Order of operations (the one vLLM and transformers use): penalties on the raw logits
// (repetition, then frequency and presence), temperature, then top-k, top-p and min-p filtering of
// the resulting distribution, then a draw from a seeded generator. Temperature 0 means greedy
// (argmax after penalties; ties go to the lowest id).
#pragma once

#include <cstdint>
#include <optional>
#include <random>
#include <span>
#include <vector>

namespace gdn {

struct SamplingParams {
  float temperature = 1.0f;         // 0 = greedy
  int top_k = 0;                    // 0 or < 0 = off
  float top_p = 1.0f;               // 1 = off
  float min_p = 0.0f;               // 0 = off
  float presence_penalty = 0.0f;    // subtracted once from every token that appeared in the output
  float frequency_penalty = 0.0f;   // subtracted × count of the token in the output
  float repetition_penalty = 1.0f;  // HF/CTRL style over prompt and output: l>0 ? l/p : l*p
  std::optional<uint64_t> seed;     // nullopt = nondeterministic
};

// Throws InputError naming the parameter when a value is out of range
// (temperature < 0, top_p ∉ (0, 1], min_p ∉ [0, 1], repetition_penalty ≤ 0, non-finite values).
void validate(const SamplingParams& p);

class Sampler {
 public:
  explicit Sampler(const SamplingParams& params);

  // Picks the next token. `logits` is modified in place (penalties, temperature).
  // `prompt` and `output` are the ids so far (penalties read them).
  int32_t sample(std::span<float> logits, std::span<const int32_t> prompt, std::span<const int32_t> output);

  const SamplingParams& params() const { return params_; }

 private:
  SamplingParams params_;
  std::mt19937_64 rng_;
  std::vector<int32_t> order_;  // scratch: candidate ids
  std::vector<float> probs_;    // scratch
  std::vector<uint32_t> counts_;
};

}  // namespace gdn
