// GPU linear layers vs the CPU reference on random data: every layout, every 27B linear shape,
// odd sizes (N and K tails, M not a multiple of anything), both paths at every M.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <cstring>

#include "gpu_test_util.h"

namespace gdn::test {
namespace {

struct Shape {
  const char* name;
  int64_t N, K;
};

const Shape k27B[] = {{"in_proj_qkv", 10240, 5120}, {"in_proj_z", 6144, 5120}, {"out_proj|o_proj", 5120, 6144},
                      {"q_proj", 12288, 5120},      {"k_proj|v_proj", 1024, 5120}, {"gate|up_proj", 17408, 5120},
                      {"down_proj", 5120, 17408}};
const int64_t kMs[] = {1, 3, 7, 13, 33, 64, 65, 200};

bool nvfp4(Layout l) { return l == Layout::Nvfp4A4 || l == Layout::Nvfp4W4A16; }

// Checks one weight at every M in `ms` on both paths; returns false when anything failed.
void check_weight(const HostLinear& h, const std::vector<int64_t>& ms, uint64_t seed, const std::string& what) {
  const int64_t N = h.ref.rows, K = h.ref.cols, mmax = *std::max_element(ms.begin(), ms.end());
  const std::vector<uint16_t> xh = make_x(mmax, K, seed);
  const std::vector<float> xf = to_float(xh);
  const std::vector<float> ref = cpu_linear(h.cpu_ref, xf, mmax);
  const std::vector<float> ref_abs = cpu_linear(abs_matrix(h.cpu_ref)->ref, abs_values(xf), mmax);

  const size_t ws_guess = size_t(1) << 20;
  GpuCtx g(cuda::device_bytes_for(h.ref) + size_t(mmax * K * 2 + mmax * N * 4) + ws_guess + (size_t(256) << 20));
  const cuda::DeviceLinear dw = cuda::upload_linear(h.ref, g.arena, g.stream);
  const cuda::LinearWorkspace ws = make_workspace(g, dw, mmax);
  auto* dx = g.arena.allocate_n<__nv_bfloat16>(size_t(mmax * K));
  auto* dy = g.arena.allocate_n<float>(size_t(mmax * N));
  GDN_CUDA_CHECK(cudaMemcpyAsync(dx, xh.data(), xh.size() * 2, cudaMemcpyHostToDevice, g.stream));

  for (cuda::LinearPath path : {cuda::LinearPath::SmallM, cuda::LinearPath::LargeM}) {
    Compare worst;
    for (int64_t M : ms) {
      const std::vector<float> y = gpu_linear(g, dw, dx, M, dy, ws, path);
      const Compare c = compare(y.data(), ref.data(), ref_abs.data(), M, N, K, row_tol_for(dw, path));
      EXPECT_TRUE(c.ok()) << what << " " << (path == cuda::LinearPath::SmallM ? "small" : "large") << " M=" << M
                          << ": " << c.str();
      if (c.worst_row_rel >= worst.worst_row_rel) worst = c;
    }
    std::printf("[ stats    ] %-14s %-16s %6lldx%-6lld %-5s worst row rel %.2e  max|d|/max|ref| %.2e\n",
                layout_name(h.layout), what.c_str(), (long long)N, (long long)K,
                path == cuda::LinearPath::SmallM ? "small" : "large", worst.worst_row_rel,
                worst.max_ref > 0 ? worst.max_abs / worst.max_ref : 0.0);
  }
}

// Runs the model's small-M path twice at every M in `ms` on one upload: the outputs must be
// bit-identical (split-K and stream-K partials are summed in a fixed order, never with atomics).
void expect_repeats_bitwise(const HostLinear& h, const std::vector<int64_t>& ms, uint64_t seed) {
  const int64_t N = h.ref.rows, K = h.ref.cols, mmax = *std::max_element(ms.begin(), ms.end());
  const std::vector<uint16_t> xh = make_x(mmax, K, seed);
  GpuCtx g(cuda::device_bytes_for(h.ref) + size_t(mmax * K * 2 + mmax * N * 4) + (size_t(256) << 20));
  const cuda::DeviceLinear dw = cuda::upload_linear(h.ref, g.arena, g.stream);
  const cuda::LinearWorkspace ws = make_workspace(g, dw, mmax);
  auto* dx = g.arena.allocate_n<__nv_bfloat16>(size_t(mmax * K));
  auto* dy = g.arena.allocate_n<float>(size_t(mmax * N));
  GDN_CUDA_CHECK(cudaMemcpyAsync(dx, xh.data(), xh.size() * 2, cudaMemcpyHostToDevice, g.stream));
  for (int64_t M : ms) {
    const auto a = gpu_linear(g, dw, dx, M, dy, ws, cuda::LinearPath::SmallM);
    const auto b = gpu_linear(g, dw, dx, M, dy, ws, cuda::LinearPath::SmallM);
    EXPECT_EQ(0, std::memcmp(a.data(), b.data(), a.size() * 4)) << layout_name(h.layout) << " M=" << M;
  }
}

class Linear27B : public ::testing::TestWithParam<Layout> {};

TEST_P(Linear27B, AllShapesAllM) {
  uint64_t seed = 1000 + uint64_t(GetParam()) * 100;
  for (const Shape& s : k27B) {
    const auto h = make_linear(GetParam(), s.N, s.K, seed++);
    check_weight(*h, std::vector<int64_t>(std::begin(kMs), std::end(kMs)), seed++, s.name);
  }
}

INSTANTIATE_TEST_SUITE_P(Layouts, Linear27B,
                         ::testing::Values(Layout::Bf16, Layout::Fp8PcA8, Layout::Fp8PcW8A16, Layout::Fp8BlkA8,
                                           Layout::Fp8BlkW8A16, Layout::Nvfp4A4, Layout::Nvfp4W4A16),
                         [](const auto& info) { return std::string(layout_name(info.param)); });

// Odd sizes: N not a multiple of 16/32/128, K tails (NVFP4 needs K % 16 == 0), tiny N.
class LinearOdd : public ::testing::TestWithParam<Layout> {};

TEST_P(LinearOdd, TailsAndOddM) {
  const Shape odd[] = {{"n1", 1, 256},      {"n100_k1000", 100, 1000}, {"n257_k1040", 257, 1040},
                       {"n300_k77", 300, 77}, {"n48_k2000", 48, 2000}, {"n130_k4112", 130, 4112}};
  uint64_t seed = 5000 + uint64_t(GetParam()) * 100;
  for (const Shape& s : odd) {
    if (nvfp4(GetParam()) && s.K % 16 != 0) continue;
    const auto h = make_linear(GetParam(), s.N, s.K, seed++);
    const std::vector<int64_t> ms = quick() ? std::vector<int64_t>{1, 7, 65} : std::vector<int64_t>(std::begin(kMs), std::end(kMs));
    check_weight(*h, ms, seed++, s.name);
  }
}

INSTANTIATE_TEST_SUITE_P(Layouts, LinearOdd,
                         ::testing::Values(Layout::Bf16, Layout::F16, Layout::F32, Layout::Fp8PcA8, Layout::Fp8PcW8A16,
                                           Layout::Fp8BlkA8, Layout::Fp8BlkW8A16, Layout::Nvfp4A4, Layout::Nvfp4W4A16),
                         [](const auto& info) { return std::string(layout_name(info.param)); });

// lm_head 248320 × 5120 at small M (BF16, and the FP8 layouts of checkpoint (e) / per-channel).
class LmHead : public ::testing::TestWithParam<Layout> {};

TEST_P(LmHead, SmallM) {
  const auto h = make_linear(GetParam(), 248320, 5120, 77 + uint64_t(GetParam()));
  check_weight(*h, {1, 3}, 78, "lm_head");
}

INSTANTIATE_TEST_SUITE_P(Layouts, LmHead, ::testing::Values(Layout::Bf16, Layout::Fp8BlkA8, Layout::Fp8PcA8),
                         [](const auto& info) { return std::string(layout_name(info.param)); });

// Diagnostic (prints, never fails): cuBLASLt FP8 error with arbitrary FP32 scales vs scales that are
// exact in TF32 (powers of two for the weight; activation rows whose amax is 7 = 448·2⁻⁶).
TEST(LtFp8ScalePrecision, Diagnostic) {
  const int64_t N = 4096, K = 5120, M = 64;
  auto h = make_linear(Layout::Fp8PcA8, N, K, 321);
  std::vector<uint16_t> xh = make_x(M, K, 322);
  for (int64_t m = 0; m < M; ++m) {
    for (int64_t k = 0; k < K; ++k) {
      float v = bf16_to_float(xh[size_t(m * K + k)]);
      v = std::max(-6.9f, std::min(6.9f, m == 2 || m == 4 || m == 5 ? unit_float(mix64(uint64_t(m * K + k))) : v));
      xh[size_t(m * K + k)] = float_to_bf16(v);
    }
    xh[size_t(m * K + (m * 37) % K)] = float_to_bf16(7.f);
  }
  const std::vector<float> xf = to_float(xh);
  GpuCtx g(size_t(1) << 30);
  auto* dx = g.arena.allocate_n<__nv_bfloat16>(size_t(M * K));
  auto* dy = g.arena.allocate_n<float>(size_t(M * N));
  GDN_CUDA_CHECK(cudaMemcpyAsync(dx, xh.data(), xh.size() * 2, cudaMemcpyHostToDevice, g.stream));
  for (bool exact : {false, true}) {
    if (exact)
      for (float& s : h->quant->scales) s = std::exp2(std::round(std::log2(s)));
    const std::vector<float> ref = cpu_linear(h->cpu_ref, xf, M);
    const std::vector<float> ref_abs = cpu_linear(abs_matrix(h->cpu_ref)->ref, abs_values(xf), M);
    const cuda::DeviceLinear dw = cuda::upload_linear(h->ref, g.arena, g.stream);
    const cuda::LinearWorkspace ws = make_workspace(g, dw, M);
    for (cuda::LinearPath path : {cuda::LinearPath::SmallM, cuda::LinearPath::LargeM}) {
      const auto y = gpu_linear(g, dw, dx, M, dy, ws, path);
      const Compare c = compare(y.data(), ref.data(), ref_abs.data(), M, N, K);
      std::printf("[ diag     ] FP8 per-channel W8A8 %s path, %s scales: worst row rel %.2e\n",
                  path == cuda::LinearPath::SmallM ? "small (ours)" : "large (cuBLASLt)",
                  exact ? "TF32-exact" : "arbitrary FP32", c.worst_row_rel);
    }
  }
}

// linear_forward_bf16: the large-M path writing BF16 — within the fp32 path's tolerance of the CPU
// reference plus one BF16 rounding of each output (2⁻⁹ relative; held to 2⁻⁸ of the row norm and of
// the largest |ref|, which the rounded largest output alone nearly reaches); false, and nothing written,
// where that path does not take the call (small M, FP8 weight-only, a block-128 token tail).
class LinearBf16Out : public ::testing::TestWithParam<Layout> {};

TEST_P(LinearBf16Out, LargeMOnly) {
  const Layout lay = GetParam();
  const int64_t N = 1040, K = 2048, mmax = 201;
  const auto h = make_linear(lay, N, K, 4242 + uint64_t(lay));
  const std::vector<uint16_t> xh = make_x(mmax, K, 4243);
  const std::vector<float> xf = to_float(xh);
  const std::vector<float> ref = cpu_linear(h->cpu_ref, xf, mmax);
  const std::vector<float> ref_abs = cpu_linear(abs_matrix(h->cpu_ref)->ref, abs_values(xf), mmax);
  GpuCtx g(cuda::device_bytes_for(h->ref) + size_t(mmax * K * 2 + mmax * N * 4) + (size_t(256) << 20));
  const cuda::DeviceLinear dw = cuda::upload_linear(h->ref, g.arena, g.stream);
  const cuda::LinearWorkspace ws = make_workspace(g, dw, mmax);
  auto* dx = g.arena.allocate_n<__nv_bfloat16>(size_t(mmax * K));
  auto* dy = g.arena.allocate_n<__nv_bfloat16>(size_t(mmax * N));
  GDN_CUDA_CHECK(cudaMemcpyAsync(dx, xh.data(), xh.size() * 2, cudaMemcpyHostToDevice, g.stream));
  const bool weight_only_fp8 = lay == Layout::Fp8PcW8A16 || lay == Layout::Fp8BlkW8A16;
  const bool block_acts = lay == Layout::Fp8BlkA8;
  for (auto [M, path] : {std::pair{int64_t(200), cuda::LinearPath::LargeM}, {int64_t(201), cuda::LinearPath::LargeM},
                         {int64_t(200), cuda::LinearPath::SmallM}, {int64_t(200), cuda::LinearPath::Auto}}) {
    SCOPED_TRACE("M " + std::to_string(M) + (path == cuda::LinearPath::SmallM ? " small" : " large/auto"));
    GDN_CUDA_CHECK(cudaMemsetAsync(dy, 0xFF, size_t(M * N) * 2, g.stream));
    const bool ran = cuda::linear_forward_bf16(dw, dx, M, dy, ws, g.stream, path);
    GDN_CUDA_CHECK_LAUNCH();
    const bool expect = path != cuda::LinearPath::SmallM && !weight_only_fp8 && !(block_acts && M % 4 != 0) &&
                        (path == cuda::LinearPath::LargeM || M > cuda::small_m_limit(dw));
    EXPECT_EQ(ran, expect);
    if (!ran) continue;
    std::vector<uint16_t> y16(size_t(M * N));
    GDN_CUDA_CHECK(cudaMemcpyAsync(y16.data(), dy, y16.size() * 2, cudaMemcpyDeviceToHost, g.stream));
    g.stream.sync();
    const std::vector<float> y = to_float(y16);
    const Compare c = compare(y.data(), ref.data(), ref_abs.data(), M, N, K,
                              row_tol_for(dw, cuda::LinearPath::LargeM) + 1.0 / 256);
    EXPECT_TRUE(c.ok()) << c.str();
  }
}

INSTANTIATE_TEST_SUITE_P(Layouts, LinearBf16Out,
                         ::testing::Values(Layout::Bf16, Layout::Fp8PcA8, Layout::Fp8PcW8A16, Layout::Fp8BlkA8,
                                           Layout::Nvfp4A4, Layout::Nvfp4W4A16),
                         [](const auto& info) { return std::string(layout_name(info.param)); });

// Split-K and the last-CTA reduction are deterministic: the same call twice gives identical bits.
TEST(LinearDeterminism, SplitKRepeatsBitwise) {
  expect_repeats_bitwise(*make_linear(Layout::Fp8BlkA8, 1024, 5120, 9), {1, 16}, 10);
}

// The NVFP4 GEMV (1-3 tokens, weights of ≥ 4096 rows): row tails inside a 64-row tile, short K
// (1-5 groups, so stream-K splits every tile between CTAs), and bit-identical repeats.
class Nvfp4Gemv : public ::testing::TestWithParam<Layout> {};

TEST_P(Nvfp4Gemv, RowTailsShortKDeterministic) {
  const Shape shapes[] = {{"n4128_k1280", 4128, 1280}, {"n4100_k768", 4100, 768}, {"n4096_k256", 4096, 256}};
  uint64_t seed = 7000 + uint64_t(GetParam()) * 10;
  for (const Shape& s : shapes) {
    const auto h = make_linear(GetParam(), s.N, s.K, seed++);
    check_weight(*h, {1, 2, 3}, seed++, s.name);
  }
  expect_repeats_bitwise(*make_linear(GetParam(), 4128, 1280, seed), {1, 3}, seed + 1);
}

INSTANTIATE_TEST_SUITE_P(Layouts, Nvfp4Gemv, ::testing::Values(Layout::Nvfp4A4, Layout::Nvfp4W4A16),
                         [](const auto& info) { return std::string(layout_name(info.param)); });

}  // namespace
}  // namespace gdn::test
