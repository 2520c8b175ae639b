// GPU sampler (sampling_cuda.h) against the definition of runtime/sampler.cpp, written out here
// with a full sort (the reference does not share code with either implementation):
//   penalties on raw logits (repetition once per distinct prompt/output token, then
//   frequency·count + presence per distinct output token), NaN → −inf, argmax (ties → lowest id);
//   greedy if T = 0 or the max is ±inf; else l ·= 1/T, w = exp(l − max); order = finite tokens by
//   (l desc, id asc); top_k keeps the first k; top_p alone keeps the shortest prefix of the
//   candidates (w ≥ min_p) whose Σw (double) reaches top_p · Σ all w, after top_k the shortest
//   prefix reaching top_p · Σ top-k w; min_p keeps w ≥ min_p; the draw is ∝ w over the kept set.
// Checks (tolerances):
//  * modified logits (penalties, NaN fix, temperature) bit-equal to the reference: the same IEEE
//    float operations in the same order on both sides;
//  * greedy tokens equal;
//  * the kept set (tokens with nonzero GPU probability, from the sampling_kept_probs test hook)
//    equal to the reference's, and each probability within 2e-6 relative: expf vs std::exp differ
//    by ≤ 2 ulp (1.2e-7 each) in w and in the normaliser Σw;
//  * a drawn token is always in the kept set;
//  * 20000 draws from a known 8-token distribution: Pearson χ² (7 dof) < 45 (p ≈ 1e-7 for a
//    correct sampler; the seeds are fixed, so the test is deterministic);
//  * equal (seed, offset) gives equal tokens, other offsets other tokens.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <map>
#include <numeric>
#include <set>
#include <vector>

#include "gpu_test_util.h"
#include "kernels/cuda/sampling_cuda.h"
#include "kernels/cuda/sampling_internal.cuh"

namespace gdn::test {
namespace {

using cuda::GpuSamplingRow;
using cuda::PenaltyEntry;

constexpr float kInf = std::numeric_limits<float>::infinity();

template <typename T>
struct DevBuf {
  T* p = nullptr;
  size_t n = 0;
  explicit DevBuf(size_t count) : n(count) { GDN_CUDA_CHECK(cudaMalloc(&p, std::max<size_t>(count, 1) * sizeof(T))); }
  ~DevBuf() { cudaFree(p); }
  DevBuf(const DevBuf&) = delete;
  DevBuf& operator=(const DevBuf&) = delete;
  void put(const std::vector<T>& v, cudaStream_t s) {
    GDN_CUDA_CHECK(cudaMemcpyAsync(p, v.data(), v.size() * sizeof(T), cudaMemcpyHostToDevice, s));
  }
  std::vector<T> get(cudaStream_t s) const {
    std::vector<T> v(n);
    GDN_CUDA_CHECK(cudaMemcpyAsync(v.data(), p, n * sizeof(T), cudaMemcpyDeviceToHost, s));
    GDN_CUDA_CHECK(cudaStreamSynchronize(s));
    return v;
  }
};

struct Case {
  const char* name;
  GpuSamplingRow row;
  std::vector<int32_t> prompt, output;
};

// The reference's result for one row.
struct Expected {
  std::vector<float> logits;   // after penalties, NaN fix, temperature
  bool greedy = false;
  int32_t token = -1;          // greedy
  std::vector<double> probs;   // stochastic: renormalised kept distribution [V]
  // Tokens whose membership hinges on a comparison within 1e-6 relative (a top_p cumulative mass
  // or a min_p weight at its threshold): expf vs std::exp may legitimately decide them otherwise.
  std::vector<uint8_t> ambiguous;
};

constexpr double kAmbiguity = 1e-6;
bool near(double a, double b) { return std::fabs(a - b) <= kAmbiguity * std::fabs(b); }

std::vector<PenaltyEntry> penalty_list(const std::vector<int32_t>& prompt, const std::vector<int32_t>& output) {
  std::map<int32_t, int32_t> m;
  for (int32_t t : prompt) m.emplace(t, 0);
  for (int32_t t : output) ++m[t];
  std::vector<PenaltyEntry> v;
  for (auto [t, c] : m) v.push_back({t, c});
  return v;
}

Expected reference(std::vector<float> l, const Case& c) {
  const GpuSamplingRow& p = c.row;
  const int V = int(l.size());
  Expected e;
  for (const PenaltyEntry& q : penalty_list(c.prompt, c.output)) {
    if (q.token < 0 || q.token >= V) continue;
    float& x = l[size_t(q.token)];
    if (p.repetition_penalty != 1.f) x = x > 0.f ? x / p.repetition_penalty : x * p.repetition_penalty;
    if ((p.frequency_penalty != 0.f || p.presence_penalty != 0.f) && q.out_count > 0)
      // One FMA: GCC contracts sampler.cpp's `freq * count + pres` (C++ defaults to
      // -ffp-contract=fast; -march=native has FMA), and the GPU does the same.
      x -= std::fma(p.frequency_penalty, float(q.out_count), p.presence_penalty);
  }
  int best = 0;
  float best_v = -kInf;
  for (int i = 0; i < V; ++i) {
    if (std::isnan(l[size_t(i)])) l[size_t(i)] = -kInf;
    if (l[size_t(i)] > best_v) best_v = l[size_t(i)], best = i;
  }
  e.token = best;
  if (p.temperature == 0.f || std::isinf(best_v)) {
    e.greedy = true;
    e.logits = l;
    return e;
  }
  const float inv_t = 1.f / p.temperature;
  for (float& x : l) x *= inv_t;
  e.logits = l;
  const float top = l[size_t(best)];
  if (!std::isfinite(top)) {
    e.greedy = true;
    return e;
  }
  std::vector<float> w(static_cast<size_t>(V));
  double total = 0;
  for (int i = 0; i < V; ++i) total += w[size_t(i)] = std::exp(l[size_t(i)] - top);
  std::vector<int32_t> order;
  for (int i = 0; i < V; ++i)
    if (l[size_t(i)] != -kInf) order.push_back(i);
  std::sort(order.begin(), order.end(), [&](int32_t a, int32_t b) {
    return l[size_t(a)] > l[size_t(b)] || (l[size_t(a)] == l[size_t(b)] && a < b);
  });
  const bool k_on = p.top_k > 0 && p.top_k < V, p_on = p.top_p < 1.f;
  e.ambiguous.assign(size_t(V), 0);
  for (int i = 0; i < V; ++i)
    if (p.min_p > 0.f && near(w[size_t(i)], p.min_p)) e.ambiguous[size_t(i)] = 1;
  std::vector<int32_t> kept;
  if (!k_on && !p_on) {
    for (int i = 0; i < V; ++i)
      if (w[size_t(i)] >= p.min_p) kept.push_back(i);
  } else if (!k_on) {
    std::vector<int32_t> cand;
    for (int32_t i : order)
      if (w[size_t(i)] >= p.min_p) cand.push_back(i);
    const double target = double(p.top_p) * total;
    double cum = 0;
    bool done = false;
    for (int32_t i : cand) {
      if (near(cum, target)) e.ambiguous[size_t(i)] = 1;
      if (done) continue;
      kept.push_back(i);
      if ((cum += w[size_t(i)]) >= target) done = true;
    }
  } else {
    std::vector<int32_t> topk(order.begin(), order.begin() + std::min<size_t>(order.size(), size_t(p.top_k)));
    size_t n = topk.size();
    if (p_on) {
      double mass = 0;
      for (int32_t i : topk) mass += w[size_t(i)];
      const double target = double(p.top_p) * mass;
      double cum = 0;
      for (size_t j = 0; j < topk.size(); ++j) {
        if (near(cum, target)) e.ambiguous[size_t(topk[j])] = 1;
        if ((cum += w[size_t(topk[j])]) >= target && n == topk.size()) n = j + 1;
      }
    }
    for (size_t j = 0; j < n; ++j)
      if (w[size_t(topk[j])] >= p.min_p) kept.push_back(topk[j]);
  }
  e.probs.assign(size_t(V), 0.0);
  double s = 0;
  for (int32_t i : kept) s += w[size_t(i)];
  for (int32_t i : kept) e.probs[size_t(i)] = w[size_t(i)] / s;
  return e;
}

// Realistic logits: a bulk around 0 (σ ≈ 2.5), a head of a few dozen tokens 5-25 nats above it.
// kind 1: coarse grid (many exact ties); kind 2: flat (|l| < 0.5); kind 3: mostly −inf (10 finite).
std::vector<float> make_logits(int V, uint64_t seed, int kind) {
  std::vector<float> l(static_cast<size_t>(V));
  for (int i = 0; i < V; ++i) {
    const uint64_t h = mix64(seed * 0x9E37ull + uint64_t(i));
    float x = (unit_float(h) + unit_float(mix64(h)) + unit_float(mix64(h + 1))) * 2.5f;
    if ((h >> 50) % 4000 == 0) x += 5.f + 20.f * float((h >> 20) & 1023) / 1024.f;
    if (kind == 1) x = std::round(x * 2.f) / 2.f;
    if (kind == 2) x = unit_float(h) * 0.5f;
    if (kind == 3) x = (i % (V / 10) == 3) ? x : -kInf;
    l[size_t(i)] = x;
  }
  return l;
}

GpuSamplingRow row_of(float t, int k, float top_p, float min_p, uint64_t seed = 1, uint64_t offset = 0) {
  GpuSamplingRow r;
  r.temperature = t, r.top_k = k, r.top_p = top_p, r.min_p = min_p, r.seed = seed, r.offset = offset;
  return r;
}

std::vector<int32_t> ids(int n, int V, uint64_t seed) {
  std::vector<int32_t> v;
  for (int i = 0; i < n; ++i) v.push_back(int32_t(mix64(seed + uint64_t(i)) % uint64_t(V)));
  return v;
}

// Runs all cases as one batch (rows of different settings and penalty-list lengths) and checks
// every row against the reference.
void run_cases(std::vector<Case> cases, const std::vector<std::vector<float>>& logits, int V) {
  const int R = int(cases.size());
  std::vector<PenaltyEntry> pen;
  std::vector<GpuSamplingRow> rows;
  std::vector<float> flat;
  for (int r = 0; r < R; ++r) {
    const auto list = penalty_list(cases[size_t(r)].prompt, cases[size_t(r)].output);
    cases[size_t(r)].row.penalty_begin = int32_t(pen.size());
    pen.insert(pen.end(), list.begin(), list.end());
    cases[size_t(r)].row.penalty_end = int32_t(pen.size());
    rows.push_back(cases[size_t(r)].row);
    flat.insert(flat.end(), logits[size_t(r)].begin(), logits[size_t(r)].end());
  }
  cuda::Stream s;
  DevBuf<float> dl(flat.size()), dp(flat.size());
  DevBuf<GpuSamplingRow> drows(rows.size());
  DevBuf<PenaltyEntry> dpen(pen.size());
  DevBuf<int32_t> dout{size_t(R)}, dout2{size_t(R)};
  const size_t wsb = cuda::sampling_workspace_bytes(R, V);
  DevBuf<uint8_t> ws(wsb);
  dl.put(flat, s);
  drows.put(rows, s);
  if (!pen.empty()) dpen.put(pen, s);
  cuda::sampling_kept_probs(dl.p, R, V, drows.p, dpen.p, dout.p, dp.p, ws.p, wsb, s);
  const auto got_l = dl.get(s);
  const auto got_p = dp.get(s);
  const auto got_t = dout.get(s);
  // sample_tokens on the same input draws the same token (the hook is the same code path).
  dl.put(flat, s);
  cuda::sample_tokens(dl.p, R, V, drows.p, dpen.p, dout2.p, ws.p, wsb, s);
  const auto got_t2 = dout2.get(s);

  for (int r = 0; r < R; ++r) {
    const Case& c = cases[size_t(r)];
    SCOPED_TRACE(std::string("case ") + c.name + " (row " + std::to_string(r) + ", V " + std::to_string(V) + ")");
    const Expected e = reference(logits[size_t(r)], c);
    int64_t bad_l = 0, first_bad = -1;
    for (int i = 0; i < V; ++i) {
      const float g = got_l[size_t(r) * V + i], w = e.logits[size_t(i)];
      if (!(g == w || (std::isnan(g) && std::isnan(w)))) {
        if (first_bad < 0) first_bad = i;
        ++bad_l;
      }
    }
    EXPECT_EQ(bad_l, 0) << "modified logits differ, first at " << first_bad << ": gpu "
                        << got_l[size_t(r) * V + size_t(std::max<int64_t>(first_bad, 0))] << " ref "
                        << e.logits[size_t(std::max<int64_t>(first_bad, 0))];
    EXPECT_EQ(got_t[size_t(r)], got_t2[size_t(r)]) << "sample_tokens and the test hook disagree";
    if (e.greedy) {
      EXPECT_EQ(got_t[size_t(r)], e.token) << "greedy token";
      continue;
    }
    int64_t kept_ref = 0, kept_gpu = 0, set_diff = 0, ambiguous_diff = 0, first_diff = -1;
    double worst_rel = 0, diff_mass = 0;
    for (int i = 0; i < V; ++i) {
      const double pr = e.probs[size_t(i)], pg = got_p[size_t(r) * V + i];
      kept_ref += pr > 0, kept_gpu += pg > 0;
      if ((pr > 0) != (pg > 0)) {
        diff_mass += pr + pg;
        if (e.ambiguous[size_t(i)]) {
          ++ambiguous_diff;
          continue;
        }
        if (first_diff < 0) first_diff = i;
        ++set_diff;
      } else if (pr > 0) {
        worst_rel = std::max(worst_rel, std::fabs(pg - pr) / pr);
      }
    }
    EXPECT_EQ(set_diff, 0) << "kept sets differ: ref keeps " << kept_ref << ", gpu " << kept_gpu << ", first token "
                           << first_diff << " (ref p " << e.probs[size_t(std::max<int64_t>(first_diff, 0))] << ")";
    // A boundary token decided otherwise renormalises the rest by its share.
    EXPECT_LE(worst_rel, 2e-6 + 2 * diff_mass) << "kept probabilities";
    if (ambiguous_diff) std::printf("  (%lld boundary tokens within 1e-6 of a threshold decided otherwise)\n", (long long)ambiguous_diff);
    EXPECT_GT(e.probs[size_t(std::clamp(got_t[size_t(r)], 0, V - 1))], 0.0) << "drawn token " << got_t[size_t(r)]
                                                                            << " is not in the kept set";
    std::printf("  %-28s V %6d: kept %lld, max rel Δp %.2e, token %d\n", c.name, V, (long long)kept_ref, worst_rel,
                got_t[size_t(r)]);
  }
}

std::vector<Case> standard_cases(int V) {
  const auto pr = ids(300, V, 11), out = ids(40, V, 12), out_rep = ids(5, std::min(V, 30), 13);
  std::vector<Case> c;
  c.push_back({"greedy", row_of(0.f, 0, 1.f, 0.f), {}, {}});
  c.push_back({"greedy+penalties", row_of(0.f, 0, 1.f, 0.f), pr, out});
  c.back().row.repetition_penalty = 1.3f, c.back().row.frequency_penalty = 0.4f, c.back().row.presence_penalty = 0.7f;
  c.push_back({"greedy ties", row_of(0.f, 0, 1.f, 0.f), {}, {}});
  c.push_back({"T=1", row_of(1.f, 0, 1.f, 0.f, 5, 9), {}, {}});
  c.push_back({"T=0.7 min_p=0.05", row_of(0.7f, 0, 1.f, 0.05f), {}, {}});
  c.push_back({"top_k=20", row_of(1.f, 20, 1.f, 0.f), {}, {}});
  c.push_back({"top_k=20 top_p=0.95 T=0.7", row_of(0.7f, 20, 0.95f, 0.f), {}, {}});
  c.push_back({"top_p=0.9", row_of(1.f, 0, 0.9f, 0.f), {}, {}});
  c.push_back({"top_p=0.8 min_p=0.02", row_of(1.1f, 0, 0.8f, 0.02f), {}, {}});
  c.push_back({"k50 p0.9 min_p0.1 +pen", row_of(0.9f, 50, 0.9f, 0.1f), pr, out_rep});
  c.back().row.repetition_penalty = 1.1f, c.back().row.frequency_penalty = 0.2f, c.back().row.presence_penalty = 0.1f;
  c.push_back({"top_k=5 ties", row_of(1.f, 5, 1.f, 0.f), {}, {}});
  c.push_back({"top_k=7 top_p=0.5 ties", row_of(1.f, 7, 0.5f, 0.f), {}, {}});
  c.push_back({"top_p=0.99 flat", row_of(1.f, 0, 0.99f, 0.f), {}, {}});
  c.push_back({"top_k=20000 top_p=0.9", row_of(1.f, 20000, 0.9f, 0.f), {}, {}});
  c.push_back({"top_k=20 mostly -inf", row_of(1.f, 20, 1.f, 0.f), {}, {}});
  c.push_back({"top_p=0.9 mostly -inf", row_of(1.f, 0, 0.9f, 0.f), {}, {}});
  c.push_back({"all nan/-inf", row_of(1.f, 20, 0.9f, 0.f), {}, {}});
  c.push_back({"+inf", row_of(1.f, 0, 1.f, 0.f), {}, {}});
  c.push_back({"top_k>=V", row_of(1.f, V, 1.f, 0.f), {}, {}});
  c.push_back({"tiny T overflow", row_of(1e-38f, 0, 1.f, 0.f), {}, {}});
  return c;
}

std::vector<std::vector<float>> standard_logits(const std::vector<Case>& cases, int V) {
  std::vector<std::vector<float>> l;
  for (size_t r = 0; r < cases.size(); ++r) {
    const std::string n = cases[r].name;
    int kind = 0;
    if (n.find("ties") != std::string::npos) kind = 1;
    if (n.find("flat") != std::string::npos || n.find("20000") != std::string::npos) kind = 2;
    if (n.find("-inf") != std::string::npos) kind = 3;
    auto v = make_logits(V, 100 + r, kind);
    if (n == "greedy ties") {
      const float m = *std::max_element(v.begin(), v.end());
      v[size_t(V / 3)] = v[size_t(V / 2)] = v[size_t(V - 1)] = m + 1.f;  // tied max: lowest id wins
    }
    if (n == "all nan/-inf")
      for (int i = 0; i < V; ++i) v[size_t(i)] = i % 2 ? std::numeric_limits<float>::quiet_NaN() : -kInf;
    if (n == "+inf") v[size_t(V / 2)] = v[size_t(V - 2)] = kInf;
    if (n == "T=1" && V > 10) v[3] = std::numeric_limits<float>::quiet_NaN();
    l.push_back(std::move(v));
  }
  return l;
}

TEST(Sampling, Vocab27B) {
  const int V = 248320;
  const auto cases = standard_cases(V);
  run_cases(cases, standard_logits(cases, V), V);
}

TEST(Sampling, SmallOddVocab) {  // V not a multiple of 4 (scalar loads), and V smaller than the buckets
  for (int V : {1003, 37}) {
    auto cases = standard_cases(V);
    for (auto& c : cases)
      if (c.row.top_k > V / 2 && std::string(c.name) != "top_k>=V") c.row.top_k = V / 2;
    run_cases(cases, standard_logits(cases, V), V);
  }
}

TEST(Sampling, RandomRows) {  // many random settings in one batch
  const int V = 32000 + 3, R = 48;
  std::vector<Case> cases;
  std::vector<std::vector<float>> logits;
  for (int r = 0; r < R; ++r) {
    const uint64_t h = mix64(777 + uint64_t(r));
    const float t = (h & 7) == 0 ? 0.f : 0.3f + float((h >> 3) & 15) / 10.f;
    const int k = (h >> 8) & 1 ? int((h >> 10) % 200) : 0;
    const float top_p = (h >> 20) & 1 ? 0.5f + float((h >> 21) % 50) / 100.f : 1.f;
    const float min_p = (h >> 30) & 1 ? float((h >> 31) % 20) / 100.f : 0.f;
    Case c{"random", row_of(t, k, top_p, min_p, h, uint64_t(r)), ids(int((h >> 40) % 50), V, h), ids(int((h >> 50) % 20), V, h + 1)};
    c.row.repetition_penalty = (h >> 45) & 1 ? 1.2f : 1.f;
    c.row.frequency_penalty = (h >> 46) & 1 ? 0.3f : 0.f;
    cases.push_back(c);
    logits.push_back(make_logits(V, 5000 + uint64_t(r), int((h >> 60) % 3)));
  }
  run_cases(cases, logits, V);
}

// Draws of one row with a known distribution: counts vs expectation (Pearson χ²).
std::vector<int> draw_counts(const std::vector<float>& logits, GpuSamplingRow row, int draws, uint64_t offset0) {
  const int V = int(logits.size());
  std::vector<float> flat;
  std::vector<GpuSamplingRow> rows;
  for (int d = 0; d < draws; ++d) {
    flat.insert(flat.end(), logits.begin(), logits.end());
    row.offset = offset0 + uint64_t(d);
    rows.push_back(row);
  }
  cuda::Stream s;
  DevBuf<float> dl(flat.size());
  DevBuf<GpuSamplingRow> drows(rows.size());
  DevBuf<int32_t> dout{size_t(draws)};
  const size_t wsb = cuda::sampling_workspace_bytes(draws, V);
  DevBuf<uint8_t> ws(wsb);
  dl.put(flat, s);
  drows.put(rows, s);
  cuda::sample_tokens(dl.p, draws, V, drows.p, nullptr, dout.p, ws.p, wsb, s);
  std::vector<int> counts(static_cast<size_t>(V), 0);
  for (int32_t t : dout.get(s)) ++counts[size_t(std::clamp(t, 0, V - 1))];
  return counts;
}

void chi_square(const std::vector<int>& counts, const std::vector<double>& p, int draws, const char* what) {
  double chi2 = 0;
  int dof = -1;
  for (size_t i = 0; i < p.size(); ++i) {
    if (p[i] == 0) {
      EXPECT_EQ(counts[i], 0) << what << ": token " << i << " has probability 0";
      continue;
    }
    const double e = p[i] * draws;
    chi2 += (counts[i] - e) * (counts[i] - e) / e;
    ++dof;
  }
  std::printf("  %s: chi2 %.2f with %d dof (bound 45)\n", what, chi2, dof);
  EXPECT_LT(chi2, 45.0) << what;
}

TEST(Sampling, ChiSquare) {
  const std::vector<double> p = {0.4, 0.2, 0.15, 0.1, 0.08, 0.04, 0.02, 0.01, 0, 0, 0, 0};
  std::vector<float> l;
  for (double x : p) l.push_back(x > 0 ? float(std::log(x)) + 3.f : -kInf);
  const int draws = 20000;
  chi_square(draw_counts(l, row_of(1.f, 0, 1.f, 0.f, 42), draws, 0), p, draws, "T=1");
  // top_k = 3: the first three renormalised; the sort path (one candidate bucket each).
  std::vector<double> p3(p.size(), 0);
  for (int i = 0; i < 3; ++i) p3[size_t(i)] = p[size_t(i)] / 0.75;
  chi_square(draw_counts(l, row_of(1.f, 3, 1.f, 0.f, 43), draws, 100000), p3, draws, "top_k=3");
  // T = 2: p ∝ √p_i, through the top-p path with top_p = 1 − 1e-6 (keeps all 8: the last one's
  // share, ~4%, is far above 1e-6).
  std::vector<double> pt(p.size(), 0);
  double s = 0;
  for (size_t i = 0; i < p.size(); ++i) s += pt[i] = std::sqrt(p[i]);
  for (double& x : pt) x /= s;
  chi_square(draw_counts(l, row_of(2.f, 0, 0.999999f, 0.f, 44), draws, 7), pt, draws, "T=2 top_p");
}

TEST(Sampling, Determinism) {
  const int V = 248320;
  auto l = make_logits(V, 99, 2);  // flat: every draw depends on the random numbers
  std::vector<int32_t> first;
  for (int rep = 0; rep < 2; ++rep) {
    std::vector<std::vector<float>> logits;
    std::vector<Case> cases;
    for (int r = 0; r < 16; ++r) {
      cases.push_back({"det", row_of(1.f, r % 2 ? 0 : 1000, r % 4 == 1 ? 0.9f : 1.f, 0.f, 1234, uint64_t(r / 2)), {}, {}});
      logits.push_back(l);
    }
    std::vector<float> flat;
    std::vector<GpuSamplingRow> rows;
    for (int r = 0; r < 16; ++r) {
      flat.insert(flat.end(), l.begin(), l.end());
      rows.push_back(cases[size_t(r)].row);
    }
    cuda::Stream s;
    DevBuf<float> dl(flat.size());
    DevBuf<GpuSamplingRow> drows(rows.size());
    DevBuf<int32_t> dout(16);
    const size_t wsb = cuda::sampling_workspace_bytes(16, V);
    DevBuf<uint8_t> ws(wsb);
    dl.put(flat, s);
    drows.put(rows, s);
    cuda::sample_tokens(dl.p, 16, V, drows.p, nullptr, dout.p, ws.p, wsb, s);
    const auto t = dout.get(s);
    if (rep == 0) first = t;
    else EXPECT_EQ(t, first) << "same (seed, offset) must give the same tokens";
  }
  // Rows 1, 3, 5, ... (no filter) have offsets 0..7: all different tokens from a flat 248k vocab.
  std::set<int32_t> distinct;
  for (int r = 1; r < 16; r += 2) distinct.insert(first[size_t(r)]);
  EXPECT_GE(distinct.size(), 7u) << "different offsets should give different tokens";
  // Rows 0 and 2 (top_k 1000, offsets 0 and 1) differ too; rows with equal settings and offsets agree
  // with a single-row call (independent of the batch).
  EXPECT_NE(first[0], first[2]);
}

// ---- Timing: median of 20 calls, logits restored before each (not timed).
TEST(SamplingPerf, Vocab27B) {
  const int V = 248320;
  for (int R : {1, 64}) {
    for (int mode = 0; mode < 3; ++mode) {
      std::vector<float> flat;
      std::vector<GpuSamplingRow> rows;
      for (int r = 0; r < R; ++r) {
        const auto l = make_logits(V, 300 + uint64_t(r), 0);
        flat.insert(flat.end(), l.begin(), l.end());
        rows.push_back(mode == 0 ? row_of(0.f, 0, 1.f, 0.f)
                       : mode == 1 ? row_of(0.7f, 20, 0.95f, 0.f, 5, uint64_t(r))
                                   : row_of(1.f, 0, 1.f, 0.f, 5, uint64_t(r)));
      }
      cuda::Stream s;
      DevBuf<float> dl(flat.size()), pristine(flat.size());
      DevBuf<GpuSamplingRow> drows(rows.size());
      DevBuf<int32_t> dout{size_t(R)};
      const size_t wsb = cuda::sampling_workspace_bytes(R, V);
      DevBuf<uint8_t> ws(wsb);
      pristine.put(flat, s);
      drows.put(rows, s);
      cuda::Event e0, e1;
      std::vector<float> ms;
      for (int it = 0; it < 23; ++it) {
        GDN_CUDA_CHECK(cudaMemcpyAsync(dl.p, pristine.p, flat.size() * 4, cudaMemcpyDeviceToDevice, s));
        e0.record(s);
        cuda::sample_tokens(dl.p, R, V, drows.p, nullptr, dout.p, ws.p, wsb, s);
        e1.record(s);
        const float t = e1.ms_since(e0);
        if (it >= 3) ms.push_back(t);
      }
      std::sort(ms.begin(), ms.end());
      const char* name = mode == 0 ? "greedy" : mode == 1 ? "T0.7 top_k20 top_p0.95" : "T1 no filter";
      std::printf("[ perf ] sample_tokens R=%d V=%d %-24s median %.1f us (min %.1f)\n", R, V, name,
                  1000.0 * ms[ms.size() / 2], 1000.0 * ms[0]);
    }
  }
}

}  // namespace
}  // namespace gdn::test
