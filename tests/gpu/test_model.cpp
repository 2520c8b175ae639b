// The whole GPU forward (model/cuda) against the fp32 CPU reference (model/, itself checked against
// transformers) on every fixture: BF16/F32 checkpoints and all quantized layouts.
//
// Tolerance, measured rather than guessed. The GPU feeds every GEMM BF16 activations (the CPU: fp32,
// then the same declared activation quantization), keeps q/K/V in BF16 and runs the chunked delta
// rule on TF32 tensor cores. The fixtures are tiny random-weight models whose logits turn out to be
// very sensitive to that: rounding ONLY the GEMM inputs to BF16 on the CPU (set_bf16_gemm_inputs)
// already moves a 200-token prompt's logits by 0.6–5% per row on average (worst rows 6–70%) for
// the BF16/F32 fixtures, 7–8% for FP8 W8A8 and 26% for NVFP4 W4A4, where a BF16 difference flips
// 4-bit activation codes. So each test measures that noise on the CPU for the same tokens and holds
// the GPU to it:
//   mean row ‖Δ‖/‖ref‖ (GPU vs fp32 CPU) ≤ 2 × the noise's + 0.01,
//   top-1 changes (rows where the CPU's top-2 margin > 0.1·sd) ≤ 2 × the noise's + 2 + rows/16,
// and, for quantized fixtures, the same forward weight-only (W8A16/W4A16: no activation codes to
// flip) to the BF16 fixtures' bound. A wrong op (a missing norm, a swapped gate, a stale state, a
// bad scale) moves the logits by O(1) relative and fails these bounds.
#include <gtest/gtest.h>

#include <algorithm>
#include <cctype>
#include <cstring>
#include <cmath>
#include <numeric>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/thread_pool.h"
#include "kernels/cuda/cuda_check.h"
#include "model/cuda/gpu_model.h"
#include "model/qwen35_model.h"
#include "test_util.h"

namespace gdn::test {
namespace {

using cuda::GpuCache;
using cuda::GpuModel;
using cuda::SeqStep;

ThreadPool& cpu_pool() {
  static ThreadPool p;
  return p;
}

struct Pair {
  std::unique_ptr<Qwen35Model> cpu;
  std::unique_ptr<GpuModel> gpu;
  std::unique_ptr<GpuCache> cache;
};

Pair load_pair(const std::string& dir, cuda::KvDtype kv = cuda::KvDtype::Bf16, int max_tokens = 512,
               bool graphs = true, ActivationMode mode = ActivationMode::Declared, bool fuse_act_quant = true,
               bool bf16_outputs = true) {
  Pair p;
  p.cpu = Qwen35Model::load(fixture(dir), mode);
  cudaStream_t s;
  GDN_CUDA_CHECK(cudaStreamCreate(&s));
  cuda::GpuWeights w = cuda::upload_weights(p.cpu->config(), p.cpu->weights(), s, false);
  cudaStreamDestroy(s);
  cuda::GpuModelOptions o;
  o.max_tokens = max_tokens;
  o.max_seqs = 8;
  o.max_context = 2048;
  o.max_logit_rows = max_tokens;
  o.use_graphs = graphs;
  o.fuse_act_quant = fuse_act_quant;
  o.bf16_outputs = bf16_outputs;
  p.gpu = std::make_unique<GpuModel>(p.cpu->config(), std::move(w), o);
  p.cache = p.gpu->make_cache(kv, 8, 0, 200);
  return p;
}

std::vector<int32_t> prompt_ids(int64_t n, int64_t vocab, uint64_t seed) {
  std::vector<int32_t> ids(static_cast<size_t>(n));
  uint64_t z = seed;
  for (auto& id : ids) {
    z = z * 6364136223846793005ull + 1442695040888963407ull;
    id = int32_t((z >> 33) % uint64_t(vocab));
  }
  return ids;
}

std::vector<float> cpu_logits(const Qwen35Model& m, const std::vector<int32_t>& ids) {
  const int64_t V = m.config().vocab_size;
  std::vector<float> out(ids.size() * size_t(V));
  SequenceState st = m.new_state();
  m.forward(ids, st, {out.data(), true, nullptr}, cpu_pool());
  return out;
}

// One sequence on the GPU fed in the given chunk sizes (the last repeats); all logits rows.
struct GpuSeq {
  std::vector<int32_t> blocks;
  int32_t slot = -1;
  int64_t len = 0;
};

GpuSeq new_seq(Pair& p) {
  GpuSeq s;
  s.slot = p.cache->allocate_slot();
  p.cache->reset_slot(s.slot, p.gpu->stream());
  s.blocks = p.cache->allocate_blocks(2048 / cuda::kKvBlockTokens);
  return s;
}

SeqStep make_step(GpuSeq& s, std::span<const int32_t> toks, int32_t logits) {
  SeqStep st;
  st.tokens = toks;
  st.start = int32_t(s.len);
  st.blocks = s.blocks;
  st.slot = s.slot;
  st.logits = logits;
  return st;
}

std::vector<float> gpu_logits(Pair& p, const std::vector<int32_t>& ids, std::vector<int64_t> chunks,
                              bool graphs = true) {
  const int64_t V = p.cpu->config().vocab_size, n = int64_t(ids.size());
  std::vector<float> out(size_t(n * V));
  GpuSeq s = new_seq(p);
  for (size_t c = 0; s.len < n; ++c) {
    const int64_t k = std::min(chunks[std::min(c, chunks.size() - 1)], n - s.len);
    SeqStep st = make_step(s, std::span<const int32_t>(ids.data() + s.len, size_t(k)), int32_t(k));
    const auto o = p.gpu->step(std::span<const SeqStep>(&st, 1), *p.cache, graphs);
    p.gpu->copy_logits(o, out.data() + s.len * V);
    s.len += k;
  }
  p.cache->release_blocks(s.blocks);
  p.cache->release_slot(s.slot);
  return out;
}

struct Agreement {
  double worst_rel = 0, mean_rel = 0;  // over rows of ‖Δ‖/‖ref‖
  int top1_checked = 0, top1_diff = 0;
};

Agreement compare(const std::vector<float>& ref, const std::vector<float>& got, int64_t V) {
  Agreement a;
  const int64_t rows = int64_t(ref.size()) / V;
  for (int64_t r = 0; r < rows; ++r) {
    const float* x = ref.data() + r * V;
    const float* y = got.data() + r * V;
    double d2 = 0, n2 = 0, mean = 0;
    for (int64_t i = 0; i < V; ++i) {
      d2 += double(y[i] - x[i]) * (y[i] - x[i]);
      n2 += double(x[i]) * x[i];
      mean += x[i];
    }
    mean /= double(V);
    const double sd = std::sqrt(std::max(0.0, n2 / double(V) - mean * mean));
    a.worst_rel = std::max(a.worst_rel, std::sqrt(d2 / std::max(n2, 1e-30)));
    a.mean_rel += std::sqrt(d2 / std::max(n2, 1e-30)) / double(rows);
    const int64_t t1 = std::max_element(x, x + V) - x;
    float second = -INFINITY;
    for (int64_t i = 0; i < V; ++i)
      if (i != t1) second = std::max(second, x[i]);
    if (x[t1] - second > 0.1 * sd) {
      ++a.top1_checked;
      a.top1_diff += (std::max_element(y, y + V) - y) != t1;
    }
  }
  return a;
}

void expect_close(const Agreement& a, double tol, const std::string& what) {
  std::printf("[ stats ] %-44s mean row rel %.3e, worst %.3e, top-1 %d/%d differ\n", what.c_str(), a.mean_rel,
              a.worst_rel, a.top1_diff, a.top1_checked);
  EXPECT_LE(a.worst_rel, tol) << what;
  EXPECT_EQ(a.top1_diff, 0) << what;
  EXPECT_GT(a.top1_checked, 0) << what;
}

// What BF16 GEMM inputs alone do to the CPU reference's logits for these tokens.
Agreement bf16_noise(const Qwen35Model& m, const std::vector<int32_t>& ids, const std::vector<float>& ref) {
  set_bf16_gemm_inputs(true);
  const std::vector<float> rounded = cpu_logits(m, ids);
  set_bf16_gemm_inputs(false);
  return compare(ref, rounded, m.config().vocab_size);
}

void expect_within_noise(const Agreement& gpu, const Agreement& noise, const std::string& what) {
  std::printf("[ stats ] %-44s GPU: mean row rel %.3e (worst %.3e), top-1 %d/%d | BF16-input noise: mean %.3e "
              "(worst %.3e), top-1 %d\n",
              what.c_str(), gpu.mean_rel, gpu.worst_rel, gpu.top1_diff, gpu.top1_checked, noise.mean_rel,
              noise.worst_rel, noise.top1_diff);
  EXPECT_LE(gpu.mean_rel, 2 * noise.mean_rel + 0.01) << what;
  // Top-1 changes are a small-count statistic (a flip needs a row whose top-2 sit within the
  // perturbation; ~50 rows per case), and FP8 W8A8 decode steps add the FP8 tensor-core
  // accumulation of the wgmma GEMV (~2.5e-4 per GEMM output, tests/gpu/test_linear_wgmma.cpp) to the
  // BF16 noise: allow a further 1 in 16 rows. A real mistake shows in the mean bound above.
  EXPECT_LE(gpu.top1_diff, 2 * noise.top1_diff + 2 + gpu.top1_checked / 16) << what;
  EXPECT_GT(gpu.top1_checked, 0) << what;
}

bool quantized(const std::string& dir) { return dir.rfind("quant/", 0) == 0; }

class GpuModelFixtures : public ::testing::TestWithParam<const char*> {};

// One forward over a 200-token prompt, all positions.
TEST_P(GpuModelFixtures, MatchesCpuReference) {
  const std::string dir = GetParam();
  Pair p = load_pair(dir);
  const int64_t V = p.cpu->config().vocab_size;
  const auto ids = prompt_ids(200, V, 7);
  const auto ref = cpu_logits(*p.cpu, ids);
  expect_within_noise(compare(ref, gpu_logits(p, ids, {200}), V), bf16_noise(*p.cpu, ids, ref), dir + " prefill 200");
}

// Quantized fixtures weight-only (W8A16 / W4A16): the weight decoding of every layout without
// activation codes that BF16 inputs can flip, so the noise is the BF16 fixtures'.
TEST_P(GpuModelFixtures, WeightOnlyMatchesCpuReference) {
  const std::string dir = GetParam();
  if (!quantized(dir)) GTEST_SKIP() << "dense checkpoint";
  Pair p = load_pair(dir, cuda::KvDtype::Bf16, 512, true, ActivationMode::WeightOnly);
  const int64_t V = p.cpu->config().vocab_size;
  const auto ids = prompt_ids(200, V, 7);
  const auto ref = cpu_logits(*p.cpu, ids);
  const Agreement noise = bf16_noise(*p.cpu, ids, ref);
  expect_within_noise(compare(ref, gpu_logits(p, ids, {200}), V), noise, dir + " weight-only prefill 200");
  EXPECT_LE(noise.mean_rel, 0.06) << "weight-only noise should be at the BF16 fixtures' level";
}

// Prefill 37, then one token at a time (decode steps, CUDA graphs), vs the CPU's single forward;
// and another split (3 + 64 + 5, then decode).
TEST_P(GpuModelFixtures, IncrementalMatchesFull) {
  const std::string dir = GetParam();
  Pair p = load_pair(dir);
  const int64_t V = p.cpu->config().vocab_size;
  const auto ids = prompt_ids(70, V, 11);
  const auto ref = cpu_logits(*p.cpu, ids);
  const Agreement noise = bf16_noise(*p.cpu, ids, ref);
  expect_within_noise(compare(ref, gpu_logits(p, ids, {37, 1}), V), noise, dir + " 37 + 1×33");
  expect_within_noise(compare(ref, gpu_logits(p, ids, {3, 64, 5, 1}), V), noise, dir + " 3 + 64 + 5 + 1×…");
}

INSTANTIATE_TEST_SUITE_P(All, GpuModelFixtures,
                         ::testing::Values("qwen35-wrapper-bf16", "qwen35-text-f32-tied", "qwen36-wrapper-sharded",
                                           "quant/ct-fp8-dynamic", "quant/qwen-fp8-block", "quant/fp8-block-lmhead",
                                           "quant/modelopt-nvfp4", "quant/ct-nvfp4"),
                         [](const auto& info) {
                           std::string s = info.param;
                           for (char& c : s)
                             if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
                           return s;
                         });

// A long prompt crossing many prefill steps (max_tokens 64) and many 64-token KV blocks.
TEST(GpuModel, LongPromptAcrossChunks) {
  Pair p = load_pair("qwen35-wrapper-bf16", cuda::KvDtype::Bf16, 64);
  const int64_t V = p.cpu->config().vocab_size;
  const auto ids = prompt_ids(1000, V, 5);
  const auto ref = cpu_logits(*p.cpu, ids);
  expect_within_noise(compare(ref, gpu_logits(p, ids, {64}), V), bf16_noise(*p.cpu, ids, ref),
                      "1000 tokens in 64-token steps");
}

// FP8 E4M3 KV cache (scale 1): one E4M3 rounding of K and V (2⁻⁴ relative) on top of the BF16
// noise; held to twice the BF16 bound.
TEST(GpuModel, Fp8KvCache) {
  Pair p = load_pair("qwen36-wrapper-sharded", cuda::KvDtype::Fp8E4m3);
  const int64_t V = p.cpu->config().vocab_size;
  const auto ids = prompt_ids(150, V, 9);
  const auto ref = cpu_logits(*p.cpu, ids);
  Agreement noise = bf16_noise(*p.cpu, ids, ref);
  noise.mean_rel *= 2;
  noise.top1_diff *= 2;
  expect_within_noise(compare(ref, gpu_logits(p, ids, {100, 1}), V), noise, "fp8 KV cache, 100 + 1×50");
}

// Graph replay == eager execution of the same padded decode step, bit for bit.
TEST(GpuModel, GraphEqualsEager) {
  Pair p = load_pair("qwen35-wrapper-bf16");
  const int64_t V = p.cpu->config().vocab_size;
  const auto ids = prompt_ids(40, V, 3);
  const auto eager = gpu_logits(p, ids, {20, 1}, false);
  const auto graph = gpu_logits(p, ids, {20, 1}, true);
  ASSERT_EQ(eager.size(), graph.size());
  EXPECT_EQ(0, std::memcmp(eager.data(), graph.data(), eager.size() * 4)) << "graph replay differs from eager";
}

// Logits of a 37-token step and a decode step with fuse_act_quant on and off, bit for bit.
void expect_fused_act_quant_equal(const char* fixture, uint64_t seed) {
  Pair fused = load_pair(fixture);
  Pair sep = load_pair(fixture, cuda::KvDtype::Bf16, 512, true, ActivationMode::Declared, false);
  const int64_t V = fused.cpu->config().vocab_size;
  const auto ids = prompt_ids(60, V, seed);
  const auto a = gpu_logits(fused, ids, {37, 1}), b = gpu_logits(sep, ids, {37, 1});
  ASSERT_EQ(a.size(), b.size());
  EXPECT_EQ(0, std::memcmp(a.data(), b.data(), a.size() * 4)) << fixture << ": fused activation quantization changes the logits";
}

// The norms / SwiGLU / gated norm quantizing the next linear's input themselves (fuse_act_quant)
// == the linears' own pre-kernel, bit for bit, on the FP8 W8A8 per-token fixture (chunks ≤ 64
// tokens: the small-M kernels, whose sums do not depend on the activation row stride).
TEST(GpuModel, FusedActQuantEqualsPreKernel) { expect_fused_act_quant_equal("quant/ct-fp8-dynamic", 5); }

// GEMM outputs written as BF16 (bf16_outputs) == fp32 outputs rounded by their consumers, bit for
// bit: a 37-token step and decode steps, where the FP8 wgmma kernel writes BF16 itself (per-channel
// at both sizes; block-128 at decode, its 37-token step keeps fp32 on the mma.sync kernel).
TEST(GpuModel, Bf16GemmOutputsEqualFp32) {
  for (const char* fixture : {"quant/ct-fp8-dynamic", "quant/qwen-fp8-block"}) {
    Pair bf16 = load_pair(fixture);
    Pair f32 = load_pair(fixture, cuda::KvDtype::Bf16, 512, true, ActivationMode::Declared, true, false);
    const int64_t V = bf16.cpu->config().vocab_size;
    const auto ids = prompt_ids(60, V, 7);
    const auto a = gpu_logits(bf16, ids, {37, 1}), b = gpu_logits(f32, ids, {37, 1});
    ASSERT_EQ(a.size(), b.size());
    EXPECT_EQ(0, std::memcmp(a.data(), b.data(), a.size() * 4)) << fixture << ": BF16 GEMM outputs change the logits";
  }
}

// The same for NVFP4 activations (ct-nvfp4: SwiGLU writes down_proj's q·s itself, in the 37-token
// step and in the decode step; its other rows are too narrow to fuse).
TEST(GpuModel, FusedNvfp4ActQuantEqualsPreKernel) { expect_fused_act_quant_equal("quant/ct-nvfp4", 6); }

// Three sequences in one step (a prefill chunk, a decode token, another chunk) == each alone.
TEST(GpuModel, MixedBatchEqualsAlone) {
  Pair p = load_pair("qwen36-wrapper-sharded");
  const int64_t V = p.cpu->config().vocab_size;
  const auto a = prompt_ids(90, V, 21), b = prompt_ids(41, V, 22), c = prompt_ids(130, V, 23);
  // Alone, with the same chunk boundaries (the chunked delta rule's chunks start at each step's
  // first token): a as 50 + 40; b as 40 + 1; c as 65 + 65.
  const auto ra = gpu_logits(p, a, {50, 40}), rb = gpu_logits(p, b, {40, 1}), rc = gpu_logits(p, c, {65});
  // Together: step 1 = [a[0:50], b[0:40], c[0:65]]; step 2 = [a[50:90], b[40:41], c[65:130]].
  GpuSeq sa = new_seq(p), sb = new_seq(p), sc = new_seq(p);
  std::vector<float> ga(a.size() * size_t(V)), gb(b.size() * size_t(V)), gc(c.size() * size_t(V));
  const int64_t cuts[3][3] = {{0, 50, 90}, {0, 40, 41}, {0, 65, 130}};
  GpuSeq* seqs[3] = {&sa, &sb, &sc};
  const std::vector<int32_t>* toks[3] = {&a, &b, &c};
  std::vector<float>* outs[3] = {&ga, &gb, &gc};
  for (int stepi = 0; stepi < 2; ++stepi) {
    std::vector<SeqStep> steps;
    for (int s = 0; s < 3; ++s) {
      const int64_t b0 = cuts[s][stepi], e0 = cuts[s][stepi + 1];
      steps.push_back(make_step(*seqs[s], std::span<const int32_t>(toks[s]->data() + b0, size_t(e0 - b0)),
                                int32_t(e0 - b0)));
    }
    const auto o = p.gpu->step(steps, *p.cache);
    std::vector<float> host(size_t(o.rows) * size_t(V));
    p.gpu->copy_logits(o, host.data());
    int64_t r = 0;
    for (int s = 0; s < 3; ++s) {
      const int64_t b0 = cuts[s][stepi], e0 = cuts[s][stepi + 1];
      std::copy_n(host.data() + r * V, (e0 - b0) * V, outs[s]->data() + b0 * V);
      r += e0 - b0;
      seqs[s]->len = e0;
    }
  }
  // Same kernels, other batch composition: the GEMM path and split choices may differ with the
  // token count (and b's decode token takes the prefill kernel inside a mixed step), so fp32
  // summation order differs: measured ≤ 4e-3 (amplified by these sensitive fixtures) — far below
  // what a sequence reading another's KV or state would do (O(1)).
  expect_close(compare(ra, ga, V), 1e-2, "mixed batch: a");
  expect_close(compare(rb, gb, V), 1e-2, "mixed batch: b");
  expect_close(compare(rc, gc, V), 1e-2, "mixed batch: c");
}

// The MTP head on the GPU vs the CPU's mtp_forward over the CPU's hidden states.
TEST(GpuModel, MtpMatchesCpu) {
  Pair p = load_pair("qwen35-wrapper-bf16");
  ASSERT_TRUE(p.gpu->has_mtp());
  const Qwen35Config& c = p.cpu->config();
  const int64_t V = c.vocab_size, H = c.hidden_size;
  const auto ids = prompt_ids(61, V, 31);
  const int64_t n = int64_t(ids.size()) - 1;  // positions 0..n-1 get hidden[p] + ids[p+1]
  // CPU: main forward for hidden states, then the MTP head (fp32, and with BF16 GEMM inputs for
  // the noise yardstick).
  auto cpu_mtp = [&](bool bf16) {
    set_bf16_gemm_inputs(bf16);
    std::vector<float> hidden(size_t(n * H)), out(size_t(n * V));
    SequenceState st = p.cpu->new_state(), mst = p.cpu->new_mtp_state();
    p.cpu->forward(std::span<const int32_t>(ids.data(), size_t(n)), st, {nullptr, true, hidden.data()}, cpu_pool());
    p.cpu->mtp_forward(hidden.data(), std::span<const int32_t>(ids.data() + 1, size_t(n)), mst, out.data(),
                       cpu_pool());
    set_bf16_gemm_inputs(false);
    return out;
  };
  const auto ref = cpu_mtp(false);
  const Agreement noise = compare(ref, cpu_mtp(true), V);
  // GPU: the main step leaves its hidden states; the MTP step reads them.
  GpuSeq s = new_seq(p);
  SeqStep main = make_step(s, std::span<const int32_t>(ids.data(), size_t(n)), 1);
  p.gpu->step(std::span<const SeqStep>(&main, 1), *p.cache);
  SeqStep mtp = make_step(s, std::span<const int32_t>(ids.data() + 1, size_t(n)), int32_t(n));
  const auto o = p.gpu->mtp_step(std::span<const SeqStep>(&mtp, 1), p.gpu->last_hidden(), *p.cache);
  std::vector<float> got(size_t(n * V));
  p.gpu->copy_logits(o, got.data());
  expect_within_noise(compare(ref, got, V), noise, "MTP head, 60 positions");
}

// Greedy sampling on the GPU picks the argmax of the GPU's own logits.
TEST(GpuModel, GreedySamplingPicksArgmax) {
  Pair p = load_pair("qwen35-wrapper-bf16");
  const int64_t V = p.cpu->config().vocab_size;
  const auto ids = prompt_ids(30, V, 41);
  GpuSeq s = new_seq(p);
  cuda::GpuSamplingRow row;
  row.temperature = 0.f;
  SeqStep st = make_step(s, ids, 1);
  st.sample = &row;
  const auto o = p.gpu->step(std::span<const SeqStep>(&st, 1), *p.cache);
  std::vector<float> host(static_cast<size_t>(V));
  p.gpu->copy_logits(o, host.data());
  EXPECT_EQ(o.sampled[0], int32_t(std::max_element(host.begin(), host.end()) - host.begin()));
}

// Bad steps are refused before anything runs.
TEST(GpuModel, RejectsBadSteps) {
  Pair p = load_pair("qwen35-wrapper-bf16");
  const int64_t V = p.cpu->config().vocab_size;
  GpuSeq s = new_seq(p);
  std::vector<int32_t> bad = {1, int32_t(V)};
  SeqStep st = make_step(s, bad, 1);
  EXPECT_THROW(p.gpu->step(std::span<const SeqStep>(&st, 1), *p.cache), InputError);
  std::vector<int32_t> ok = {1, 2};
  st = make_step(s, ok, 1);
  st.blocks = {};
  EXPECT_THROW(p.gpu->step(std::span<const SeqStep>(&st, 1), *p.cache), InputError);
}

}  // namespace
}  // namespace gdn::test
