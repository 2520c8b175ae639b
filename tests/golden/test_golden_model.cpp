// The CPU reference against goldens from Hugging Face transformers (tools/make_fixtures.py):
// full forward, chunked and token-by-token continuation, greedy decoding, MTP head.
#include <gtest/gtest.h>

#include "core/thread_pool.h"
#include "model/qwen35_model.h"
#include "runtime/generate.h"
#include "test_util.h"

namespace gdn::test {
namespace {

class GoldenModel : public ::testing::TestWithParam<std::string> {
 protected:
  static ThreadPool& pool() {
    static ThreadPool p(4);
    return p;
  }
  void SetUp() override {
    model_ = Qwen35Model::load(fixture(GetParam()));
    golden_ = std::make_unique<Golden>(GetParam());
  }
  // Feeds `ids` in the given segment lengths (0 = the rest) and returns all logits.
  std::vector<float> run(const std::vector<int32_t>& ids, const std::vector<int64_t>& segments) {
    const int64_t V = model_->config().vocab_size, n = int64_t(ids.size());
    std::vector<float> logits(size_t(n * V));
    SequenceState st = model_->new_state();
    int64_t pos = 0;
    for (size_t s = 0; pos < n; ++s) {
      const int64_t len = s < segments.size() && segments[s] > 0 ? std::min(segments[s], n - pos) : n - pos;
      model_->forward(std::span<const int32_t>(ids.data() + pos, size_t(len)), st, {logits.data() + pos * V, true, nullptr},
                      pool());
      pos += len;
    }
    EXPECT_EQ(st.length, n);
    return logits;
  }
  std::unique_ptr<Qwen35Model> model_;
  std::unique_ptr<Golden> golden_;
};

TEST_P(GoldenModel, FullForwardMatchesReference) {
  expect_logits_near(run(golden_->ints("long_ids"), {}), golden_->floats("long_logits"), "200-token prompt");
  expect_logits_near(run(golden_->ints("short_ids"), {}), golden_->floats("short_logits"), "37-token prompt");
}

TEST_P(GoldenModel, TokenByTokenMatchesReference) {
  // Every position through the recurrent delta rule and a growing KV cache.
  expect_logits_near(run(golden_->ints("long_ids"), std::vector<int64_t>(200, 1)), golden_->floats("long_logits"),
                     "token by token");
}

TEST_P(GoldenModel, ChunkedPrefillMatchesReference) {
  const auto ids = golden_->ints("long_ids");
  const auto want = golden_->floats("long_logits");
  for (int64_t chunk : {17, 64, 100}) {
    std::vector<int64_t> segs(size_t((200 + chunk - 1) / chunk), chunk);
    expect_logits_near(run(ids, segs), want, "chunks of " + std::to_string(chunk));
  }
  std::vector<int64_t> prefill_then_decode = {70};
  prefill_then_decode.resize(1 + 130, 1);
  expect_logits_near(run(ids, prefill_then_decode), want, "prefill 70 then token by token");
}

TEST_P(GoldenModel, GreedyContinuationIsIdentical) {
  GenerateOptions opts;
  opts.max_tokens = 24;
  opts.sampling.temperature = 0.f;
  const auto r = generate(*model_, golden_->ints("greedy_prompt"), opts, pool());
  EXPECT_EQ(r.tokens, golden_->ints("greedy_continuation"));
}

TEST_P(GoldenModel, MtpHeadMatchesReference) {
  ASSERT_TRUE(model_->has_mtp());
  const auto hidden = golden_->floats("mtp_hidden");
  const auto next = golden_->ints("mtp_next_ids");
  const auto want = golden_->floats("mtp_logits");
  const int64_t n = int64_t(next.size()), H = model_->config().hidden_size, V = model_->config().vocab_size;
  ASSERT_EQ(int64_t(hidden.size()), n * H);
  // Whole sequence at once, then the same positions in two pieces through the MTP KV cache.
  std::vector<float> got(size_t(n * V));
  SequenceState st = model_->new_mtp_state();
  model_->mtp_forward(hidden.data(), next, st, got.data(), pool());
  expect_logits_near(got, want, "MTP, one call");
  SequenceState st2 = model_->new_mtp_state();
  const int64_t split = 150;
  model_->mtp_forward(hidden.data(), std::span<const int32_t>(next.data(), split), st2, got.data(), pool());
  for (int64_t i = split; i < n; ++i)
    model_->mtp_forward(hidden.data() + i * H, std::span<const int32_t>(next.data() + i, 1), st2, got.data() + i * V,
                        pool());
  expect_logits_near(got, want, "MTP, 150 then one at a time");
}

TEST_P(GoldenModel, MtpReadsTheHiddenOfTheMainModel) {
  // The hidden fed to MTP is the main model's final-normed state: ours must match the golden one.
  const auto ids = golden_->ints("long_ids");
  const int64_t H = model_->config().hidden_size;
  std::vector<float> hidden(ids.size() * size_t(H));
  SequenceState st = model_->new_state();
  model_->forward(ids, st, {nullptr, true, hidden.data()}, pool());
  hidden.resize((ids.size() - 1) * size_t(H));
  const auto want = golden_->floats("mtp_hidden");
  const MaxDiff d = max_abs_diff(hidden, want);
  EXPECT_LE(d.value, 1e-3 * stddev(want)) << "worst element " << d.index;
}

INSTANTIATE_TEST_SUITE_P(Fixtures, GoldenModel,
                         ::testing::Values("qwen35-wrapper-bf16", "qwen35-text-f32-tied", "qwen36-wrapper-sharded"),
                         [](const auto& info) {
                           std::string s = info.param;
                           for (char& ch : s)
                             if (ch == '-') ch = '_';
                           return s;
                         });

}  // namespace
}  // namespace gdn::test
