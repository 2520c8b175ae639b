// Bit-level checks: activation quantizers == kernels/cpu/quant.cpp exactly; every weight code
// decodes exactly (one-hot activations read single weights back); device groundwork (arena,
// checked calls, upload progress).
#include <gtest/gtest.h>

#include <cstdio>
#include <string>

#include "gpu_test_util.h"
#include "kernels/cpu/quant.h"
#include "kernels/cuda/linear_internal.h"

namespace gdn::test {
namespace {

// --- activation quantization: GPU codes·scales must equal the CPU fake-quantized values bit for bit.

struct ActCase {
  int64_t M, K;
};
const ActCase kActCases[] = {{37, 5120}, {9, 1000}, {3, 17408}, {70, 1040}};

std::vector<float> cpu_quant(ActQuant a, const std::vector<float>& x, int64_t M, int64_t K, float gx) {
  QuantInfo q;
  q.scheme.act = a;
  q.nvfp4_input_global = gx;
  std::vector<float> out(x.size());
  quantize_activations(q, x.data(), M, K, out.data());
  return out;
}

void expect_bitwise(const std::vector<float>& got, const std::vector<float>& want, const std::string& what) {
  ASSERT_EQ(got.size(), want.size());
  int64_t bad = 0, first = -1;
  for (size_t i = 0; i < got.size(); ++i)
    if (std::memcmp(&got[i], &want[i], 4) != 0 && !(got[i] == 0.f && want[i] == 0.f)) {
      if (first < 0) first = int64_t(i);
      ++bad;
    }
  EXPECT_EQ(bad, 0) << what << ": " << bad << " values differ, first at " << first << " got "
                    << (first >= 0 ? got[size_t(first)] : 0.f) << " want " << (first >= 0 ? want[size_t(first)] : 0.f);
}

TEST(CodecActQuant, Fp8PerTokenMatchesCpu) {
  for (const auto& c : kActCases) {
    const int64_t Kp = (c.K + 127) / 128 * 128, m4 = (c.M + 3) / 4 * 4;
    const auto xh = make_x(c.M, c.K, 11 + uint64_t(c.K));
    GpuCtx g(size_t(64) << 20);
    auto* dx = g.arena.allocate_n<__nv_bfloat16>(size_t(c.M * c.K));
    auto* q = g.arena.allocate_n<uint8_t>(size_t(m4 * Kp));
    auto* sx = g.arena.allocate_n<float>(size_t(m4));
    GDN_CUDA_CHECK(cudaMemcpyAsync(dx, xh.data(), xh.size() * 2, cudaMemcpyHostToDevice, g.stream));
    cuda::detail::launch_act_fp8_token(dx, c.M, c.K, q, sx, m4, Kp, g.stream, false);
    std::vector<uint8_t> hq(size_t(m4 * Kp));
    std::vector<float> hs(static_cast<size_t>(m4));
    GDN_CUDA_CHECK(cudaMemcpyAsync(hq.data(), q, hq.size(), cudaMemcpyDeviceToHost, g.stream));
    GDN_CUDA_CHECK(cudaMemcpyAsync(hs.data(), sx, hs.size() * 4, cudaMemcpyDeviceToHost, g.stream));
    g.stream.sync();
    std::vector<float> got(size_t(c.M * c.K));
    const auto& fp8 = fp8_e4m3_table();
    for (int64_t m = 0; m < c.M; ++m)
      for (int64_t k = 0; k < c.K; ++k) got[size_t(m * c.K + k)] = fp8[hq[size_t(m * Kp + k)]] * hs[size_t(m)];
    expect_bitwise(got, cpu_quant(ActQuant::Fp8PerToken, to_float(xh), c.M, c.K, 1.f), "per-token K=" + std::to_string(c.K));
    for (int64_t m = 0; m < m4; ++m)
      for (int64_t k = (m < c.M ? c.K : 0); k < Kp; ++k) ASSERT_EQ(hq[size_t(m * Kp + k)], 0) << "padding m=" << m << " k=" << k;
  }
}

TEST(CodecActQuant, Fp8PerGroupMatchesCpu) {
  for (const auto& c : kActCases) {
    const int64_t Kp = (c.K + 127) / 128 * 128, m4 = (c.M + 3) / 4 * 4, L = Kp / 128;
    const auto xh = make_x(c.M, c.K, 21 + uint64_t(c.K));
    GpuCtx g(size_t(64) << 20);
    auto* dx = g.arena.allocate_n<__nv_bfloat16>(size_t(c.M * c.K));
    auto* q = g.arena.allocate_n<uint8_t>(size_t(m4 * Kp));
    auto* sx = g.arena.allocate_n<float>(size_t(L * m4));
    auto* tail = g.arena.allocate_n<float>(size_t(L * 4));
    GDN_CUDA_CHECK(cudaMemcpyAsync(dx, xh.data(), xh.size() * 2, cudaMemcpyHostToDevice, g.stream));
    // Split like the large-M path: tokens < M/4·4 in sx[kb][split], the rest in tail[kb][4].
    const int64_t split = c.M / 4 * 4;
    cuda::detail::launch_act_fp8_group(dx, c.M, c.K, q, sx, split, split, tail, 4, m4, Kp, g.stream, false);
    std::vector<uint8_t> hq(size_t(m4 * Kp));
    std::vector<float> hs(size_t(L * m4)), ht(size_t(L * 4));
    GDN_CUDA_CHECK(cudaMemcpyAsync(hq.data(), q, hq.size(), cudaMemcpyDeviceToHost, g.stream));
    GDN_CUDA_CHECK(cudaMemcpyAsync(hs.data(), sx, hs.size() * 4, cudaMemcpyDeviceToHost, g.stream));
    GDN_CUDA_CHECK(cudaMemcpyAsync(ht.data(), tail, ht.size() * 4, cudaMemcpyDeviceToHost, g.stream));
    g.stream.sync();
    std::vector<float> got(size_t(c.M * c.K));
    const auto& fp8 = fp8_e4m3_table();
    for (int64_t m = 0; m < c.M; ++m)
      for (int64_t k = 0; k < c.K; ++k) {
        const int64_t kb = k / 128;
        const float s = m < split ? hs[size_t(kb * split + m)] : ht[size_t(kb * 4 + m - split)];
        got[size_t(m * c.K + k)] = fp8[hq[size_t(m * Kp + k)]] * s;
      }
    expect_bitwise(got, cpu_quant(ActQuant::Fp8PerGroup128, to_float(xh), c.M, c.K, 1.f),
                   "per-group K=" + std::to_string(c.K));
  }
}

TEST(CodecActQuant, Nvfp4MatchesCpu) {
  for (const auto& c : kActCases) {
    if (c.K % 16) continue;
    const int64_t Kp = (c.K + 255) / 256 * 256, m4 = (c.M + 3) / 4 * 4;
    const float gx = 2688.f / 4.f;
    const auto xh = make_x(c.M, c.K, 31 + uint64_t(c.K));
    GpuCtx g(size_t(64) << 20);
    auto* dx = g.arena.allocate_n<__nv_bfloat16>(size_t(c.M * c.K));
    auto* q = g.arena.allocate_n<__nv_bfloat16>(size_t(m4 * Kp));
    GDN_CUDA_CHECK(cudaMemcpyAsync(dx, xh.data(), xh.size() * 2, cudaMemcpyHostToDevice, g.stream));
    cuda::detail::launch_act_nvfp4(dx, c.M, c.K, gx, q, m4, Kp, g.stream, false);
    std::vector<uint16_t> hq(size_t(m4 * Kp));
    GDN_CUDA_CHECK(cudaMemcpyAsync(hq.data(), q, hq.size() * 2, cudaMemcpyDeviceToHost, g.stream));
    g.stream.sync();
    std::vector<float> got(size_t(c.M * c.K));
    for (int64_t m = 0; m < c.M; ++m)
      for (int64_t k = 0; k < c.K; ++k) got[size_t(m * c.K + k)] = bf16_to_float(hq[size_t(m * Kp + k)]) / gx;
    expect_bitwise(got, cpu_quant(ActQuant::Nvfp4, to_float(xh), c.M, c.K, gx), "nvfp4 K=" + std::to_string(c.K));
  }
}

// --- weight decoding: one-hot activations read weights back one column at a time.

// Reads every weight of h back through one-hot activations (64 columns per call) on the small-M and
// large-M paths: check(path, row, col, got, want) asserts on each value against the CPU reference.
template <typename Check>
void read_back_weights(const HostLinear& h, Check&& check) {
  const int64_t N = h.ref.rows, K = h.ref.cols, M = 64;
  GpuCtx g(size_t(128) << 20);
  const cuda::DeviceLinear dw = cuda::upload_linear(h.ref, g.arena, g.stream);
  const cuda::LinearWorkspace ws = make_workspace(g, dw, M);
  auto* dx = g.arena.allocate_n<__nv_bfloat16>(size_t(M * K));
  auto* dy = g.arena.allocate_n<float>(size_t(M * N));
  for (int64_t off = 0; off < K; off += M) {
    std::vector<uint16_t> xh(size_t(M * K), 0);
    for (int64_t m = 0; m < M; ++m) xh[size_t(m * K + off + m)] = float_to_bf16(1.f);
    GDN_CUDA_CHECK(cudaMemcpyAsync(dx, xh.data(), xh.size() * 2, cudaMemcpyHostToDevice, g.stream));
    const std::vector<float> ref = cpu_linear(h.cpu_ref, to_float(xh), M);
    for (cuda::LinearPath path : {cuda::LinearPath::SmallM, cuda::LinearPath::LargeM}) {
      const std::vector<float> y = gpu_linear(g, dw, dx, M, dy, ws, path);
      const char* name = path == cuda::LinearPath::SmallM ? "small" : "large";
      for (int64_t i = 0; i < M * N; ++i) {
        check(name, i % N, off + i / N, y[size_t(i)], ref[size_t(i)]);
        if (::testing::Test::HasFatalFailure()) return;
      }
    }
  }
}

class CodecWeightDecode : public ::testing::TestWithParam<Layout> {};

TEST_P(CodecWeightDecode, EveryCodeExact) {
  // 256 rows × 512 codes: every FP8 byte and E2M1 nibble many times.
  const auto h = make_linear(GetParam(), 256, 512, 99);
  read_back_weights(*h, [&](const char* path, int64_t r, int64_t k, float got, float want) {
    // Exact up to the few roundings of the scale products (≤ 4 ulp).
    ASSERT_LE(std::fabs(got - want), 5e-7f * std::fabs(want))
        << layout_name(GetParam()) << " " << path << " weight [" << r << ", " << k << "] got " << got << " want " << want;
  });
}

INSTANTIATE_TEST_SUITE_P(Layouts, CodecWeightDecode,
                         ::testing::Values(Layout::Bf16, Layout::Fp8PcA8, Layout::Fp8PcW8A16, Layout::Fp8BlkA8,
                                           Layout::Fp8BlkW8A16, Layout::Nvfp4A4, Layout::Nvfp4W4A16),
                         [](const auto& info) { return std::string(layout_name(info.param)); });

// Every E4M3 block-scale byte (subnormals, zero, negative, NaN), through the device encoding
// (nvfp4_device_scale / nvfp4_device_word: sign folded into the codes, zero as −0, NaN kept):
// one-hot activations read each weight back on both paths; exact like EveryCodeExact, NaN for NaN.
TEST(CodecWeightDecode, Nvfp4EveryScaleByteExact) {
  const int64_t N = 256, K = 512;
  auto h = make_linear(Layout::Nvfp4W4A16, N, K, 5);
  // Every byte in every row position; NaN codes (a NaN weight makes its whole output row NaN) only
  // in the last 8 rows, so the other rows check every finite scale.
  for (int64_t i = 0; i < N * (K / 16); ++i) {
    uint8_t b = uint8_t((i * 7 + i / 256) % 256);
    if ((b & 0x7F) == 0x7F && i / (K / 16) < N - 8) b ^= 1;
    h->block_scales[size_t(i)] = b;
  }
  for (int64_t r = N - 8; r < N; ++r) h->block_scales[size_t(r * (K / 16) + r % (K / 16))] = r % 2 ? 0xFF : 0x7F;
  int nan_seen = 0;
  read_back_weights(*h, [&](const char* path, int64_t r, int64_t k, float got, float want) {
    const uint8_t scale = h->block_scales[size_t(r * (K / 16) + k / 16)];
    if (std::isnan(want)) {
      ++nan_seen;
      ASSERT_TRUE(std::isnan(got)) << path << " weight [" << r << ", " << k << "] scale byte " << int(scale) << " got " << got;
      return;
    }
    ASSERT_LE(std::fabs(got - want), 5e-7f * std::fabs(want))
        << path << " weight [" << r << ", " << k << "] scale byte " << int(scale) << " got " << got << " want " << want;
  });
  EXPECT_GT(nan_seen, 0);  // the NaN scale codes were exercised
}

// --- groundwork

TEST(Device, ArenaAlignsAndRefusesOverflow) {
  cuda::DeviceArena a(size_t(1) << 20);
  void* p1 = a.allocate(3);
  void* p2 = a.allocate(5, 1024);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(p1) % 256, 0u);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(p2) % 1024, 0u);
  EXPECT_THROW(a.allocate(size_t(2) << 20), cuda::CudaError);
  a.reset();
  EXPECT_EQ(a.used(), 0u);
}

TEST(Device, CheckedCallNamesSiteAndError) {
  try {
    GDN_CUDA_CHECK(cudaSetDevice(12345));
    FAIL() << "no throw";
  } catch (const cuda::CudaError& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("test_codecs_device.cpp"), std::string::npos) << m;
    EXPECT_NE(m.find("cudaErrorInvalidDevice"), std::string::npos) << m;
  }
  (void)cudaGetLastError();            // clears the recorded error
  GDN_CUDA_CHECK(cudaGetLastError());  // and it was not sticky
}

TEST(Device, UploadProgressReportsRate) {
  std::FILE* f = std::tmpfile();
  ASSERT_NE(f, nullptr);
  const auto h = make_linear(Layout::Fp8BlkA8, 512, 1024, 5);
  {
    GpuCtx g(size_t(64) << 20);
    cuda::UploadProgress prog(int64_t(cuda::device_bytes_for(h->ref)), f);
    cuda::Uploader up(g.arena, g.stream, &prog, size_t(1) << 16);
    up.linear(h->ref);
    up.sync();
    prog.finish();
    EXPECT_GE(prog.done(), 512 * 1024);
  }
  std::rewind(f);
  char buf[512] = {};
  const size_t n = std::fread(buf, 1, sizeof buf - 1, f);
  std::fclose(f);
  EXPECT_NE(std::string(buf, n).find("GB/s"), std::string::npos) << std::string(buf, n);
}

}  // namespace
}  // namespace gdn::test
