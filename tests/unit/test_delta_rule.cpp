// Gated delta rule: recurrent form vs a double-precision reference, chunked form vs recurrent.
#include "kernels/cpu/delta_rule.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "core/thread_pool.h"

namespace {

using gdn::DeltaRuleShape;

struct Problem {
  DeltaRuleShape shape;
  std::vector<float> q, k, v, g, beta, state;  // state: the initial state
};

struct Result {
  std::vector<float> out, state;
};

// Random inputs as the model feeds them: q, k L2-normalised per head, q scaled by 1/sqrt(DK),
// g in [g_min, 0], β in (0, 1), and a non-zero initial state.
Problem make_problem(int64_t T, int64_t HK, int64_t HV, int64_t DK, int64_t DV, float g_min, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::uniform_real_distribution<float> gate(g_min, 0.0f), strength(0.02f, 0.98f);
  Problem p;
  p.shape = {T, HK, HV, DK, DV};
  auto fill_unit = [&](std::vector<float>& x, float scale) {
    x.resize(size_t(T * HK * DK));
    for (int64_t h = 0; h < T * HK; ++h) {
      float* row = x.data() + h * DK;
      double n2 = 0;
      for (int64_t i = 0; i < DK; ++i) row[i] = normal(rng), n2 += double(row[i]) * row[i];
      const float f = scale / float(std::sqrt(n2));
      for (int64_t i = 0; i < DK; ++i) row[i] *= f;
    }
  };
  fill_unit(p.q, 1.0f / std::sqrt(float(DK)));
  fill_unit(p.k, 1.0f);
  p.v.resize(size_t(T * HV * DV));
  for (auto& x : p.v) x = normal(rng);
  p.g.resize(size_t(T * HV));
  for (auto& x : p.g) x = gate(rng);
  p.beta.resize(size_t(T * HV));
  for (auto& x : p.beta) x = strength(rng);
  p.state.resize(size_t(HV * DK * DV));
  for (auto& x : p.state) x = 0.5f * normal(rng);
  return p;
}

Result run_recurrent(const Problem& p, gdn::ThreadPool& pool) {
  Result r{std::vector<float>(p.v.size(), -7.0f), p.state};
  gdn::delta_rule_recurrent(p.shape, p.q.data(), p.k.data(), p.v.data(), p.g.data(), p.beta.data(), r.state.data(),
                            r.out.data(), pool);
  return r;
}

Result run_chunked(const Problem& p, gdn::ThreadPool& pool, int64_t chunk) {
  Result r{std::vector<float>(p.v.size(), -7.0f), p.state};
  gdn::delta_rule_chunked(p.shape, p.q.data(), p.k.data(), p.v.data(), p.g.data(), p.beta.data(), r.state.data(),
                          r.out.data(), pool, chunk);
  return r;
}

// Textbook form in double: S_t = α(I − β k kᵀ) S_{t−1} + β k vᵀ, o_t = S_tᵀ q.
Result reference(const Problem& p) {
  const auto& s = p.shape;
  const int64_t T = s.tokens, HK = s.key_heads, HV = s.value_heads, DK = s.key_dim, DV = s.value_dim;
  Result r{std::vector<float>(p.v.size()), std::vector<float>(p.state.size())};
  for (int64_t j = 0; j < HV; ++j) {
    const int64_t kh = j / (HV / HK);
    std::vector<double> S(p.state.begin() + j * DK * DV, p.state.begin() + (j + 1) * DK * DV), ktS(static_cast<size_t>(DV));
    for (int64_t t = 0; t < T; ++t) {
      const float *k = p.k.data() + (t * HK + kh) * DK, *q = p.q.data() + (t * HK + kh) * DK;
      const float* v = p.v.data() + (t * HV + j) * DV;
      const double alpha = std::exp(double(p.g[t * HV + j])), beta = p.beta[t * HV + j];
      std::fill(ktS.begin(), ktS.end(), 0.0);
      for (int64_t i = 0; i < DK; ++i)
        for (int64_t d = 0; d < DV; ++d) ktS[d] += k[i] * S[i * DV + d];
      for (int64_t i = 0; i < DK; ++i)
        for (int64_t d = 0; d < DV; ++d)
          S[i * DV + d] = alpha * (S[i * DV + d] - beta * k[i] * ktS[d]) + beta * k[i] * v[d];
      for (int64_t d = 0; d < DV; ++d) {
        double o = 0;
        for (int64_t i = 0; i < DK; ++i) o += S[i * DV + d] * q[i];
        r.out[(t * HV + j) * DV + d] = float(o);
      }
    }
    std::copy(S.begin(), S.end(), r.state.begin() + j * DK * DV);
  }
  return r;
}

// Tolerance: both sides are fp32 (or the reference is double) with a different summation order,
// which gives relative errors around 1e-5; we allow max|Δ| ≤ 1e-4 · max(1, max|ref|).
void expect_close(const std::vector<float>& got, const std::vector<float>& ref, const std::string& what) {
  ASSERT_EQ(got.size(), ref.size()) << what;
  float scale = 1.0f, diff = 0.0f;
  for (size_t i = 0; i < ref.size(); ++i) {
    ASSERT_TRUE(std::isfinite(got[i])) << what << " at " << i;
    scale = std::max(scale, std::fabs(ref[i]));
    diff = std::max(diff, std::fabs(got[i] - ref[i]));
  }
  EXPECT_LE(diff, 1e-4f * scale) << what;
}

void expect_same_result(const Result& got, const Result& ref, const std::string& what) {
  expect_close(got.out, ref.out, what + " out");
  expect_close(got.state, ref.state, what + " state");
}

std::string describe(const DeltaRuleShape& s, int64_t chunk) {
  return "T=" + std::to_string(s.tokens) + " HK=" + std::to_string(s.key_heads) +
         " HV=" + std::to_string(s.value_heads) + " DK=" + std::to_string(s.key_dim) +
         " DV=" + std::to_string(s.value_dim) + " C=" + std::to_string(chunk);
}

struct Heads {
  int64_t HK, HV, DK, DV;
};

TEST(DeltaRule, RecurrentMatchesDoubleReference) {
  gdn::ThreadPool pool(4);
  // HV ≥ 4 threads runs whole heads per unit (DV=80: a 64-wide tile and a 16-wide tail); fewer
  // heads split the state columns (DV=48: blocks of 32 and 16).
  for (const Heads h : {Heads{2, 4, 32, 16}, Heads{1, 2, 16, 48}, Heads{2, 6, 32, 24}, Heads{1, 4, 16, 80}}) {
    const Problem p = make_problem(40, h.HK, h.HV, h.DK, h.DV, -3.0f, 11);
    const Result ref = reference(p);
    expect_same_result(run_recurrent(p, pool), ref, describe(p.shape, 0));
    // The initial state matters: the result must not match a zero-state run.
    Problem zero = p;
    std::fill(zero.state.begin(), zero.state.end(), 0.0f);
    const Result z = run_recurrent(zero, pool);
    float d = 0;
    for (size_t i = 0; i < ref.out.size(); ++i) d = std::max(d, std::fabs(z.out[i] - ref.out[i]));
    EXPECT_GT(d, 1e-2f);
  }
}

TEST(DeltaRule, ChunkedMatchesRecurrent) {
  gdn::ThreadPool pool(4);
  uint32_t seed = 100;
  for (const Heads h : {Heads{1, 1, 16, 16}, Heads{2, 4, 16, 24}, Heads{1, 3, 32, 32}, Heads{2, 6, 32, 32}})
    for (const int64_t T : {1, 5, 63, 64, 65, 128, 150, 200})
      for (const int64_t chunk : {64, 16}) {
        const Problem p = make_problem(T, h.HK, h.HV, h.DK, h.DV, -3.0f, seed++);
        expect_same_result(run_chunked(p, pool, chunk), run_recurrent(p, pool), describe(p.shape, chunk));
      }
}

TEST(DeltaRule, ChunkedMatchesDoubleReference) {
  gdn::ThreadPool pool(4);
  const Problem p = make_problem(150, 2, 4, 32, 32, -3.0f, 7);
  expect_same_result(run_chunked(p, pool, 64), reference(p), describe(p.shape, 64));
}

// Prefill in two pieces (a split inside a chunk), passing the state along, equals one call; and a
// chunked prefill followed by token-by-token decode equals the recurrence over everything.
TEST(DeltaRule, SplitCallsCarryState) {
  gdn::ThreadPool pool(4);
  for (const Heads h : {Heads{2, 4, 16, 24}, Heads{1, 3, 32, 32}})
    for (const int64_t chunk : {64, 16}) {
      const int64_t T = 150, N = 37;
      const Problem p = make_problem(T, h.HK, h.HV, h.DK, h.DV, -3.0f, 21);
      const Result whole = run_chunked(p, pool, chunk);
      const int64_t HK = h.HK, HV = h.HV, DK = h.DK, DV = h.DV;
      Result parts{std::vector<float>(p.v.size()), p.state};
      // The second piece is decoded one token at a time for chunk 16, as one chunked call otherwise.
      const bool decode = chunk == 16;
      gdn::delta_rule_chunked({N, HK, HV, DK, DV}, p.q.data(), p.k.data(), p.v.data(), p.g.data(), p.beta.data(),
                              parts.state.data(), parts.out.data(), pool, chunk);
      for (int64_t t0 = N; t0 < T;) {
        const int64_t n = decode ? 1 : T - N;
        const DeltaRuleShape s{n, HK, HV, DK, DV};
        const float *q = p.q.data() + t0 * HK * DK, *k = p.k.data() + t0 * HK * DK;
        const float *v = p.v.data() + t0 * HV * DV, *g = p.g.data() + t0 * HV, *b = p.beta.data() + t0 * HV;
        float* o = parts.out.data() + t0 * HV * DV;
        if (decode)
          gdn::delta_rule_recurrent(s, q, k, v, g, b, parts.state.data(), o, pool);
        else
          gdn::delta_rule_chunked(s, q, k, v, g, b, parts.state.data(), o, pool, chunk);
        t0 += n;
      }
      expect_same_result(parts, whole, "split " + describe(p.shape, chunk));
    }
}

// g down to −20: cumulative log-decays reach about −1300 within a chunk. exp(γ) underflows to 0
// (the right limit) and nothing may overflow.
TEST(DeltaRule, StrongDecayStaysFinite) {
  gdn::ThreadPool pool(4);
  for (const Heads h : {Heads{1, 1, 16, 16}, Heads{2, 6, 32, 32}})
    for (const int64_t chunk : {64, 16}) {
      Problem p = make_problem(200, h.HK, h.HV, h.DK, h.DV, -20.0f, 31);
      // Mix strong and weak decay so the state is both wiped and carried.
      for (size_t i = 0; i < p.g.size(); i += 3) p.g[i] *= 0.01f;
      const Result rec = run_recurrent(p, pool);
      const Result ref = reference(p);
      expect_same_result(rec, ref, "recurrent " + describe(p.shape, chunk));
      expect_same_result(run_chunked(p, pool, chunk), ref, "chunked " + describe(p.shape, chunk));
    }
}

TEST(DeltaRule, NoTokensLeavesStateAlone) {
  gdn::ThreadPool pool(4);
  const Problem p = make_problem(0, 1, 2, 16, 16, -3.0f, 5);
  std::vector<float> s = p.state;
  gdn::delta_rule_chunked(p.shape, nullptr, nullptr, nullptr, nullptr, nullptr, s.data(), nullptr, pool);
  gdn::delta_rule_recurrent(p.shape, nullptr, nullptr, nullptr, nullptr, nullptr, s.data(), nullptr, pool);
  EXPECT_EQ(s, p.state);
}

}  // namespace
