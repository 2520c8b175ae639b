#include "runtime/cuda/gpu_generate.h"

#include <algorithm>
#include <chrono>
#include <map>
#include <random>

#include "core/error.h"

namespace gdn::cuda {

KvDtype parse_kv_dtype(const std::string& name) {
  if (name == "bf16" || name == "auto") return KvDtype::Bf16;
  if (name == "fp8" || name == "fp8_e4m3") return KvDtype::Fp8E4m3;
  fail_input("--kv-cache-dtype '{}' is not one of bf16, fp8", name);
}

GpuSession open_gpu_session(const std::string& model_dir, const GpuRunOptions& o, int64_t sample_below) {
  if (!cuda_device_available()) fail_input("--backend cuda: no CUDA device is visible");
  GpuModelOptions mo;
  mo.max_tokens = o.prefill_chunk;
  mo.max_seqs = 1;
  mo.max_context = o.max_context;
  mo.max_logit_rows = std::max(64, o.prefill_chunk);
  mo.use_graphs = o.graphs;
  mo.sample_below = sample_below;
  GpuSession s;
  s.model = load_gpu_model(model_dir, o.activations, mo);
  const int blocks = (o.max_context + kKvBlockTokens - 1) / kKvBlockTokens + 1;
  s.cache = s.model->make_cache(o.kv_dtype, 1, int64_t(1) << 30, blocks);
  return s;
}

namespace {

// One sequence's blocks and slot, released at the end.
struct SequenceSlot {
  GpuCache& cache;
  std::vector<int32_t> blocks;
  int32_t slot;
  explicit SequenceSlot(GpuCache& c) : cache(c), slot(c.allocate_slot()) {}
  ~SequenceSlot() {
    cache.release_blocks(blocks);
    cache.release_slot(slot);
  }
  void cover(int64_t positions) {
    const int64_t need = (positions + kKvBlockTokens - 1) / kKvBlockTokens;
    if (need > int64_t(blocks.size())) {
      const auto more = cache.allocate_blocks(int(need - int64_t(blocks.size())));
      blocks.insert(blocks.end(), more.begin(), more.end());
    }
  }
};

GpuSamplingRow sampling_row(const SamplingParams& p, uint64_t seed, uint64_t offset) {
  GpuSamplingRow r;
  r.temperature = p.temperature;
  r.top_k = p.top_k;
  r.top_p = p.top_p;
  r.min_p = p.min_p;
  r.presence_penalty = p.presence_penalty;
  r.frequency_penalty = p.frequency_penalty;
  r.repetition_penalty = p.repetition_penalty;
  r.seed = seed;
  r.offset = offset;
  return r;
}

bool has_penalties(const SamplingParams& p) {
  return p.presence_penalty != 0.f || p.frequency_penalty != 0.f || p.repetition_penalty != 1.f;
}

}  // namespace

GenerateResult generate_gpu(GpuSession& s, const std::vector<int32_t>& prompt, const GenerateOptions& opts,
                            const std::function<bool(int32_t)>& on_token) {
  validate(opts.sampling);
  GpuModel& m = *s.model;
  if (prompt.empty()) fail_input("the prompt is empty: give at least one token");
  validate_token_ids(prompt, m.config().vocab_size);
  GenerateResult r;
  if (opts.max_tokens <= 0) return r;
  const int64_t total = int64_t(prompt.size()) + opts.max_tokens;
  if (total > m.options().max_context)
    fail_input("prompt ({} tokens) + --max-tokens ({}) exceed the context of {} tokens (--max-context)", prompt.size(),
               opts.max_tokens, m.options().max_context);

  using clock = std::chrono::steady_clock;
  const uint64_t seed = opts.sampling.seed ? *opts.sampling.seed : std::random_device{}();
  const bool penalties = has_penalties(opts.sampling);
  std::map<int32_t, int32_t> seen;  // token → count in the output (0: prompt only)
  if (penalties)
    for (int32_t t : prompt) seen.emplace(t, 0);
  std::vector<PenaltyEntry> plist;

  SequenceSlot seq(*s.cache);
  s.cache->reset_slot(seq.slot, m.stream());
  const int chunk = m.options().max_tokens;
  GpuSamplingRow row;
  auto make_step = [&](std::span<const int32_t> toks, int64_t start) {
    seq.cover(start + int64_t(toks.size()));
    SeqStep st;
    st.tokens = toks;
    st.start = int32_t(start);
    st.blocks = seq.blocks;
    st.slot = seq.slot;
    st.logits = 1;
    return st;
  };
  auto t0 = clock::now();
  int64_t pos = 0;
  int32_t next = -1;
  for (; pos < int64_t(prompt.size());) {
    const int64_t n = std::min<int64_t>(chunk, int64_t(prompt.size()) - pos);
    SeqStep st = make_step(std::span<const int32_t>(prompt.data() + pos, size_t(n)), pos);
    const bool last = pos + n == int64_t(prompt.size());
    if (last) {
      row = sampling_row(opts.sampling, seed, 0);
      st.sample = &row;
      for (auto [t, c] : seen) plist.push_back({t, c});
      st.penalties = plist;
    }
    const StepOutput out = m.step(std::span<const SeqStep>(&st, 1), *s.cache);
    if (last) next = out.sampled[0];
    pos += n;
  }
  auto t1 = clock::now();
  r.prefill_seconds = std::chrono::duration<double>(t1 - t0).count();
  for (;;) {
    r.tokens.push_back(next);
    if (penalties) seen[next]++;
    const bool keep_going = !on_token || on_token(next);
    if (std::find(opts.stop_ids.begin(), opts.stop_ids.end(), next) != opts.stop_ids.end()) {
      r.finish = FinishReason::Stop;
      break;
    }
    if (!keep_going || int64_t(r.tokens.size()) >= opts.max_tokens) break;
    SeqStep st = make_step(std::span<const int32_t>(&next, 1), pos);
    row = sampling_row(opts.sampling, seed, r.tokens.size());
    st.sample = &row;
    plist.clear();
    for (auto [t, c] : seen) plist.push_back({t, c});
    st.penalties = plist;
    next = m.step(std::span<const SeqStep>(&st, 1), *s.cache).sampled[0];
    ++pos;
  }
  r.decode_seconds = std::chrono::duration<double>(clock::now() - t1).count();
  return r;
}

std::vector<float> logits_gpu(GpuSession& s, const std::vector<int32_t>& ids,
                              const std::vector<std::pair<int64_t, int64_t>>& segments) {
  GpuModel& m = *s.model;
  const int64_t V = m.config().vocab_size, n = int64_t(ids.size());
  validate_token_ids(ids, V);
  if (n > m.options().max_context)
    fail_input("{} tokens exceed the context of {} tokens (--max-context)", n, m.options().max_context);
  std::vector<float> logits(size_t(n * V));
  SequenceSlot seq(*s.cache);
  s.cache->reset_slot(seq.slot, m.stream());
  const int64_t step_max = std::min<int64_t>(m.options().max_tokens, std::max(64, m.options().max_tokens));
  for (auto [b, e] : segments)
    for (int64_t p = b; p < e; p += step_max) {
      const int64_t q = std::min(e, p + step_max);
      seq.cover(q);
      SeqStep st;
      st.tokens = std::span<const int32_t>(ids.data() + p, size_t(q - p));
      st.start = int32_t(p);
      st.blocks = seq.blocks;
      st.slot = seq.slot;
      st.logits = int32_t(q - p);
      const StepOutput out = m.step(std::span<const SeqStep>(&st, 1), *s.cache);
      m.copy_logits(out, logits.data() + p * V);
    }
  return logits;
}

}  // namespace gdn::cuda
