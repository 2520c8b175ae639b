#include "runtime/sampler.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <limits>

#include "core/error.h"

namespace gdn {

namespace {

constexpr float kNegInf = -std::numeric_limits<float>::infinity();
constexpr float kPosInf = std::numeric_limits<float>::infinity();

void require_finite(float v, const char* name) {
  if (!std::isfinite(v)) fail_input("{} must be a finite number, got {}", name, v);
}

// Uniform double in [0, 1) from the top 53 bits. Written out (rather than
// std::uniform_real_distribution, whose algorithm is library-specific) so a seed gives the same
// tokens with every standard library.
double uniform01(std::mt19937_64& rng) { return double(rng() >> 11) * 0x1.0p-53; }

// Index in [0, n) drawn with probability weight(i) / Σ weight. The threshold is clamped below the
// total, and the scan repeats the summation exactly, so it always stops on a positive weight.
template <typename Weight>
size_t draw(std::mt19937_64& rng, size_t n, Weight weight) {
  double mass = 0.0;
  for (size_t i = 0; i < n; ++i) mass += weight(i);
  const double u = std::min(uniform01(rng) * mass, std::nextafter(mass, 0.0));
  double cum = 0.0;
  for (size_t i = 0; i < n; ++i) {
    cum += weight(i);
    if (u < cum) return i;
  }
  return n - 1;  // unreachable while mass > 0
}

}  // namespace

void validate(const SamplingParams& p) {
  require_finite(p.temperature, "temperature");
  if (p.temperature < 0.0f) fail_input("temperature must be >= 0, got {}", p.temperature);
  require_finite(p.top_p, "top_p");
  if (!(p.top_p > 0.0f && p.top_p <= 1.0f)) fail_input("top_p must be in (0, 1], got {}", p.top_p);
  require_finite(p.min_p, "min_p");
  if (!(p.min_p >= 0.0f && p.min_p <= 1.0f)) fail_input("min_p must be in [0, 1], got {}", p.min_p);
  require_finite(p.presence_penalty, "presence_penalty");
  require_finite(p.frequency_penalty, "frequency_penalty");
  require_finite(p.repetition_penalty, "repetition_penalty");
  if (p.repetition_penalty <= 0.0f) fail_input("repetition_penalty must be > 0, got {}", p.repetition_penalty);
}

Sampler::Sampler(const SamplingParams& params) : params_(params) {
  validate(params_);
  if (params_.seed) {
    rng_.seed(*params_.seed);
  } else {
    std::random_device rd;
    rng_.seed((uint64_t(rd()) << 32) ^ uint64_t(rd()));
  }
}

int32_t Sampler::sample(std::span<float> logits, std::span<const int32_t> prompt,
                        std::span<const int32_t> output) {
  const size_t vocab = logits.size();
  if (vocab == 0) return 0;
  auto valid = [vocab](int32_t id) { return id >= 0 && size_t(id) < vocab; };

  // ---- Penalties. counts_ is all zeros between calls; each block restores that, so the cost is
  // O(prompt + output) rather than O(vocab).
  if (counts_.size() < vocab) counts_.resize(vocab, 0);
  const float rep = params_.repetition_penalty;
  if (rep != 1.0f) {
    auto penalise_once = [&](int32_t id) {
      if (!valid(id) || counts_[id] != 0) return;
      counts_[id] = 1;
      float& l = logits[id];
      l = l > 0.0f ? l / rep : l * rep;
    };
    for (int32_t id : prompt) penalise_once(id);
    for (int32_t id : output) penalise_once(id);
    for (int32_t id : prompt) if (valid(id)) counts_[id] = 0;
    for (int32_t id : output) if (valid(id)) counts_[id] = 0;
  }
  const float freq = params_.frequency_penalty, pres = params_.presence_penalty;
  if (freq != 0.0f || pres != 0.0f) {
    for (int32_t id : output) if (valid(id)) ++counts_[id];
    for (int32_t id : output) {
      if (!valid(id) || counts_[id] == 0) continue;  // 0: already applied for this id
      logits[id] -= freq * float(counts_[id]) + pres;
      counts_[id] = 0;
    }
  }

  // ---- NaN → -inf, and the argmax (strict > keeps the lowest id on ties; all -inf gives 0).
  size_t best = 0;
  float best_v = kNegInf;
  for (size_t i = 0; i < vocab; ++i) {
    float& l = logits[i];
    if (std::isnan(l)) l = kNegInf;
    if (l > best_v) {
      best_v = l;
      best = i;
    }
  }
  // Greedy; also the limit of softmax when some logit is +inf, and the fallback when nothing is
  // finite.
  if (params_.temperature == 0.0f || best_v == kPosInf || best_v == kNegInf) return int32_t(best);

  // ---- Temperature, in place. Scaling by 1/T is monotone, so the argmax stays at `best`.
  const float inv_t = 1.0f / params_.temperature;
  for (float& l : logits) l *= inv_t;
  const float top = logits[best];
  if (!std::isfinite(top)) return int32_t(best);  // T so small that max/T overflows: greedy limit

  // Weights are exp(l - top): the argmax has weight exactly 1, so min_p compares against the
  // weight directly, and normalisation is left to the draw.
  const int k = params_.top_k;
  const bool k_on = k > 0 && size_t(k) < vocab;
  const bool p_on = params_.top_p < 1.0f;
  const float min_p = params_.min_p;
  probs_.resize(vocab);

  if (!k_on && !p_on) {  // no sorting at all: draw straight from the (min_p-masked) weights
    for (size_t i = 0; i < vocab; ++i) {
      const float w = std::exp(logits[i] - top);
      probs_[i] = w >= min_p ? w : 0.0f;
    }
    return int32_t(draw(rng_, vocab, [this](size_t i) { return probs_[i]; }));
  }

  // ---- Candidate selection with a histogram over the distance to the max (kPerNat buckets per
  // nat of logit, the last one open-ended). top_k and top_p both keep a prefix of the descending
  // order, so with `cut` the first bucket at which the cumulative count reaches k (top_k) or the
  // cumulative mass reaches top_p (top_p alone), every token in buckets < cut is kept, none beyond
  // cut is, and only the tokens of bucket `cut` need ordering. This replaces a full sort.
  constexpr int kBuckets = 1024;
  constexpr float kPerNat = 32.0f;
  auto bucket_of = [top](float l) {
    const float d = top - l;  // ≥ 0; +inf for -inf logits
    return d < float(kBuckets - 1) / kPerNat ? int(d * kPerNat) : kBuckets - 1;
  };
  std::array<double, kBuckets> hist_mass{};
  std::array<uint32_t, kBuckets> hist_count{};
  double total = 0.0;
  if (k_on) {  // top_k's mass is that of the top-k set: no need to exponentiate everything
    for (size_t i = 0; i < vocab; ++i) ++hist_count[size_t(bucket_of(logits[i]))];
  } else {
    for (size_t i = 0; i < vocab; ++i) {
      const float w = std::exp(logits[i] - top);
      probs_[i] = w;
      total += w;
      hist_mass[size_t(bucket_of(logits[i]))] += w;
    }
  }
  int cut = 0;
  if (k_on) {
    for (uint64_t seen = 0; cut < kBuckets - 1; ++cut)
      if ((seen += hist_count[size_t(cut)]) >= uint64_t(k)) break;
  } else {
    const double target = double(params_.top_p) * total;
    for (double cum = 0.0; cut < kBuckets - 1; ++cut)
      if ((cum += hist_mass[size_t(cut)]) >= target) break;
  }
  // min_p is relative to the max, which every filter keeps, so it only shortens the final prefix.
  // With top_p alone it can drop tokens up front (top_p's denominator is then the full mass, and
  // the dropped tokens all sort after the kept ones); after top_k it is applied at the end.
  const float min_w = k_on ? 0.0f : min_p;
  order_.clear();
  for (size_t i = 0; i < vocab; ++i) {
    const float l = logits[i];
    if (l != kNegInf && bucket_of(l) <= cut && (k_on || probs_[i] >= min_w)) order_.push_back(int32_t(i));
  }
  const auto first = order_.begin();
  const auto mid = std::partition(first, order_.end(), [&](int32_t id) { return bucket_of(logits[size_t(id)]) < cut; });
  size_t n = order_.size();  // ≥ 1: the argmax is in bucket 0
  const size_t n_before = size_t(mid - first);

  // Descending logit, ties to the lower id (keeps results deterministic for a seed).
  auto desc = [logits](int32_t a, int32_t b) {
    return logits[size_t(a)] > logits[size_t(b)] || (logits[size_t(a)] == logits[size_t(b)] && a < b);
  };
  if (k_on) {
    // Buckets before `cut` hold fewer than k tokens (cut is where the count first reaches k), so
    // the top k are those plus the largest of bucket `cut`.
    if (size_t(k) < n) {
      std::nth_element(mid, first + k, order_.end(), desc);
      n = size_t(k);
    }
    double mass = 0.0;  // top_p's denominator: the renormalised top-k set
    for (size_t i = 0; i < n; ++i) {
      const size_t id = size_t(order_[i]);
      mass += probs_[id] = std::exp(logits[id] - top);
    }
    if (p_on) {
      std::sort(first, first + n, desc);
      const double target = double(params_.top_p) * mass;
      double cum = 0.0;
      for (size_t i = 0; i < n; ++i) {
        if ((cum += probs_[size_t(order_[i])]) >= target) {
          n = i + 1;
          break;
        }
      }
    }
    if (min_p > 0.0f) {
      size_t kept = 0;
      for (size_t i = 0; i < n; ++i)
        if (probs_[size_t(order_[i])] >= min_p) order_[kept++] = order_[i];
      n = kept;  // ≥ 1: the argmax (weight 1) is in every top-k/top-p prefix
    }
  } else {
    // top_p alone: everything before bucket `cut` is in; sort bucket `cut` and stop where the
    // cumulative mass reaches top_p. Not reaching it means min_p (or summation rounding) removed
    // the rest: keep all candidates.
    const double target = double(params_.top_p) * total;
    double cum = 0.0;
    for (size_t i = 0; i < n_before; ++i) cum += probs_[size_t(order_[i])];
    std::sort(mid, order_.end(), desc);
    for (size_t i = n_before; i < n; ++i) {
      if ((cum += probs_[size_t(order_[i])]) >= target) {
        n = i + 1;
        break;
      }
    }
  }

  // ---- Draw from the renormalised candidates.
  return order_[draw(rng_, n, [this](size_t i) { return probs_[size_t(order_[i])]; })];
}

}  // namespace gdn
