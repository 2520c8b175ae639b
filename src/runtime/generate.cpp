#include "runtime/generate.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "core/thread_pool.h"

namespace gdn {

GenerateResult generate(const Qwen35Model& model, const std::vector<int32_t>& prompt, const GenerateOptions& opts,
                        ThreadPool& pool, const std::function<bool(int32_t)>& on_token) {
  validate(opts.sampling);
  if (prompt.empty()) fail_input("the prompt is empty: give at least one token");
  validate_token_ids(prompt, model.config().vocab_size);
  GenerateResult r;
  if (opts.max_tokens <= 0) return r;

  using clock = std::chrono::steady_clock;
  Sampler sampler(opts.sampling);
  SequenceState st = model.new_state();
  std::vector<float> logits(size_t(model.config().vocab_size));
  auto t0 = clock::now();
  model.forward(prompt, st, {logits.data(), /*all_positions=*/false, nullptr}, pool);
  auto t1 = clock::now();
  r.prefill_seconds = std::chrono::duration<double>(t1 - t0).count();
  const int64_t limit = opts.sample_below > 0 ? std::min<int64_t>(opts.sample_below, int64_t(logits.size()))
                                              : int64_t(logits.size());
  for (;;) {
    std::fill(logits.begin() + limit, logits.end(), -INFINITY);
    const int32_t next = sampler.sample(logits, prompt, r.tokens);
    r.tokens.push_back(next);
    const bool keep_going = !on_token || on_token(next);
    if (std::find(opts.stop_ids.begin(), opts.stop_ids.end(), next) != opts.stop_ids.end()) {
      r.finish = FinishReason::Stop;
      break;
    }
    if (!keep_going || int64_t(r.tokens.size()) >= opts.max_tokens) break;
    model.forward(std::span<const int32_t>(&next, 1), st, {logits.data(), false, nullptr}, pool);
  }
  r.decode_seconds = std::chrono::duration<double>(clock::now() - t1).count();
  return r;
}

}  // namespace gdn
