// Fused projections (upload_fused_linear, formats.md §11): several weights with the same K
// concatenated along N into one DeviceLinear. Every column block of the fused output is checked
// against the CPU reference of its own part, on both paths, with the tolerances of
// gpu_test_util.h; and the fusions the numerics do not allow are refused.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <span>

#include "core/error.h"
#include "gpu_test_util.h"

namespace gdn::test {
namespace {

struct PartShape {
  const char* name;
  int64_t N;
};

// 27B-like q|k|v scaled down (K = 256); the odd set puts part boundaries off every tile / 16-byte
// boundary (not allowed for FP8 block-128).
const PartShape kQkv[] = {{"q", 512}, {"k", 128}, {"v", 128}};
const PartShape kOdd[] = {{"a", 100}, {"b", 37}, {"c", 64}};
const int64_t kFusedMs[] = {1, 7, 64, 200};

bool is_nvfp4(Layout l) { return l == Layout::Nvfp4A4 || l == Layout::Nvfp4W4A16; }
bool is_block(Layout l) { return l == Layout::Fp8BlkA8 || l == Layout::Fp8BlkW8A16; }

void check_fused(Layout layout, std::span<const PartShape> shapes, int64_t K, uint64_t seed) {
  std::vector<std::unique_ptr<HostLinear>> hs;
  std::vector<MatrixRef> refs;
  int64_t Ntot = 0;
  for (size_t i = 0; i < shapes.size(); ++i) {
    hs.push_back(make_linear(layout, shapes[i].N, K, seed + 17 * i));
    // NVFP4: a different weight global divisor per part (compressed-tensors in_proj_qkv vs in_proj_z).
    if (is_nvfp4(layout)) hs.back()->quant->nvfp4_weight_divisor *= 1.f + 0.37f * float(i);
    refs.push_back(hs.back()->ref);
    Ntot += shapes[i].N;
  }
  const int64_t mmax = *std::max_element(std::begin(kFusedMs), std::end(kFusedMs));
  const std::vector<uint16_t> xh = make_x(mmax, K, seed + 1000);
  const std::vector<float> xf = to_float(xh);
  std::vector<std::vector<float>> ref, ref_abs;
  for (const auto& h : hs) {
    ref.push_back(cpu_linear(h->cpu_ref, xf, mmax));
    ref_abs.push_back(cpu_linear(abs_matrix(h->cpu_ref)->ref, abs_values(xf), mmax));
  }

  GpuCtx g(cuda::device_bytes_for_fused(refs) + size_t(mmax * K * 2 + mmax * Ntot * 4) + (size_t(256) << 20));
  const cuda::DeviceLinear dw = cuda::upload_fused_linear(refs, g.arena, g.stream);
  ASSERT_EQ(dw.rows, Ntot);
  ASSERT_EQ(dw.parts, int(shapes.size()));
  EXPECT_EQ(dw.nvfp4_row_alpha != nullptr, is_nvfp4(layout));
  const cuda::LinearWorkspace ws = make_workspace(g, dw, mmax);
  auto* dx = g.arena.allocate_n<__nv_bfloat16>(size_t(mmax * K));
  auto* dy = g.arena.allocate_n<float>(size_t(mmax * Ntot));
  GDN_CUDA_CHECK(cudaMemcpyAsync(dx, xh.data(), xh.size() * 2, cudaMemcpyHostToDevice, g.stream));

  for (cuda::LinearPath path : {cuda::LinearPath::SmallM, cuda::LinearPath::LargeM, cuda::LinearPath::Auto}) {
    const char* pname = path == cuda::LinearPath::SmallM ? "small" : path == cuda::LinearPath::LargeM ? "large" : "auto";
    // Auto picks either path; hold it to the looser of the two tolerances.
    const double tol = std::max(row_tol_for(dw, cuda::LinearPath::SmallM), row_tol_for(dw, path == cuda::LinearPath::Auto ? cuda::LinearPath::LargeM : path));
    double worst = 0;
    for (int64_t M : kFusedMs) {
      const std::vector<float> y = gpu_linear(g, dw, dx, M, dy, ws, path);
      for (size_t i = 0; i < shapes.size(); ++i) {
        const int64_t N = shapes[i].N, c0 = dw.part_begin[i];
        ASSERT_EQ(dw.part_begin[i + 1] - c0, N);
        std::vector<float> yi(size_t(M * N));
        for (int64_t m = 0; m < M; ++m)
          std::copy_n(y.begin() + m * Ntot + c0, N, yi.begin() + m * N);
        const Compare c = compare(yi.data(), ref[i].data(), ref_abs[i].data(), M, N, K, tol);
        EXPECT_TRUE(c.ok()) << layout_name(layout) << " part " << shapes[i].name << " " << pname << " M=" << M << ": "
                            << c.str();
        worst = std::max(worst, c.worst_row_rel);
      }
    }
    std::printf("[ stats    ] %-14s fused %zu parts %6lldx%-6lld %-5s worst row rel %.2e\n", layout_name(layout),
                shapes.size(), (long long)Ntot, (long long)K, pname, worst);
  }
}

class FusedLinear : public ::testing::TestWithParam<Layout> {};

TEST_P(FusedLinear, QkvColumnBlocksMatchParts) {
  check_fused(GetParam(), kQkv, 256, 7000 + uint64_t(GetParam()) * 100);
}

TEST_P(FusedLinear, OddPartBoundaries) {
  if (is_block(GetParam())) GTEST_SKIP() << "FP8 block-128 parts must be multiples of 128 rows";
  check_fused(GetParam(), kOdd, 512, 7500 + uint64_t(GetParam()) * 100);
}

INSTANTIATE_TEST_SUITE_P(Layouts, FusedLinear,
                         ::testing::Values(Layout::Bf16, Layout::Fp8PcA8, Layout::Fp8PcW8A16, Layout::Fp8BlkA8,
                                           Layout::Fp8BlkW8A16, Layout::Nvfp4A4, Layout::Nvfp4W4A16),
                         [](const auto& info) { return std::string(layout_name(info.param)); });

// Fusions the numerics do not allow are refused with InputError before anything is uploaded.
TEST(FusedLinearRefuse, MismatchedSchemesBlockRowsAndInputGlobal) {
  GpuCtx g(size_t(64) << 20);
  auto refuse = [&](std::vector<MatrixRef> parts, const char* what) {
    EXPECT_THROW(cuda::upload_fused_linear(parts, g.arena, g.stream), InputError) << what;
    EXPECT_THROW(cuda::device_bytes_for_fused(parts), InputError) << what;
  };
  {  // weight format differs
    auto a = make_linear(Layout::Bf16, 128, 256, 1), b = make_linear(Layout::Fp8PcA8, 128, 256, 2);
    refuse({a->ref, b->ref}, "bf16 + fp8");
  }
  {  // same weight format, different activation quantization
    auto a = make_linear(Layout::Fp8PcA8, 128, 256, 3), b = make_linear(Layout::Fp8PcW8A16, 128, 256, 4);
    refuse({a->ref, b->ref}, "W8A8 + W8A16");
  }
  {  // different dense dtypes
    auto a = make_linear(Layout::Bf16, 128, 256, 5), b = make_linear(Layout::F16, 128, 256, 6);
    refuse({a->ref, b->ref}, "bf16 + f16");
  }
  {  // different K
    auto a = make_linear(Layout::Bf16, 128, 256, 7), b = make_linear(Layout::Bf16, 128, 512, 8);
    refuse({a->ref, b->ref}, "K 256 + K 512");
  }
  {  // FP8 block-128 part not a multiple of 128 rows (first or last)
    auto a = make_linear(Layout::Fp8BlkA8, 256, 256, 9), b = make_linear(Layout::Fp8BlkA8, 100, 256, 10);
    refuse({a->ref, b->ref}, "block 256 + 100");
    refuse({b->ref, a->ref}, "block 100 + 256");
  }
  {  // NVFP4 activations with different input global scales
    auto a = make_linear(Layout::Nvfp4A4, 128, 256, 11), b = make_linear(Layout::Nvfp4A4, 128, 256, 12);
    b->quant->nvfp4_input_global *= 2.f;
    refuse({a->ref, b->ref}, "nvfp4 different G_x");
  }
  {  // no parts
    refuse({}, "empty");
  }
  // Allowed: NVFP4 with different weight divisors, FP8 block parts of 128-multiples.
  {
    auto a = make_linear(Layout::Nvfp4A4, 128, 256, 13), b = make_linear(Layout::Nvfp4A4, 64, 256, 14);
    b->quant->nvfp4_weight_divisor *= 3.f;
    const std::vector<MatrixRef> parts{a->ref, b->ref};
    EXPECT_NO_THROW(cuda::upload_fused_linear(parts, g.arena, g.stream));
  }
}

}  // namespace
}  // namespace gdn::test
