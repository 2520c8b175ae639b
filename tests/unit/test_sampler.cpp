#include "runtime/sampler.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <set>
#include <string>
#include <vector>

#include "core/error.h"

namespace gdn {
namespace {

using Ids = std::vector<int32_t>;
const Ids kNone;
const float kNaN = std::numeric_limits<float>::quiet_NaN();
const float kInf = std::numeric_limits<float>::infinity();

SamplingParams seeded(uint64_t seed = 1234) {
  SamplingParams p;
  p.seed = seed;
  return p;
}

SamplingParams greedy() {
  SamplingParams p;
  p.temperature = 0.0f;
  return p;
}

std::vector<float> logits_of(const std::vector<double>& probs) {
  std::vector<float> l;
  for (double p : probs) l.push_back(float(std::log(p)));
  return l;
}

std::vector<double> softmax(const std::vector<float>& logits, double t = 1.0) {
  const double m = *std::max_element(logits.begin(), logits.end());
  std::vector<double> p;
  double s = 0.0;
  for (float l : logits) s += p.emplace_back(std::exp((l - m) / t));
  for (double& x : p) x /= s;
  return p;
}

// Empirical frequencies over `draws` samples; each draw gets a fresh copy (sample scales in place).
std::vector<double> frequencies(Sampler& s, const std::vector<float>& logits, int draws) {
  std::vector<double> f(logits.size(), 0.0);
  for (int i = 0; i < draws; ++i) {
    std::vector<float> l = logits;
    const int32_t id = s.sample(l, kNone, kNone);
    EXPECT_GE(id, 0);
    EXPECT_LT(size_t(id), logits.size());
    f[size_t(id)] += 1.0 / draws;
  }
  return f;
}

std::set<int32_t> drawn(Sampler& s, const std::vector<float>& logits, int draws) {
  std::set<int32_t> ids;
  for (int i = 0; i < draws; ++i) {
    std::vector<float> l = logits;
    ids.insert(s.sample(l, kNone, kNone));
  }
  return ids;
}

// ---------------------------------------------------------------------------------------------
TEST(Sampler, GreedyPicksArgmaxTiesToLowestId) {
  Sampler s(greedy());
  std::vector<float> l = {0.1f, 2.5f, -1.0f, 2.4f};
  EXPECT_EQ(s.sample(l, kNone, kNone), 1);
  l = {1.0f, 3.0f, 0.0f, 3.0f, 3.0f};
  EXPECT_EQ(s.sample(l, kNone, kNone), 1);
  l = {-5.0f, -5.0f};
  EXPECT_EQ(s.sample(l, kNone, kNone), 0);
}

TEST(Sampler, TemperatureZeroIgnoresTopKTopP) {
  // A sampler that drew from the top-2 / nucleus would return 0 about half the time.
  SamplingParams p = greedy();
  p.top_k = 2;
  p.top_p = 0.99f;
  Sampler s(p);
  EXPECT_EQ(drawn(s, {1.0f, 1.05f, 0.9f}, 200), std::set<int32_t>{1});
}

TEST(Sampler, SameSeedSameSequenceDifferentSeedDiffers) {
  std::vector<float> logits(100);
  for (size_t i = 0; i < logits.size(); ++i) logits[i] = 0.01f * float(i % 7);
  auto run = [&](uint64_t seed) {
    Sampler s(seeded(seed));
    Ids out;
    for (int i = 0; i < 50; ++i) {
      std::vector<float> l = logits;
      out.push_back(s.sample(l, kNone, kNone));
    }
    return out;
  };
  EXPECT_EQ(run(42), run(42));
  EXPECT_NE(run(42), run(43));
  // Unseeded samplers work too (nondeterministic, so only the range is checked).
  Sampler u{SamplingParams{}};
  std::vector<float> l = logits;
  const int32_t id = u.sample(l, kNone, kNone);
  EXPECT_TRUE(id >= 0 && id < 100);
}

TEST(Sampler, TopK1IsArgmax) {
  SamplingParams p = seeded();
  p.top_k = 1;
  Sampler s(p);
  std::vector<float> logits = {0.3f, 1.1f, 0.9f, 1.2f, 1.15f, -0.4f, 0.0f, 1.0f};
  EXPECT_EQ(drawn(s, logits, 1000), std::set<int32_t>{3});
}

TEST(Sampler, TopK3KeepsThreeLargestWithRenormalisedFrequencies) {
  SamplingParams p = seeded();
  p.top_k = 3;
  Sampler s(p);
  // The three largest are ids 7, 2, 5; the rest are close behind so a leak would show up.
  std::vector<float> logits = {0.9f, 0.5f, 2.0f, 0.8f, 0.95f, 1.0f, 0.0f, 2.2f, 0.7f, 0.6f};
  const std::vector<double> f = frequencies(s, logits, 20000);
  const std::vector<double> q = softmax({logits[7], logits[2], logits[5]});
  EXPECT_NEAR(f[7], q[0], 0.02);
  EXPECT_NEAR(f[2], q[1], 0.02);
  EXPECT_NEAR(f[5], q[2], 0.02);
  EXPECT_NEAR(f[7] + f[2] + f[5], 1.0, 1e-9);  // nothing outside the top 3
}

// Probabilities 0.5, 0.3, 0.15, 0.05: cumulative 0.5, 0.8, 0.95, 1. Thresholds are kept away from
// the cumulative sums (0.8 itself is a float-rounding coin toss), hence 0.79 rather than 0.8.
TEST(Sampler, TopPKeepsSmallestNucleus) {
  const std::vector<float> logits = logits_of({0.5, 0.3, 0.15, 0.05});
  auto nucleus = [&](float top_p) {
    SamplingParams p = seeded();
    p.top_p = top_p;
    Sampler s(p);
    return drawn(s, logits, 2000);
  };
  EXPECT_EQ(nucleus(0.4f), (std::set<int32_t>{0}));
  EXPECT_EQ(nucleus(0.75f), (std::set<int32_t>{0, 1}));
  EXPECT_EQ(nucleus(0.79f), (std::set<int32_t>{0, 1}));
  EXPECT_EQ(nucleus(0.81f), (std::set<int32_t>{0, 1, 2}));
  EXPECT_EQ(nucleus(1.0f), (std::set<int32_t>{0, 1, 2, 3}));
}

TEST(Sampler, TopKAndTopPOrderNearlyEqualLogits) {
  // Close values (one preselection bucket) under every id permutation: the order must be exact.
  // Sorted: 0.26, 0.255, 0.25, 0.235 (cumulative 0.26, 0.515, 0.765); top_k 3 renormalises the
  // first three to ≈ 0.34, 0.333, 0.327.
  const std::vector<double> probs = {0.26, 0.255, 0.25, 0.235};
  std::vector<int32_t> id_of = {0, 1, 2, 3};  // id_of[rank]
  do {
    std::vector<double> by_id(4);
    for (size_t r = 0; r < 4; ++r) by_id[size_t(id_of[r])] = probs[r];
    const std::vector<float> logits = logits_of(by_id);
    auto kept = [&](int top_k, float top_p) {
      SamplingParams p = seeded();
      p.top_k = top_k;
      p.top_p = top_p;
      Sampler s(p);
      return drawn(s, logits, 300);
    };
    auto ranks = [&](std::initializer_list<size_t> rs) {
      std::set<int32_t> ids;
      for (size_t r : rs) ids.insert(id_of[r]);
      return ids;
    };
    EXPECT_EQ(kept(0, 0.2f), ranks({0}));
    EXPECT_EQ(kept(0, 0.5f), ranks({0, 1}));
    EXPECT_EQ(kept(0, 0.6f), ranks({0, 1, 2}));
    EXPECT_EQ(kept(3, 1.0f), ranks({0, 1, 2}));
    EXPECT_EQ(kept(3, 0.3f), ranks({0}));
    EXPECT_EQ(kept(3, 0.6f), ranks({0, 1}));
  } while (std::next_permutation(id_of.begin(), id_of.end()));
  SamplingParams p = seeded();  // top_k 3 of six values within 0.004 of each other
  p.top_k = 3;
  Sampler s(p);
  EXPECT_EQ(drawn(s, {1.0f, 1.003f, 1.001f, 1.004f, 1.002f, 1.0005f}, 500), (std::set<int32_t>{1, 3, 4}));
}

TEST(Sampler, TopPAppliesToTopKRenormalisedDistribution) {
  // top_k 2 leaves {0.625, 0.375}; top_p 0.6 then keeps only id 0. Over the full distribution
  // top_p 0.6 would have kept {0, 1}.
  SamplingParams p = seeded();
  p.top_k = 2;
  p.top_p = 0.6f;
  Sampler s(p);
  EXPECT_EQ(drawn(s, logits_of({0.5, 0.3, 0.15, 0.05}), 2000), std::set<int32_t>{0});
}

TEST(Sampler, TopPLargeNucleus) {
  // A flat-ish distribution over 2000 shuffled ids whose 0.5 nucleus holds a few hundred tokens
  // spread over many preselection buckets.
  const size_t v = 2000;
  std::vector<float> logits(v);
  std::vector<int32_t> rank_to_id(v);
  std::iota(rank_to_id.begin(), rank_to_id.end(), 0);
  std::mt19937 shuffle_rng(7);
  std::shuffle(rank_to_id.begin(), rank_to_id.end(), shuffle_rng);
  std::vector<size_t> rank_of(v);
  for (size_t r = 0; r < v; ++r) {
    logits[size_t(rank_to_id[r])] = -0.002f * float(r);
    rank_of[size_t(rank_to_id[r])] = r;
  }
  const std::vector<double> q = softmax(logits);
  size_t cutoff = 0;  // nucleus = ranks [0, cutoff)
  for (double cum = 0.0; cum < 0.5; ++cutoff) cum += q[size_t(rank_to_id[cutoff])];
  ASSERT_GT(cutoff, 200u);

  SamplingParams p = seeded();
  p.top_p = 0.5f;
  Sampler s(p);
  size_t max_rank = 0;
  for (int32_t id : drawn(s, logits, 5000)) max_rank = std::max(max_rank, rank_of[size_t(id)]);
  EXPECT_LT(max_rank, cutoff);
  EXPECT_GE(max_rank, cutoff - 30);  // the tail of the nucleus is reached, not cut short
}

TEST(Sampler, MinPDropsTokensBelowFractionOfMax) {
  // Threshold 0.5 × 0.5 = 0.25: keeps 0.5 and 0.3, renormalised to 0.625 / 0.375.
  SamplingParams p = seeded();
  p.min_p = 0.5f;
  Sampler s(p);
  const std::vector<double> f = frequencies(s, logits_of({0.5, 0.3, 0.15, 0.05}), 20000);
  EXPECT_NEAR(f[0], 0.625, 0.02);
  EXPECT_NEAR(f[1], 0.375, 0.02);
  EXPECT_EQ(f[2] + f[3], 0.0);
}

TEST(Sampler, MinPWithTopKAndTopP) {
  // top_k 3 → {0.5, 0.3, 0.15}/0.95; top_p 0.9 keeps all three (0.8/0.95 < 0.9); min_p 0.5 then
  // drops id 2. Same without top_k (top_p 0.9 alone keeps {0, 1, 2}).
  for (int top_k : {3, 0}) {
    SamplingParams p = seeded();
    p.top_k = top_k;
    p.top_p = 0.9f;
    p.min_p = 0.5f;
    Sampler s(p);
    EXPECT_EQ(drawn(s, logits_of({0.5, 0.3, 0.15, 0.05}), 2000), (std::set<int32_t>{0, 1})) << top_k;
  }
}

TEST(Sampler, TemperatureScalesDistribution) {
  SamplingParams p = seeded();
  p.temperature = 0.5f;
  Sampler s(p);
  const std::vector<float> logits = {1.0f, 0.5f, 0.0f, -0.5f};
  const std::vector<double> f = frequencies(s, logits, 20000);
  const std::vector<double> q = softmax(logits, 0.5);
  for (size_t i = 0; i < logits.size(); ++i) EXPECT_NEAR(f[i], q[i], 0.02) << "id " << i;
  // sample() leaves the scaled logits behind.
  std::vector<float> l = logits;
  s.sample(l, kNone, kNone);
  for (size_t i = 0; i < logits.size(); ++i) EXPECT_FLOAT_EQ(l[i], logits[i] / 0.5f);
}

// ---------------------------------------------------------------------------------------------
// Penalties (greedy, so the logits left behind are the penalised ones, unscaled).

TEST(Sampler, RepetitionPenaltyPromptAndOutputOncePerId) {
  SamplingParams p = greedy();
  p.repetition_penalty = 2.0f;
  Sampler s(p);
  std::vector<float> l = {2.0f, -2.0f, 1.0f, 0.5f, 3.0f};
  const Ids prompt = {0, 4, 0}, output = {1, 1, 0};
  const int32_t id = s.sample(l, prompt, output);
  EXPECT_EQ(l, (std::vector<float>{1.0f, -4.0f, 1.0f, 0.5f, 1.5f}));
  EXPECT_EQ(id, 4);
  // Reusing the sampler gives the same result (scratch state is reset between calls).
  std::vector<float> l2 = {2.0f, -2.0f, 1.0f, 0.5f, 3.0f};
  s.sample(l2, prompt, output);
  EXPECT_EQ(l2, l);
}

TEST(Sampler, FrequencyAndPresencePenaltiesOutputOnly) {
  SamplingParams p = greedy();
  p.frequency_penalty = 0.5f;
  p.presence_penalty = 0.25f;
  Sampler s(p);
  std::vector<float> l = {2.0f, 2.0f, 2.0f, 2.0f};
  const Ids prompt = {3, 3}, output = {0, 1, 0};
  EXPECT_EQ(s.sample(l, prompt, output), 2);
  // id 0: 2 - 0.5*2 - 0.25; id 1: 2 - 0.5 - 0.25; id 3 (prompt only) untouched.
  EXPECT_EQ(l, (std::vector<float>{0.75f, 1.25f, 2.0f, 2.0f}));
  std::vector<float> l2 = {2.0f, 2.0f, 2.0f, 2.0f};  // counts must not leak into the next call
  s.sample(l2, prompt, output);
  EXPECT_EQ(l2, l);
}

TEST(Sampler, PresenceAloneAndPenaltyOrder) {
  {
    SamplingParams p = greedy();
    p.presence_penalty = 1.0f;
    Sampler s(p);
    std::vector<float> l = {2.0f, 2.0f};
    s.sample(l, kNone, Ids{1, 1, 1});
    EXPECT_EQ(l, (std::vector<float>{2.0f, 1.0f}));
  }
  {
    // Repetition first, then frequency: 2 / 2 - 0.5 (the other order would give 0.75).
    SamplingParams p = greedy();
    p.repetition_penalty = 2.0f;
    p.frequency_penalty = 0.5f;
    Sampler s(p);
    std::vector<float> l = {2.0f, 0.0f};
    s.sample(l, kNone, Ids{0});
    EXPECT_EQ(l[0], 0.5f);
  }
}

TEST(Sampler, OutOfRangeIdsIgnored) {
  SamplingParams p = greedy();
  p.repetition_penalty = 1.5f;
  p.frequency_penalty = 1.0f;
  p.presence_penalty = 1.0f;
  Sampler s(p);
  std::vector<float> l = {1.0f, 2.0f, 3.0f};
  EXPECT_EQ(s.sample(l, Ids{-1, 3, 1000000}, Ids{-7, 3, 99}), 2);
  EXPECT_EQ(l, (std::vector<float>{1.0f, 2.0f, 3.0f}));
}

// ---------------------------------------------------------------------------------------------
TEST(Sampler, ValidateRejectsOutOfRange) {
  EXPECT_NO_THROW(validate(SamplingParams{}));
  auto rejects = [](auto mutate, const std::string& name) {
    SamplingParams p;
    mutate(p);
    try {
      validate(p);
      ADD_FAILURE() << name << " accepted";
    } catch (const InputError& e) {
      EXPECT_NE(std::string(e.what()).find(name), std::string::npos) << e.what();
    }
    EXPECT_THROW(Sampler{p}, InputError) << name;
  };
  rejects([](SamplingParams& p) { p.temperature = -1.0f; }, "temperature");
  rejects([](SamplingParams& p) { p.temperature = kNaN; }, "temperature");
  rejects([](SamplingParams& p) { p.top_p = 0.0f; }, "top_p");
  rejects([](SamplingParams& p) { p.top_p = 1.5f; }, "top_p");
  rejects([](SamplingParams& p) { p.min_p = -0.1f; }, "min_p");
  rejects([](SamplingParams& p) { p.min_p = 1.1f; }, "min_p");
  rejects([](SamplingParams& p) { p.repetition_penalty = 0.0f; }, "repetition_penalty");
  rejects([](SamplingParams& p) { p.presence_penalty = kInf; }, "presence_penalty");
  rejects([](SamplingParams& p) { p.frequency_penalty = kNaN; }, "frequency_penalty");

  SamplingParams ok = greedy();
  ok.top_k = -1;
  ok.min_p = 1.0f;
  ok.frequency_penalty = -2.0f;
  EXPECT_NO_THROW(validate(ok));
}

TEST(Sampler, NaNLogitsAreNegInf) {
  const std::vector<float> logits = {kNaN, 1.0f, kNaN, 0.5f};
  {
    Sampler s(greedy());
    std::vector<float> l = logits;
    EXPECT_EQ(s.sample(l, kNone, kNone), 1);
  }
  for (int top_k : {0, 3}) {
    SamplingParams p = seeded();
    p.top_k = top_k;
    p.top_p = 0.99f;
    Sampler s(p);
    EXPECT_EQ(drawn(s, logits, 1000), (std::set<int32_t>{1, 3}));
  }
  Sampler s(seeded());
  std::vector<float> all_nan = {kNaN, kNaN, kNaN};
  EXPECT_EQ(s.sample(all_nan, kNone, kNone), 0);
  std::vector<float> all_ninf = {-kInf, -kInf};
  EXPECT_EQ(s.sample(all_ninf, kNone, kNone), 0);
  std::vector<float> some_ninf = {-kInf, 0.0f, -kInf};
  EXPECT_EQ(s.sample(some_ninf, kNone, kNone), 1);
}

TEST(Sampler, FullVocabTopKAndTopPStayInTheirSets) {
  // Realistic size: results must lie in the brute-force top-k set / nucleus.
  const size_t v = 248320;
  std::vector<float> logits(v);
  std::mt19937 g(3);
  std::normal_distribution<float> nd(0.0f, 3.0f);
  for (float& l : logits) l = nd(g);
  std::vector<int32_t> order(v);
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(), [&](int32_t a, int32_t b) { return logits[size_t(a)] > logits[size_t(b)]; });
  std::vector<size_t> rank(v);
  for (size_t r = 0; r < v; ++r) rank[size_t(order[r])] = r;

  SamplingParams pk = seeded();
  pk.top_k = 50;
  Sampler sk(pk);
  for (int i = 0; i < 20; ++i) {
    std::vector<float> l = logits;
    EXPECT_LT(rank[size_t(sk.sample(l, kNone, kNone))], 50u);
  }

  const std::vector<double> q = softmax(logits);
  size_t cutoff = 0;
  for (double cum = 0.0; cum < 0.9; ++cutoff) cum += q[size_t(order[cutoff])];
  SamplingParams pp = seeded();
  pp.top_p = 0.9f;
  Sampler sp(pp);
  for (int i = 0; i < 20; ++i) {
    std::vector<float> l = logits;
    EXPECT_LT(rank[size_t(sp.sample(l, kNone, kNone))], cutoff);
  }
}

}  // namespace
}  // namespace gdn
