// Small fused GPU ops (ops_cuda.h) against kernels/cpu:
//  * embed_lookup: every device weight layout, compared with decode_row of the host matrix the GPU
//    holds (F16/F32 tables are rounded to BF16 at upload, so their reference is the BF16 copy).
//    Exact equality: every layout decodes with the same IEEE operations in the same order
//    (code → float exactly, × scale, NVFP4 then ÷ divisor).
//  * add_rmsnorm: residual add exact (one IEEE add of the BF16-rounded delta; a BF16 delta gives the
//    same bytes as its fp32 source); fp32 output ≤ 1e-6 relative per element (both
//    sides sum squares in double, only the order differs, so the scale is almost always the same
//    float); bf16 output within 1 ulp of bf16(reference).
//  * swiglu: bf16 output within 1 ulp of bf16(reference on the BF16-rounded gate and up) (expf vs
//    std::exp: ≤ 2 ulp in fp32 can move the bf16 rounding by one step); a BF16 gate|up input gives
//    the same bytes as the fp32 one, for every output (BF16, FP8 per token, NVFP4).
//  * the FP8 per-token output of add_rmsnorm, swiglu and gdn_gated_rmsnorm (Fp8TokenActs, for the
//    next linear): code · scale equals kernels/cpu quantize_activations of the op's BF16 output
//    exactly, zero padding to kpad; and the fused-only run (no BF16 output) gives the same bytes.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <tuple>
#include <vector>

#include "gpu_test_util.h"
#include "core/quant_codecs.h"
#include "kernels/cpu/elementwise.h"
#include "kernels/cpu/quant.h"
#include "kernels/cuda/deltanet_cuda.h"
#include "kernels/cuda/ops_cuda.h"

namespace gdn::test {
namespace {

template <typename T>
T* to_device(GpuCtx& g, const std::vector<T>& v) {
  T* p = g.arena.allocate_n<T>(std::max<size_t>(v.size(), 1));
  GDN_CUDA_CHECK(cudaMemcpyAsync(p, v.data(), v.size() * sizeof(T), cudaMemcpyHostToDevice, g.stream));
  return p;
}
template <typename T>
std::vector<T> to_host(GpuCtx& g, const T* p, size_t n) {
  std::vector<T> v(n);
  GDN_CUDA_CHECK(cudaMemcpyAsync(v.data(), p, n * sizeof(T), cudaMemcpyDeviceToHost, g.stream));
  g.stream.sync();
  return v;
}

int bf16_ulps(uint16_t a, uint16_t b) {  // distance in representable steps (same sign assumed near)
  auto ord = [](uint16_t x) { return (x & 0x8000) ? -int(x & 0x7FFF) : int(x); };
  return std::abs(ord(a) - ord(b));
}

TEST(OpsEmbed, AllLayouts) {
  const Layout layouts[] = {Layout::Bf16,     Layout::F16,      Layout::F32,     Layout::Fp8PcA8,   Layout::Fp8PcW8A16,
                            Layout::Fp8BlkA8, Layout::Fp8BlkW8A16, Layout::Nvfp4A4, Layout::Nvfp4W4A16};
  struct Shape {
    int64_t rows, cols;
  };
  // 27B hidden width; an odd width (not a multiple of 128 or of the 8-element vectors: FP8 block
  // scale stride, row padding); row counts not multiples of 32 or 128.
  const Shape shapes[] = {{300, 5120}, {77, 208}, {1000, 40}};
  for (Layout l : layouts) {
    for (const Shape& sh : shapes) {
      const bool nvfp4 = l == Layout::Nvfp4A4 || l == Layout::Nvfp4W4A16;
      if (nvfp4 && sh.cols % 16) continue;
      SCOPED_TRACE(std::string(layout_name(l)) + " " + std::to_string(sh.rows) + "x" + std::to_string(sh.cols));
      const auto h = make_linear(l, sh.rows, sh.cols, 17 + uint64_t(sh.cols));
      std::vector<int32_t> ids = {0, int32_t(sh.rows - 1), 5, 5, int32_t(sh.rows / 2)};
      for (int i = 0; i < 40; ++i) ids.push_back(int32_t(mix64(uint64_t(i) + 99) % uint64_t(sh.rows)));
      const int T = int(ids.size());
      GpuCtx g(cuda::device_bytes_for(h->ref) + (size_t(16) << 20));
      const cuda::DeviceLinear d = cuda::upload_linear(h->ref, g.arena, g.stream);
      const int32_t* dids = to_device(g, ids);
      float* dout = g.arena.allocate_n<float>(size_t(T * sh.cols));
      GDN_CUDA_CHECK(cudaMemsetAsync(dout, 0xFF, size_t(T * sh.cols) * 4, g.stream));
      cuda::embed_lookup(d, dids, T, dout, g.stream);
      GDN_CUDA_CHECK_LAUNCH();
      const auto got = to_host(g, dout, size_t(T * sh.cols));
      std::vector<float> want(static_cast<size_t>(sh.cols));
      int64_t bad = 0;
      for (int t = 0; t < T; ++t) {
        decode_row(h->cpu_ref, ids[size_t(t)], want.data());
        for (int64_t c = 0; c < sh.cols; ++c) {
          const float gv = got[size_t(t * sh.cols + c)], wv = want[size_t(c)];
          if (!(gv == wv)) {
            if (bad++ < 3)
              ADD_FAILURE() << "token " << t << " (id " << ids[size_t(t)] << ") col " << c << ": gpu " << gv << " ref " << wv;
          }
        }
      }
      EXPECT_EQ(bad, 0);
    }
  }
}

struct NormCase {
  int T, H;
  bool delta, f32, gather;
};

void check_add_rmsnorm(const NormCase& c) {
  SCOPED_TRACE("T " + std::to_string(c.T) + " H " + std::to_string(c.H) + (c.delta ? " +delta" : "") +
               (c.f32 ? " +f32" : "") + (c.gather ? " gather" : ""));
  const int T = c.T, H = c.H;
  const float eps = 1e-6f;
  std::vector<float> res(size_t(T) * H), delta(size_t(T) * H), w(static_cast<size_t>(H));
  for (size_t i = 0; i < res.size(); ++i) {
    const uint64_t h = mix64(i + 3);
    res[i] = unit_float(h) * 2.f * ((h >> 20) % 200 == 0 ? 40.f : 1.f);  // sparse outlier channels
    delta[i] = unit_float(mix64(h)) * 0.5f;
  }
  for (int i = 0; i < H; ++i) w[size_t(i)] = unit_float(mix64(uint64_t(i) + 77)) * 0.6f;
  if (T > 2)
    for (int i = 0; i < H; ++i) res[size_t(2) * H + i] *= 1e-3f;  // a tiny row
  std::vector<int32_t> rows;
  if (c.gather) rows = {T - 1, 0, T / 2};  // the last token of each of three sequences
  const int R = c.gather ? int(rows.size()) : T;

  // Reference.
  // The residual add takes the block output as BF16 holds it (ops_cuda.h).
  std::vector<float> ref_res = res, delta16(delta.size());
  for (size_t i = 0; i < delta.size(); ++i) delta16[i] = bf16_to_float(float_to_bf16(delta[i]));
  if (c.delta) add_inplace(ref_res.data(), delta16.data(), int64_t(ref_res.size()));
  std::vector<float> ref_out(size_t(R) * H);
  for (int r = 0; r < R; ++r) {
    const int src = c.gather ? rows[size_t(r)] : r;
    rmsnorm_1p(ref_res.data() + size_t(src) * H, w.data(), 1, H, eps, ref_out.data() + size_t(r) * H);
  }

  GpuCtx g(size_t(T) * H * 16 + (size_t(8) << 20));
  float* dres = to_device(g, res);
  const float* ddelta = c.delta ? to_device(g, delta) : nullptr;
  const float* dw = to_device(g, w);
  const int32_t* drows = c.gather ? to_device(g, rows) : nullptr;
  auto* dbf = g.arena.allocate_n<__nv_bfloat16>(size_t(R) * H);
  float* df = c.f32 ? g.arena.allocate_n<float>(size_t(R) * H) : nullptr;
  GDN_CUDA_CHECK(cudaMemsetAsync(dbf, 0xFF, size_t(R) * H * 2, g.stream));
  if (df) GDN_CUDA_CHECK(cudaMemsetAsync(df, 0xFF, size_t(R) * H * 4, g.stream));
  cuda::add_rmsnorm(dres, ddelta, dw, T, H, eps, dbf, df, g.stream, drows, c.gather ? R : 0);
  GDN_CUDA_CHECK_LAUNCH();
  const auto got_res = to_host(g, dres, res.size());
  const auto got_bf = to_host(g, reinterpret_cast<const uint16_t*>(dbf), size_t(R) * H);
  int64_t bad_res = 0, bad_bf = 0, bad_f = 0;
  double worst_f = 0;
  for (size_t i = 0; i < res.size(); ++i) bad_res += !(got_res[i] == ref_res[i]);
  for (size_t i = 0; i < ref_out.size(); ++i) {
    const int u = bf16_ulps(got_bf[i], float_to_bf16(ref_out[i]));
    if (u > 1 && bad_bf++ < 3) ADD_FAILURE() << "bf16 out " << i << ": " << bf16_to_float(got_bf[i]) << " vs " << ref_out[i];
  }
  if (df) {
    const auto got_f = to_host(g, df, size_t(R) * H);
    for (size_t i = 0; i < ref_out.size(); ++i) {
      const double rel = std::fabs(double(got_f[i]) - ref_out[i]) / std::max(1e-30, std::fabs(double(ref_out[i])));
      worst_f = std::max(worst_f, rel);
      bad_f += !(rel <= 1e-6);
    }
  }
  EXPECT_EQ(bad_res, 0) << "residual after the add";
  EXPECT_EQ(bad_bf, 0) << "bf16 outputs more than 1 ulp off";
  EXPECT_EQ(bad_f, 0) << "fp32 outputs, worst relative error " << worst_f;
}

TEST(OpsRmsnorm, Shapes) {
  const NormCase cases[] = {{1, 5120, true, true, false},   {7, 5120, true, false, false}, {64, 5120, false, true, false},
                            {5, 8192, true, true, false},   {3, 1003, true, true, false},  {9, 100, false, false, false},
                            {33, 5120, true, true, true},   {6, 1003, true, false, true}};
  for (const NormCase& c : cases) check_add_rmsnorm(c);
}

void check_swiglu(int T, int I) {
  SCOPED_TRACE("T " + std::to_string(T) + " I " + std::to_string(I));
  std::vector<float> gu(size_t(T) * 2 * I);
  for (size_t i = 0; i < gu.size(); ++i) gu[i] = unit_float(mix64(i + 5)) * 6.f;
  std::vector<float> ref(size_t(T) * I), rounded(gu.size());
  for (size_t i = 0; i < gu.size(); ++i) rounded[i] = bf16_to_float(float_to_bf16(gu[i]));
  for (int t = 0; t < T; ++t)
    gdn::swiglu(rounded.data() + size_t(t) * 2 * I, rounded.data() + size_t(t) * 2 * I + I, I,
                ref.data() + size_t(t) * I);
  GpuCtx g(gu.size() * 4 + ref.size() * 2 + (size_t(8) << 20));
  const float* dgu = to_device(g, gu);
  auto* dout = g.arena.allocate_n<__nv_bfloat16>(ref.size());
  GDN_CUDA_CHECK(cudaMemsetAsync(dout, 0xFF, ref.size() * 2, g.stream));
  cuda::swiglu(dgu, T, I, dout, g.stream);
  GDN_CUDA_CHECK_LAUNCH();
  const auto got = to_host(g, reinterpret_cast<const uint16_t*>(dout), ref.size());
  int64_t bad = 0, off1 = 0;
  for (size_t i = 0; i < ref.size(); ++i) {
    const int u = bf16_ulps(got[i], float_to_bf16(ref[i]));
    off1 += u == 1;
    if (u > 1 && bad++ < 3) ADD_FAILURE() << "out " << i << ": " << bf16_to_float(got[i]) << " vs " << ref[i];
  }
  EXPECT_EQ(bad, 0);
  std::printf("  swiglu T %d I %d: %lld of %zu outputs 1 bf16 ulp off\n", T, I, (long long)off1, ref.size());
}

TEST(OpsSwiglu, Shapes) {
  check_swiglu(1, 17408);
  check_swiglu(13, 17408);
  check_swiglu(5, 1001);
  check_swiglu(2, 3);
}

// A BF16 gate|up (what linear_forward_bf16 writes) gives the bytes of its fp32 source, on every
// output kind and kernel: BF16 only (vector and scalar), + FP8 per token (fused: I = 17408; after:
// 1001), + NVFP4 (fused).
TEST(OpsSwiglu, Bf16InputEqualsFp32) {
  for (auto [T, I] : {std::pair{3, 17408}, {70, 17408}, {4, 1001}, {2, 3}}) {
    SCOPED_TRACE("T " + std::to_string(T) + " I " + std::to_string(I));
    std::vector<float> gu(size_t(T) * 2 * I);
    std::vector<uint16_t> gu16(gu.size());
    for (size_t i = 0; i < gu.size(); ++i) {
      gu[i] = unit_float(mix64(i + 11)) * 6.f;
      gu16[i] = float_to_bf16(gu[i]);
    }
    const int64_t n = int64_t(T) * I, ld = (I + 255) / 256 * 256;
    GpuCtx g(gu.size() * 6 + size_t(n) * 16 + size_t(T) * ld * 4 + (size_t(16) << 20));
    const float* d32 = to_device(g, gu);
    const auto* d16 = reinterpret_cast<const __nv_bfloat16*>(to_device(g, gu16));
    const bool fp8_ok = I >= 4;
    struct Out {
      __nv_bfloat16* bf;
      uint8_t* codes;
      float* scales;
      __nv_bfloat16* nv;
    };
    auto outputs = [&] {
      Out o{g.arena.allocate_n<__nv_bfloat16>(size_t(n)), g.arena.allocate_n<uint8_t>(size_t(T) * ld),
            g.arena.allocate_n<float>(size_t(T)), g.arena.allocate_n<__nv_bfloat16>(size_t(T) * ld)};
      GDN_CUDA_CHECK(cudaMemsetAsync(o.codes, 0x5A, size_t(T) * ld, g.stream));
      GDN_CUDA_CHECK(cudaMemsetAsync(o.nv, 0x5A, size_t(T) * ld * 2, g.stream));
      return o;
    };
    const Out a = outputs(), b = outputs();
    for (const auto& [out, in16] : {std::pair{a, false}, {b, true}}) {
      const cuda::Fp8TokenActs q = fp8_ok ? cuda::Fp8TokenActs{out.codes, out.scales, ld, ld} : cuda::Fp8TokenActs{};
      if (in16)
        cuda::swiglu(d16, T, I, out.bf, g.stream, q);
      else
        cuda::swiglu(d32, T, I, out.bf, g.stream, q);
      if (I % 256 == 0) {  // NVFP4 output (fused) into the second buffer
        const cuda::Nvfp4Acts nv{out.nv, ld, 0.37f};
        if (in16)
          cuda::swiglu(d16, T, I, nullptr, g.stream, {}, nv);
        else
          cuda::swiglu(d32, T, I, nullptr, g.stream, {}, nv);
      }
    }
    GDN_CUDA_CHECK_LAUNCH();
    auto same = [&](const void* x, const void* y, size_t bytes, const char* what) {
      std::vector<uint8_t> hx(bytes), hy(bytes);
      GDN_CUDA_CHECK(cudaMemcpyAsync(hx.data(), x, bytes, cudaMemcpyDeviceToHost, g.stream));
      GDN_CUDA_CHECK(cudaMemcpyAsync(hy.data(), y, bytes, cudaMemcpyDeviceToHost, g.stream));
      g.stream.sync();
      EXPECT_EQ(0, std::memcmp(hx.data(), hy.data(), bytes)) << what;
    };
    same(a.bf, b.bf, size_t(n) * 2, "bf16 output");
    if (fp8_ok) {
      same(a.codes, b.codes, size_t(T) * ld, "fp8 codes");
      same(a.scales, b.scales, size_t(T) * 4, "fp8 scales");
    }
    if (I % 256 == 0) same(a.nv, b.nv, size_t(T) * ld * 2, "nvfp4 activations");
  }
}

// ---- FP8 per-token outputs of the producers --------------------------------------------------

// run(out_bf16, q) launches the producer for T rows of `cols` values. Checks q against the CPU
// quantizer applied to the BF16 output, then (when fusable) that the run without BF16 output writes
// the same codes and scales.
template <typename Run>
void check_fp8_out(GpuCtx& g, int T, int64_t cols, bool fusable, Run&& run) {
  SCOPED_TRACE("T " + std::to_string(T) + " cols " + std::to_string(cols));
  const int64_t kpad = (cols + 127) / 128 * 128 + 128, ld = kpad + 16;  // padding to check, ld ≠ kpad
  auto* bf = g.arena.allocate_n<__nv_bfloat16>(size_t(T * cols));
  auto* codes = g.arena.allocate_n<uint8_t>(size_t(T * ld));
  auto* codes2 = g.arena.allocate_n<uint8_t>(size_t(T * ld));
  auto* sc = g.arena.allocate_n<float>(size_t(T));
  auto* sc2 = g.arena.allocate_n<float>(size_t(T));
  GDN_CUDA_CHECK(cudaMemsetAsync(codes, 0x5A, size_t(T * ld), g.stream));
  GDN_CUDA_CHECK(cudaMemsetAsync(codes2, 0x5A, size_t(T * ld), g.stream));
  run(bf, cuda::Fp8TokenActs{codes, sc, ld, kpad});
  const auto b = to_host(g, reinterpret_cast<const uint16_t*>(bf), size_t(T * cols));
  const auto c = to_host(g, codes, size_t(T * ld));
  const auto s = to_host(g, sc, size_t(T));
  std::vector<float> x(b.size()), ref(b.size());
  for (size_t i = 0; i < b.size(); ++i) x[i] = bf16_to_float(b[i]);
  QuantInfo qi;
  qi.scheme = {WeightFormat::Fp8PerChannel, ActQuant::Fp8PerToken};
  quantize_activations(qi, x.data(), T, cols, ref.data());
  const auto& e4m3 = fp8_e4m3_table();
  int64_t bad = 0;
  for (int t = 0; t < T; ++t)
    for (int64_t k = 0; k < kpad; ++k) {
      const uint8_t code = c[size_t(t * ld + k)];
      const bool ok = k < cols ? e4m3[code] * s[size_t(t)] == ref[size_t(t * cols + k)] : code == 0;
      if (!ok && bad++ < 3)
        ADD_FAILURE() << "row " << t << " col " << k << ": code " << int(code) << " × " << s[size_t(t)] << " vs "
                      << (k < cols ? ref[size_t(t * cols + k)] : 0.f);
    }
  EXPECT_EQ(bad, 0);
  if (!fusable) return;
  run(nullptr, cuda::Fp8TokenActs{codes2, sc2, ld, kpad});
  const auto c2 = to_host(g, codes2, size_t(T * ld));
  const auto s2 = to_host(g, sc2, size_t(T));
  for (int t = 0; t < T; ++t) {
    EXPECT_EQ(s2[size_t(t)], s[size_t(t)]) << "row " << t;
    EXPECT_EQ(0, std::memcmp(c2.data() + t * ld, c.data() + t * ld, size_t(kpad))) << "row " << t;
  }
}

// Random residual, delta and norm weights of T rows × H: fn(g, residual, its initial copy, delta, w).
template <typename Fn>
void with_norm_inputs(int T, int H, Fn&& fn) {
  std::vector<float> res(size_t(T) * H), delta(res.size()), w(static_cast<size_t>(H));
  for (size_t i = 0; i < res.size(); ++i) res[i] = unit_float(mix64(i + 1)) * 3.f, delta[i] = unit_float(mix64(i + 9));
  for (int i = 0; i < H; ++i) w[size_t(i)] = unit_float(mix64(size_t(i) + 77)) * 0.5f;
  GpuCtx g(res.size() * 24 + (size_t(16) << 20));
  float* dres = to_device(g, res);
  const float* dd = to_device(g, delta);
  const float* dw = to_device(g, w);
  fn(g, dres, static_cast<const float*>(to_device(g, res)), dd, dw);
}

// A BF16 delta (what linear_out writes at large M) == its fp32 source: residual, BF16 and FP8
// outputs, on the prefill (256-thread), decode (1024-thread), scalar and gathering paths.
TEST(OpsRmsnorm, Bf16DeltaEqualsFp32) {
  for (auto [T, H, gather] : {std::tuple{70, 5120, false}, {3, 5120, false}, {5, 1003, false}, {6, 5120, true}}) {
    SCOPED_TRACE("T " + std::to_string(T) + " H " + std::to_string(H) + (gather ? " gather" : ""));
    with_norm_inputs(T, H, [&](GpuCtx& g, float* dres, const float* dres0, const float* dd, const float* dw) {
      std::vector<uint16_t> d16(size_t(T) * H);
      const auto d32 = to_host(g, dd, d16.size());
      for (size_t i = 0; i < d16.size(); ++i) d16[i] = float_to_bf16(d32[i]);
      const auto* dd16 = reinterpret_cast<const __nv_bfloat16*>(to_device(g, d16));
      const std::vector<int32_t> rows = {T - 1, 0};
      const int32_t* drows = gather ? to_device(g, rows) : nullptr;
      const int R = gather ? 2 : T;
      const int64_t kpad = (H + 127) / 128 * 128;
      std::vector<uint8_t> out[2];
      for (int k = 0; k < 2; ++k) {
        GDN_CUDA_CHECK(cudaMemcpyAsync(dres, dres0, size_t(T) * H * 4, cudaMemcpyDeviceToDevice, g.stream));
        auto* bf = g.arena.allocate_n<__nv_bfloat16>(size_t(R) * H);
        auto* codes = g.arena.allocate_n<uint8_t>(size_t(R) * kpad);
        auto* sc = g.arena.allocate_n<float>(size_t(R));
        const cuda::Fp8TokenActs q = gather ? cuda::Fp8TokenActs{} : cuda::Fp8TokenActs{codes, sc, kpad, kpad};
        if (k == 0)
          cuda::add_rmsnorm(dres, dd, dw, T, H, 1e-6f, bf, nullptr, g.stream, drows, gather ? R : 0, q);
        else
          cuda::add_rmsnorm(dres, dd16, dw, T, H, 1e-6f, bf, nullptr, g.stream, drows, gather ? R : 0, q);
        const auto r = to_host(g, reinterpret_cast<const uint8_t*>(dres), size_t(T) * H * 4);
        const auto b = to_host(g, reinterpret_cast<const uint8_t*>(bf), size_t(R) * H * 2);
        out[k] = r;
        out[k].insert(out[k].end(), b.begin(), b.end());
        if (q) {
          const auto c = to_host(g, codes, size_t(R) * kpad);
          const auto s = to_host(g, reinterpret_cast<const uint8_t*>(sc), size_t(R) * 4);
          out[k].insert(out[k].end(), c.begin(), c.end());
          out[k].insert(out[k].end(), s.begin(), s.end());
        }
      }
      ASSERT_EQ(out[0].size(), out[1].size());
      EXPECT_EQ(0, std::memcmp(out[0].data(), out[1].data(), out[0].size()));
    });
  }
}

TEST(OpsFp8Out, AddRmsnorm) {
  for (auto [T, H] : {std::pair{1, 5120}, {7, 5120}, {80, 5120}, {3, 1001}, {2, 64}}) {  // ≤ 64 rows: 1024 threads
    with_norm_inputs(T, H, [&](GpuCtx& g, float* dres, const float* dres0, const float* dd, const float* dw) {
      check_fp8_out(g, T, H, cuda::fp8_row_fusable(H) && H % 4 == 0, [&](__nv_bfloat16* bf, const cuda::Fp8TokenActs& q) {
        GDN_CUDA_CHECK(cudaMemcpyAsync(dres, dres0, size_t(T) * H * 4, cudaMemcpyDeviceToDevice, g.stream));
        cuda::add_rmsnorm(dres, dd, dw, T, H, 1e-6f, bf, nullptr, g.stream, nullptr, 0, q);
      });
    });
  }
}

TEST(OpsFp8Out, Swiglu) {
  for (auto [T, I] : {std::pair{1, 17408}, {5, 17408}, {70, 17408}, {3, 1001}, {2, 36}}) {
    std::vector<float> gu(size_t(T) * 2 * I);
    for (size_t i = 0; i < gu.size(); ++i) gu[i] = unit_float(mix64(i + 5)) * 6.f;
    GpuCtx g(gu.size() * 4 + size_t(T) * I * 8 + (size_t(16) << 20));
    const float* dgu = to_device(g, gu);
    check_fp8_out(g, T, I, cuda::fp8_row_fusable(I), [&](__nv_bfloat16* bf, const cuda::Fp8TokenActs& q) {
      cuda::swiglu(dgu, T, I, bf, g.stream, q);
    });
  }
}

// The gated norm's cases (the 27B dims and small ones, 1 and 6 tokens): fn(g, d, T, o, z, z_ld, w).
template <typename Fn>
void for_each_gated_case(Fn&& fn) {
  cuda::GdnDims d27{16, 48, 128, 128, 4, 1e-6f}, small{2, 4, 32, 24, 4, 1e-6f};
  for (const cuda::GdnDims& d : {d27, small}) {
    for (int T : {1, 6}) {
      const int64_t VD = int64_t(d.value_heads) * d.value_dim, zld = VD + 8;
      std::vector<float> o(size_t(T * VD)), z(size_t(T * zld)), w(size_t(d.value_dim));
      for (size_t i = 0; i < o.size(); ++i) o[i] = unit_float(mix64(i + 3)) * 2.f;
      for (size_t i = 0; i < z.size(); ++i) z[i] = unit_float(mix64(i + 31)) * 3.f;
      for (size_t i = 0; i < w.size(); ++i) w[i] = 1.f + unit_float(mix64(i + 61)) * 0.3f;
      GpuCtx g((o.size() + z.size()) * 4 + size_t(T * VD) * 8 + (size_t(16) << 20));
      fn(g, d, T, to_device(g, o), to_device(g, z), zld, to_device(g, w));
    }
  }
}

TEST(OpsFp8Out, GatedRmsnorm) {
  for_each_gated_case([](GpuCtx& g, const cuda::GdnDims& d, int T, const float* o, const float* z, int64_t zld,
                         const float* w) {
    const int64_t VD = int64_t(d.value_heads) * d.value_dim;
    check_fp8_out(g, T, VD, cuda::gdn_gated_rmsnorm_fusable(d), [&](__nv_bfloat16* bf, const cuda::Fp8TokenActs& q) {
      cuda::gdn_gated_rmsnorm(d, o, z, zld, w, T, bf, g.stream, q);
    });
    // The fused kernel's BF16 values are the plain kernel's (the 27B's DV = 128 takes the float4
    // layout in both, the small case the scalar one): same bytes.
    auto* a = g.arena.allocate_n<__nv_bfloat16>(size_t(T * VD));
    auto* b = g.arena.allocate_n<__nv_bfloat16>(size_t(T * VD));
    const int64_t kpad = (VD + 127) / 128 * 128;
    auto* codes = g.arena.allocate_n<uint8_t>(size_t(T * kpad));
    auto* sc = g.arena.allocate_n<float>(size_t(T));
    cuda::gdn_gated_rmsnorm(d, o, z, zld, w, T, a, g.stream, cuda::Fp8TokenActs{codes, sc, kpad, kpad});
    cuda::gdn_gated_rmsnorm(d, o, z, zld, w, T, b, g.stream);
    const auto ha = to_host(g, reinterpret_cast<const uint16_t*>(a), size_t(T * VD));
    const auto hb = to_host(g, reinterpret_cast<const uint16_t*>(b), size_t(T * VD));
    EXPECT_EQ(0, std::memcmp(ha.data(), hb.data(), ha.size() * 2)) << "DV " << d.value_dim << " T " << T;
  });
}

// NVFP4 activations written by a producer (run(bf, nv): the BF16 output and the NVFP4 one) against
// the CPU reference quantization of that BF16 output (kernels/cpu/quant.cpp: values e2m1·s/G_x; the
// GPU keeps e2m1·s and divides by G_x in the GEMM epilogue, so ref·G_x... is compared as gpu/G_x).
// ld == cols: the producer's own kernel where fusable; ld > cols: the linear's pre-kernel, which
// also zeroes the padding. Exact: both are the same formulas on the same BF16 values.
template <typename Run>
void check_nvfp4_out(GpuCtx& g, int T, int64_t cols, int64_t ld, Run&& run) {
  SCOPED_TRACE("T " + std::to_string(T) + " cols " + std::to_string(cols) + " ld " + std::to_string(ld));
  const float gx = 37.5f;  // G_x: values ~1 land in mid-range E4M3 block scales
  auto* bf = g.arena.allocate_n<__nv_bfloat16>(size_t(T * cols));
  auto* nv = g.arena.allocate_n<__nv_bfloat16>(size_t(T * ld));
  GDN_CUDA_CHECK(cudaMemsetAsync(nv, 0x5A, size_t(T * ld) * 2, g.stream));
  run(bf, cuda::Nvfp4Acts{nv, ld, gx});
  const auto b = to_host(g, reinterpret_cast<const uint16_t*>(bf), size_t(T * cols));
  const auto q = to_host(g, reinterpret_cast<const uint16_t*>(nv), size_t(T * ld));
  std::vector<float> x(b.size()), ref(b.size());
  for (size_t i = 0; i < b.size(); ++i) x[i] = bf16_to_float(b[i]);
  QuantInfo qi;
  qi.scheme = {WeightFormat::Nvfp4CT, ActQuant::Nvfp4};
  qi.nvfp4_input_global = gx;
  quantize_activations(qi, x.data(), T, cols, ref.data());
  int64_t bad = 0, nonzero = 0;
  for (int t = 0; t < T; ++t)
    for (int64_t k = 0; k < ld; ++k) {
      const float got = bf16_to_float(q[size_t(t * ld + k)]);
      const bool ok = k < cols ? got / gx == ref[size_t(t * cols + k)] : got == 0.f;
      nonzero += got != 0.f;
      if (!ok && bad++ < 3)
        ADD_FAILURE() << "row " << t << " col " << k << ": " << got << " / G_x vs " << (k < cols ? ref[size_t(t * cols + k)] : 0.f);
    }
  EXPECT_EQ(bad, 0);
  EXPECT_GT(nonzero, int64_t(T) * cols / 4);  // not a trivially zero output
}

TEST(OpsNvfp4Out, AddRmsnorm) {
  for (auto [T, H, pad] : {std::tuple{1, 5120, 0}, {7, 5120, 0}, {80, 5120, 0}, {3, 1008, 16}, {2, 5120, 256}}) {
    with_norm_inputs(T, H, [&](GpuCtx& g, float* dres, const float*, const float* dd, const float* dw) {
      check_nvfp4_out(g, T, H, H + pad, [&](__nv_bfloat16* bf, const cuda::Nvfp4Acts& nv) {
        cuda::add_rmsnorm(dres, dd, dw, T, H, 1e-6f, bf, nullptr, g.stream, nullptr, 0, {}, nv);
      });
    });
  }
}

TEST(OpsNvfp4Out, Swiglu) {
  for (auto [T, I, pad] : {std::tuple{1, 17408, 0}, {5, 17408, 0}, {70, 17408, 0}, {3, 1008, 16}, {2, 17408, 256}}) {
    std::vector<float> gu(size_t(T) * 2 * I);
    for (size_t i = 0; i < gu.size(); ++i) gu[i] = unit_float(mix64(i + 5)) * 6.f;
    GpuCtx g(gu.size() * 4 + size_t(T) * (I + pad) * 8 + (size_t(16) << 20));
    const float* dgu = to_device(g, gu);
    check_nvfp4_out(g, T, I, I + pad, [&](__nv_bfloat16* bf, const cuda::Nvfp4Acts& nv) {
      cuda::swiglu(dgu, T, I, bf, g.stream, {}, nv);
    });
  }
}

TEST(OpsNvfp4Out, GatedRmsnorm) {
  for_each_gated_case([](GpuCtx& g, const cuda::GdnDims& d, int T, const float* o, const float* z, int64_t zld,
                         const float* w) {
    const int64_t VD = int64_t(d.value_heads) * d.value_dim;
    // small: DV = 24 is not a multiple of 32, so it takes the pre-kernel (16-blocks cross heads;
    // its rows are padded to a multiple of 256 like a weight's cols_pad).
    check_nvfp4_out(g, T, VD, d.value_dim % 32 == 0 ? VD : 256, [&](__nv_bfloat16* bf, const cuda::Nvfp4Acts& nv) {
      cuda::gdn_gated_rmsnorm(d, o, z, zld, w, T, bf, g.stream, {}, nv);
    });
  });
}

TEST(OpsPerf, Shapes27B) {
  auto time_us = [](cudaStream_t s, auto&& fn) {
    cuda::Event e0, e1;
    std::vector<float> ms;
    for (int it = 0; it < 23; ++it) {
      e0.record(s);
      fn();
      e1.record(s);
      const float t = e1.ms_since(e0);
      if (it >= 3) ms.push_back(t);
    }
    std::sort(ms.begin(), ms.end());
    return 1000.0 * ms[ms.size() / 2];
  };
  GpuCtx g(size_t(1) << 30);
  const int H = 5120, I = 17408;
  for (int T : {1, 64, 2048}) {
    float* res = g.arena.allocate_n<float>(size_t(T) * H);
    float* delta = g.arena.allocate_n<float>(size_t(T) * H);
    float* w = g.arena.allocate_n<float>(size_t(H));
    auto* bf = g.arena.allocate_n<__nv_bfloat16>(size_t(T) * H);
    GDN_CUDA_CHECK(cudaMemsetAsync(res, 0, size_t(T) * H * 4, g.stream));
    GDN_CUDA_CHECK(cudaMemsetAsync(delta, 0, size_t(T) * H * 4, g.stream));
    GDN_CUDA_CHECK(cudaMemsetAsync(w, 0, size_t(H) * 4, g.stream));
    const double us = time_us(g.stream, [&] { cuda::add_rmsnorm(res, delta, w, T, H, 1e-6f, bf, nullptr, g.stream); });
    const double bytes = double(T) * H * (4 * 3 + 2);
    std::printf("[ perf ] add_rmsnorm T=%d H=%d: %.1f us, %.0f GB/s\n", T, H, us, bytes / us * 1e-3);
    float* gu = g.arena.allocate_n<float>(size_t(T) * 2 * I);
    auto* out = g.arena.allocate_n<__nv_bfloat16>(size_t(T) * I);
    GDN_CUDA_CHECK(cudaMemsetAsync(gu, 0, size_t(T) * 2 * I * 4, g.stream));
    const double us2 = time_us(g.stream, [&] { cuda::swiglu(gu, T, I, out, g.stream); });
    std::printf("[ perf ] swiglu T=%d I=%d: %.1f us, %.0f GB/s\n", T, I, us2, double(T) * I * 10 / us2 * 1e-3);
    g.arena.reset();
  }
  // Embedding rows of a BF16 table (5120 wide), T tokens.
  const auto h = make_linear(Layout::Bf16, 4096, H, 3);
  const cuda::DeviceLinear d = cuda::upload_linear(h->ref, g.arena, g.stream);
  for (int T : {1, 2048}) {
    std::vector<int32_t> ids(static_cast<size_t>(T));
    for (int t = 0; t < T; ++t) ids[size_t(t)] = int32_t(mix64(uint64_t(t)) % 4096);
    const int32_t* dids = to_device(g, ids);
    float* out = g.arena.allocate_n<float>(size_t(T) * H);
    const double us = time_us(g.stream, [&] { cuda::embed_lookup(d, dids, T, out, g.stream); });
    std::printf("[ perf ] embed_lookup bf16 T=%d H=%d: %.1f us\n", T, H, us);
  }
}

}  // namespace
}  // namespace gdn::test
