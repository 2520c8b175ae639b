// The native FP8 (wgmma) small-M path of W8A8 FP8 linears (src/kernels/cuda/linear_wgmma.cu) vs
// the CPU reference: every 27B shape and odd shapes (rows not a multiple of 64: a partial 64-row
// tile; K tails), M = 1..16 and 17..64 (wgmma N = 8, 16, 32, 64), per-channel and block-128 scales, ring depths and K splits; the FP8
// tensor-core accumulation precision; old (mma.sync) vs new timings at the 27B decode shapes.
//
// Tolerance: kLtFp8RowRelTol = 1e-3 per token row (as for cuBLASLt's FP8 path, gpu_test_util.h), NOT
// the 1e-5 of the exact paths. Both sides multiply identical E4M3 operands and the kernel promotes
// every 128-K group (4 chained wgmma k32) into an fp32 sum, yet it is ~2.5e-4 off (≈ 2⁻¹², every
// row, every shape, measured on H100): Hopper's FP8 wgmma accumulates inside the tensor core with
// reduced precision, like cuBLASLt's FP8 GEMMs. A wrong layout, descriptor, swizzle, tile tail or
// scale is O(1) and still fails; so does a lost or doubled K split (≥ 1/40 of the row).
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "gpu_test_util.h"
#include "kernels/cuda/linear_internal.h"

namespace gdn::test {
namespace {

namespace cd = cuda::detail;

// Forces the wgmma path on (or off) for the lifetime of the guard; restores the defaults.
struct WgmmaMode {
  explicit WgmmaMode(int mode, cd::Fp8WgmmaTuning t = {}) {
    cd::set_fp8_wgmma_mode(mode);
    cd::set_fp8_wgmma_tuning(t);
  }
  ~WgmmaMode() {
    cd::set_fp8_wgmma_mode(-1);
    cd::set_fp8_wgmma_tuning({});
  }
};

struct Shape {
  const char* name;
  int64_t N, K;
};

const Shape k27B[] = {{"in_proj_qkv", 10240, 5120}, {"in_proj_z", 6144, 5120}, {"out_proj|o_proj", 5120, 6144},
                      {"q_proj", 12288, 5120},      {"k_proj|v_proj", 1024, 5120}, {"gate|up_proj", 17408, 5120},
                      {"down_proj", 5120, 17408}};
const Shape kOdd[] = {{"n1_k256", 1, 256},       {"n96_k384", 96, 384},   {"n100_k1000", 100, 1000},
                      {"n257_k1040", 257, 1040}, {"n300_k77", 300, 77},   {"n48_k2000", 48, 2000},
                      {"n130_k4112", 130, 4112}, {"n1000_k5120", 1000, 5120}};

// One weight uploaded with its CPU reference for up to m_max tokens.
struct Case {
  std::unique_ptr<HostLinear> h;
  std::vector<uint16_t> xh;
  std::vector<float> ref, ref_abs;
  std::unique_ptr<GpuCtx> g;
  cuda::DeviceLinear dw;
  cuda::LinearWorkspace ws;
  __nv_bfloat16* dx = nullptr;
  float* dy = nullptr;
  int64_t kM = 16;

  Case(Layout l, int64_t N, int64_t K, uint64_t seed, int64_t m_max = 16) : kM(m_max) {
    h = make_linear(l, N, K, seed);
    xh = make_x(kM, K, seed + 1);
    const std::vector<float> xf = to_float(xh);
    ref = cpu_linear(h->cpu_ref, xf, kM);
    ref_abs = cpu_linear(abs_matrix(h->cpu_ref)->ref, abs_values(xf), kM);
    g = std::make_unique<GpuCtx>(cuda::device_bytes_for(h->ref) + size_t(kM * K * 2 + kM * N * 4) +
                                 (size_t(96) << 20));
    dw = cuda::upload_linear(h->ref, g->arena, g->stream);
    ws.bytes = cuda::linear_workspace_bytes(dw, kM);
    ws.ptr = g->arena.allocate(ws.bytes);
    cuda::linear_workspace_init(ws, g->stream);
    dx = g->arena.allocate_n<__nv_bfloat16>(size_t(kM * K));
    dy = g->arena.allocate_n<float>(size_t(kM * N));
    GDN_CUDA_CHECK(cudaMemcpyAsync(dx, xh.data(), xh.size() * 2, cudaMemcpyHostToDevice, g->stream));
  }
  std::vector<float> run(int64_t M) { return gpu_linear(*g, dw, dx, M, dy, ws, cuda::LinearPath::SmallM); }
  // Passes when the row is within kLtFp8RowRelTol of the reference (compare()), or when its error
  // is within kFp8AbsSumTol of ‖Σ|w·x|‖ — the scale the tensor cores' FP8 accumulation error
  // actually follows. The second form matters for rows of very few outputs whose dot products
  // cancel (n1_k256: 1 output, |ref| ≪ Σ|w·x|; measured 7e-5 of Σ|w·x| at 1.2e-3 of |ref|). A lost
  // K split (≥ 1/40 of a 17408-long row) or any layout error still exceeds both.
  struct Check {
    Compare r;
    double abs_sum_rel = 0;  // worst row ‖Δ‖ / ‖Σ|w·x|‖
    bool ok() const { return r.ok() || (r.nonfinite == 0 && abs_sum_rel <= kFp8AbsSumTol); }
    std::string str() const { return r.str() + ", vs Σ|w·x| " + std::to_string(abs_sum_rel); }
  };
  static constexpr double kFp8AbsSumTol = 2.5e-4;  // ≈ 2 units of 2⁻¹³
  Check check(int64_t M, const std::vector<float>& y) const {
    Check c;
    c.r = compare(y.data(), ref.data(), ref_abs.data(), M, h->ref.rows, h->ref.cols, kLtFp8RowRelTol);
    const int64_t N = h->ref.rows;
    for (int64_t m = 0; m < M; ++m) {
      double d2 = 0, a2 = 0;
      for (int64_t n = 0; n < N; ++n) {
        const double d = double(y[size_t(m * N + n)]) - ref[size_t(m * N + n)], a = ref_abs[size_t(m * N + n)];
        d2 += d * d;
        a2 += a * a;
      }
      c.abs_sum_rel = std::max(c.abs_sum_rel, a2 > 0 ? std::sqrt(d2 / a2) : std::sqrt(d2));
    }
    return c;
  }
};

// Token counts checked: every M of the 8- and 16-token instances, then the 32- and 64-token ones
// around their edges.
std::vector<int64_t> ms_upto(int64_t m_max) {
  std::vector<int64_t> ms;
  for (int64_t M = 1; M <= std::min<int64_t>(m_max, 16); ++M) ms.push_back(M);
  for (int64_t M : {17, 24, 31, 32, 33, 47, 48, 63, 64})
    if (M <= m_max) ms.push_back(M);
  return ms;
}

// Every M of ms_upto(c.kM) through linear_forward with the wgmma path forced on; returns the worst
// row error.
double check_all_m(Case& c, const std::string& what) {
  WgmmaMode on(1);
  double worst = 0;
  for (int64_t M : ms_upto(c.kM)) {
    EXPECT_TRUE(cd::fp8_wgmma_applies(c.dw, int(M)));
    const std::vector<float> y = c.run(M);
    const Case::Check r = c.check(M, y);
    EXPECT_TRUE(r.ok()) << what << " M=" << M << ": " << r.str();
    worst = std::max(worst, r.r.worst_row_rel);
  }
  return worst;
}

class LinearWgmma : public ::testing::TestWithParam<Layout> {};

TEST_P(LinearWgmma, Shapes27BAllM) {
  uint64_t seed = 300 + uint64_t(GetParam()) * 100;
  for (const Shape& s : k27B) {
    // Up to 64 tokens where the CPU reference is cheap (≤ 35 M weights), else up to 16.
    const int64_t m_max = s.N * s.K <= 35'000'000 ? 64 : 16;
    Case c(GetParam(), s.N, s.K, seed += 2, m_max);
    const double worst = check_all_m(c, s.name);
    std::printf("[ stats    ] wgmma %-10s %-16s %6lldx%-6lld M=1..%lld worst row rel %.2e\n", layout_name(GetParam()),
                s.name, (long long)s.N, (long long)s.K, (long long)m_max, worst);
  }
}

TEST_P(LinearWgmma, OddShapesAllM) {
  uint64_t seed = 700 + uint64_t(GetParam()) * 100;
  for (const Shape& s : kOdd) {
    Case c(GetParam(), s.N, s.K, seed += 2, 64);
    const double worst = check_all_m(c, s.name);
    std::printf("[ stats    ] wgmma %-10s %-16s %6lldx%-6lld M=1..64 worst row rel %.2e\n", layout_name(GetParam()),
                s.name, (long long)s.N, (long long)s.K, worst);
  }
}

// Ring depths and K splits (S = 1: no reduction, the ring wraps 10× per CTA; S = 32: ≤ 2 groups per
// CTA, last-CTA reduction over 32 slots), and bitwise determinism of the split-K reduction.
TEST_P(LinearWgmma, StagesSplitsDeterminism) {
  Case c(GetParam(), 1000, 5120, 900 + uint64_t(GetParam()), 64);
  for (int stages : {4, 6, 8})
    for (int ksplit : {1, 2, 7, 32}) {
      cd::Fp8WgmmaTuning t;
      t.stages = stages;
      t.ksplit = ksplit;
      WgmmaMode on(1, t);
      for (int64_t M : {1, 8, 9, 16, 33, 64}) {
        const std::vector<float> a = c.run(M), b = c.run(M);
        const Case::Check r = c.check(M, a);
        EXPECT_TRUE(r.ok()) << "stages " << stages << " ksplit " << ksplit << " M=" << M << ": " << r.str();
        EXPECT_EQ(0, std::memcmp(a.data(), b.data(), a.size() * 4))
            << "not deterministic: stages " << stages << " ksplit " << ksplit << " M=" << M;
      }
    }
  // The switch really falls back: mode 0 must not route here; the mma.sync path is exact (1e-5).
  WgmmaMode off(0);
  EXPECT_FALSE(cd::fp8_wgmma_applies(c.dw, 1));
  const std::vector<float> y = c.run(3);
  const Compare r = compare(y.data(), c.ref.data(), c.ref_abs.data(), 3, 1000, 5120);
  EXPECT_TRUE(r.ok()) << "fallback: " << r.str();
}

// linear_forward_bf16 at small M: the wgmma kernel writes each output rounded to nearest BF16 — the
// bits of its own fp32 output rounded on the host, for every token count of each instance. Without
// the wgmma kernel (mode 0: mma.sync) the call declines and writes nothing.
TEST_P(LinearWgmma, Bf16OutputIsRoundedFp32) {
  Case c(GetParam(), 1000, 5120, 1100 + uint64_t(GetParam()), 64);
  auto* dy16 = c.g->arena.allocate_n<__nv_bfloat16>(size_t(64 * 1000));
  for (int mode : {1, 0}) {
    WgmmaMode m(mode);
    for (int64_t M : {1, 7, 16, 17, 33, 64}) {
      const std::vector<float> y = c.run(M);
      GDN_CUDA_CHECK(cudaMemsetAsync(dy16, 0xFF, size_t(M * 1000) * 2, c.g->stream));
      const bool ran = cuda::linear_forward_bf16(c.dw, c.dx, M, dy16, c.ws, c.g->stream, cuda::LinearPath::SmallM);
      GDN_CUDA_CHECK_LAUNCH();
      std::vector<uint16_t> y16(size_t(M * 1000));
      GDN_CUDA_CHECK(cudaMemcpyAsync(y16.data(), dy16, y16.size() * 2, cudaMemcpyDeviceToHost, c.g->stream));
      c.g->stream.sync();
      EXPECT_EQ(mode == 1, ran) << "M=" << M;
      size_t bad = 0;
      for (size_t i = 0; i < y16.size(); ++i) bad += y16[i] != (ran ? float_to_bf16(y[i]) : uint16_t(0xFFFF));
      EXPECT_EQ(0u, bad) << "mode " << mode << " M=" << M << ": outputs that are not the rounded fp32 result";
    }
  }
}

// Diagnostic: the FP8 tensor-core accumulation error with the 128-K promotion (default: 4 chained
// k32 per fp32 add) and with every k32 promoted separately; both held to 1e-3, printed.
TEST_P(LinearWgmma, Fp8AccumulationPrecision) {
  const Shape shapes[] = {{"down_proj", 5120, 17408}, {"k_proj|v_proj", 1024, 5120}, {"n100_k1000", 100, 1000}};
  uint64_t seed = 1300 + uint64_t(GetParam());
  for (const Shape& sh : shapes) {
    Case c(GetParam(), sh.N, sh.K, seed += 2);
    double worst[2] = {0, 0};
    for (int promote : {0, 1}) {
      cd::Fp8WgmmaTuning t;
      t.promote_k32 = promote;
      WgmmaMode on(1, t);
      for (int64_t M : {1, 16}) {
        const Case::Check r = c.check(M, c.run(M));
        EXPECT_TRUE(r.ok()) << sh.name << " promote_k32 " << promote << " M=" << M << ": " << r.str();
        worst[promote] = std::max(worst[promote], r.r.worst_row_rel);
      }
    }
    std::printf("[ stats    ] wgmma %-10s %-16s %6lldx%-6lld accumulation error: 128-K promotion %.2e, k32 promotion %.2e\n",
                layout_name(GetParam()), sh.name, (long long)sh.N, (long long)sh.K, worst[0], worst[1]);
  }
}

INSTANTIATE_TEST_SUITE_P(LinearWgmmaLayouts, LinearWgmma, ::testing::Values(Layout::Fp8PcA8, Layout::Fp8BlkA8),
                         [](const auto& info) { return std::string(layout_name(info.param)); });

// ---- timings: kernel alone (activations quantized once), L2 flushed before every launch ---------

float median(std::vector<float> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

TEST(LinearWgmmaPerf, DecodeShapes) {
  if (quick()) GTEST_SKIP() << "timings skipped in quick mode";
  const Shape shapes[] = {{"gate|up", 34816, 5120}, {"in_proj", 16384, 5120}, {"down", 5120, 17408}, {"k|v", 2048, 5120}};
  constexpr int kIters = 50;
  cuda::Stream stream;
  // Copy bandwidth: device-to-device memcpy of 512 MB (read + write bytes / time), median of 20.
  double copy_gbs = 0;
  const size_t flush_bytes = size_t(256) << 20;
  void* flush = nullptr;
  GDN_CUDA_CHECK(cudaMalloc(&flush, flush_bytes * 2));
  {
    std::vector<float> t;
    cuda::Event e0, e1;
    for (int i = 0; i < 21; ++i) {
      e0.record(stream);
      GDN_CUDA_CHECK(cudaMemcpyAsync(static_cast<char*>(flush) + flush_bytes, flush, flush_bytes,
                                     cudaMemcpyDeviceToDevice, stream));
      e1.record(stream);
      if (i > 0) t.push_back(e1.ms_since(e0));
      else e1.ms_since(e0);
    }
    copy_gbs = 2.0 * double(flush_bytes) / (double(median(t)) * 1e-3) / 1e9;
  }
  std::printf("[ perf     ] device-to-device copy: %.0f GB/s (read + write)\n", copy_gbs);

  for (Layout l : {Layout::Fp8BlkA8, Layout::Fp8PcA8}) {
    for (const Shape& s : shapes) {
      const auto h = make_linear(l, s.N, s.K, 11);
      GpuCtx g(cuda::device_bytes_for(h->ref) + (size_t(64) << 20));
      const cuda::DeviceLinear dw = cuda::upload_linear(h->ref, g.arena, g.stream);
      const std::vector<uint16_t> xh = make_x(64, s.K, 12);
      auto* dx = g.arena.allocate_n<__nv_bfloat16>(size_t(64 * s.K));
      auto* xq = g.arena.allocate_n<uint8_t>(size_t(64 * dw.cols_pad));
      auto* sx = g.arena.allocate_n<float>(size_t((dw.cols_pad / 128 + 1) * 64));
      auto* y = g.arena.allocate_n<float>(size_t(64 * s.N));
      auto* sx_tail = g.arena.allocate_n<float>(size_t((dw.cols_pad / 128 + 1) * 4));
      const size_t part = std::max({cd::small_m_partial_bytes(dw, 8), cd::small_m_partial_bytes(dw, 16),
                                    cd::small_m_partial_bytes(dw, 64), cd::fp8_wgmma_partial_bytes(dw, 8),
                                    cd::fp8_wgmma_partial_bytes(dw, 16), cd::fp8_wgmma_partial_bytes(dw, 32),
                                    cd::fp8_wgmma_partial_bytes(dw, 64)});
      auto* partial = static_cast<float*>(g.arena.allocate(part));
      auto* counters = g.arena.allocate_n<int>(size_t(cd::kMaxCounters));
      GDN_CUDA_CHECK(cudaMemsetAsync(counters, 0, size_t(cd::kMaxCounters) * 4, g.stream));
      GDN_CUDA_CHECK(cudaMemcpyAsync(dx, xh.data(), xh.size() * 2, cudaMemcpyHostToDevice, g.stream));
      const bool block = dw.scheme.weight == WeightFormat::Fp8Block128;
      const double gb = double(dw.weight_bytes()) / 1e9;
      for (int M : {1, 8, 16, 32, 64}) {
        const int m4 = (M + 3) / 4 * 4;
        if (block)
          cd::launch_act_fp8_group(dx, M, s.K, xq, sx, m4, m4, sx_tail, 4, m4, dw.cols_pad, g.stream, false);
        else
          cd::launch_act_fp8_token(dx, M, s.K, xq, sx, m4, dw.cols_pad, g.stream, false);
        cd::SmallMParams p;
        p.w = static_cast<const uint8_t*>(dw.weight);
        p.ldw = dw.cols_pad;
        p.wscale = dw.scales;
        p.wscale_ld = dw.scale_ld;
        p.block_scaled = block;
        p.x = xq;
        p.ldx = dw.cols_pad;
        p.sx = sx;
        p.sx_ld = block ? m4 : 0;
        p.act_scaled = !block;
        p.M = M;
        p.N = int(s.N);
        p.partial = partial;
        p.counters = counters;
        p.y = y;
        auto time_us = [&](auto&& launch) {
          std::vector<float> t;
          cuda::Event e0, e1;
          for (int i = 0; i <= kIters; ++i) {
            GDN_CUDA_CHECK(cudaMemsetAsync(flush, i & 0xFF, size_t(96) << 20, g.stream));  // evict the weight from L2
            e0.record(g.stream);
            launch();
            e1.record(g.stream);
            const float ms = e1.ms_since(e0);
            if (i > 0) t.push_back(ms);
          }
          GDN_CUDA_CHECK_LAUNCH();
          return median(t) * 1e3f;
        };
        float us[2] = {0, 0};
        for (int which = 0; which < 2; ++which) {
          auto launch = [&] {
            if (which == 0) {
              const cd::SmallMPlan pl = cd::plan_small_m(dw, M);
              cd::SmallMParams q = p;
              q.KG = pl.KG, q.rtiles = pl.rtiles, q.warps = pl.warps, q.ksplit = pl.ksplit;
              cd::launch_small_m(cd::SmFmt::Fp8Fp8, pl, q, g.stream, false);
            } else {
              cd::launch_fp8_wgmma(dw, p, g.stream, false);
            }
          };
          us[which] = time_us(launch);
        }
        const cd::Fp8WgmmaPlan pl = cd::plan_fp8_wgmma(dw, M);
        std::printf("[ perf     ] %-9s %-8s %5lldx%-5lld M=%-2d  mma.sync %7.1f us %5.0f GB/s %3.0f%%  |  wgmma %7.1f us "
                    "%5.0f GB/s %3.0f%%  (x%.2f; split %d, %d CTAs, %d stages)\n",
                    layout_name(l), s.name, (long long)s.N, (long long)s.K, M, us[0], gb / (us[0] * 1e-6),
                    100.0 * gb / (us[0] * 1e-6) / copy_gbs, us[1], gb / (us[1] * 1e-6),
                    100.0 * gb / (us[1] * 1e-6) / copy_gbs, us[0] / us[1], pl.ksplit, pl.blocks, pl.stages);
        // Tuning sweep of the wgmma kernel: ring depth × K split.
        std::string line;
        float best = 1e30f;
        std::string best_cfg;
        for (int st : {4, 6, 8})
          for (int ks : {1, 2, 4, 8}) {
            cd::Fp8WgmmaTuning t;
            t.stages = st;
            t.ksplit = ks;
            WgmmaMode tune(-1, t);
            const float u = time_us([&] { cd::launch_fp8_wgmma(dw, p, g.stream, false); });
            char b[64];
            std::snprintf(b, sizeof b, " st%d/s%d:%.1f", st, ks, u);
            line += b;
            if (u < best) best = u, best_cfg = b;
          }
        std::printf("[ sweep    ] %-9s %-8s M=%-2d best%s (%.0f%%) |%s\n", layout_name(l), s.name, M, best_cfg.c_str(),
                    100.0 * gb / (best * 1e-6) / copy_gbs, line.c_str());
      }
    }
  }
  GDN_CUDA_CHECK(cudaFree(flush));
}

}  // namespace
}  // namespace gdn::test
