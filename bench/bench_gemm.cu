// bench_gemm: GPU linear layers of the 27B model at every layout and M, against ceilings measured
// in the same run (device-to-device copy bandwidth counting read + write; cuBLASLt BF16 and FP8 at
// 8192³) and against cuBLASLt's own time on the same shape/layout (our large-M path, which is
// cuBLASLt itself for BF16/FP8; for NVFP4 it is our dequantize + cuBLASLt BF16).
// "ours" is LinearPath::AutoFast, the path the GPU model runs (W8A8 FP8: the wgmma kernel up to 64
// tokens, cuBLASLt with fast accumulation above for per-channel scales); "exact" is LinearPath::Auto
// (small-M mma.sync kernels, cuBLASLt with fp32 promotion), with its two halves beside it.
//
// Timing: CUDA events around each call, median of ≥ 50 calls after 5 warm-ups. Calls are queued
// behind a short sleeping kernel so host launch latency never leaves the GPU idle between the
// events. Weights, activations and outputs rotate over enough copies to exceed 3× the L2, so
// every call streams its weight from HBM. Bytes = weight codes + scales + BF16 activations + FP32
// outputs; FLOP = 2·M·N·K.
//
// Usage: bench_gemm [--out FILE.json] [--quick] [--reps N] [--gpu NAME] [--budget-s S] [--ms 1,2,..] [--layout STR]
// (--budget-s: stop starting new shapes after S seconds; the JSON is rewritten after every shape.
//  --profile: a few small-M calls of three shapes and three layouts, untimed, for ncu (with --layout /
//  --ms: those layouts and token counts, on four shapes including down_proj);
//  --ms / --layout: only these token counts / layouts whose name contains STR, for A/B runs.)
#include <cuda_bf16.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <string>
#include <vector>

#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/device.h"
#include "kernels/cuda/linear_cuda.h"
#include "kernels/cuda/linear_internal.h"

using namespace gdn;
using namespace gdn::cuda;

namespace {

__device__ uint64_t hash64(uint64_t z) {
  z += 0x9E3779B97F4A7C15ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

// mode 0: any byte (E2M1 pairs); 1: E4M3 without NaN; 2: positive E4M3 scale 2^-3..2^3.
__global__ void fill_bytes(uint8_t* p, size_t n, uint64_t seed, int mode) {
  for (size_t i = blockIdx.x * size_t(blockDim.x) + threadIdx.x; i < n; i += size_t(gridDim.x) * blockDim.x) {
    const uint64_t h = hash64(seed ^ (i * 0x100000001B3ull));
    uint8_t c = uint8_t(h);
    if (mode == 1 && (c & 0x7F) == 0x7F) c ^= 1;
    // mode 2: normal E4M3 block scales in the device encoding (nvfp4_device_scale: code + 16)
    if (mode == 2) c = uint8_t((((4 + (h >> 8) % 7) << 3) | (h & 7)) + 16);
    p[i] = c;
  }
}
__global__ void fill_bf16(__nv_bfloat16* p, size_t n, uint64_t seed, float amp) {
  for (size_t i = blockIdx.x * size_t(blockDim.x) + threadIdx.x; i < n; i += size_t(gridDim.x) * blockDim.x) {
    const uint64_t h = hash64(seed ^ (i * 0x100000001B3ull));
    p[i] = __float2bfloat16((float(h >> 40) / float(1 << 24) * 2.f - 1.f) * amp);
  }
}
__global__ void fill_f32(float* p, size_t n, uint64_t seed, float lo, float hi) {
  for (size_t i = blockIdx.x * size_t(blockDim.x) + threadIdx.x; i < n; i += size_t(gridDim.x) * blockDim.x) {
    const uint64_t h = hash64(seed ^ (i * 0x100000001B3ull));
    p[i] = lo + (hi - lo) * float(h >> 40) / float(1 << 24);
  }
}
__global__ void sleep_kernel(unsigned us) {
  for (unsigned i = 0; i < us; ++i) __nanosleep(1000);
}

enum class L { Bf16, Fp8Pc, Fp8Blk, Nvfp4A4, Nvfp4W4A16 };
const char* lname(L l) {
  switch (l) {
    case L::Bf16: return "bf16";
    case L::Fp8Pc: return "fp8-pc";
    case L::Fp8Blk: return "fp8-blk128";
    case L::Nvfp4A4: return "nvfp4-a4";
    case L::Nvfp4W4A16: return "nvfp4-w4a16";
  }
  return "?";
}
bool is_fp8(L l) { return l == L::Fp8Pc || l == L::Fp8Blk; }

// Scheme and geometry of a layout (shapes here need no padding).
DeviceLinear make_weight_geometry(L l, int64_t N, int64_t K) {
  DeviceLinear w;
  w.rows = w.rows_pad = N;
  w.cols = w.cols_pad = K;
  w.kind = l == L::Bf16 ? DeviceWeightKind::Bf16 : is_fp8(l) ? DeviceWeightKind::Fp8 : DeviceWeightKind::Nvfp4;
  if (l == L::Fp8Pc) w.scheme = {WeightFormat::Fp8PerChannel, ActQuant::Fp8PerToken};
  if (l == L::Fp8Blk) w.scheme = {WeightFormat::Fp8Block128, ActQuant::Fp8PerGroup128};
  if (l == L::Nvfp4A4) w.scheme = {WeightFormat::Nvfp4CT, ActQuant::Nvfp4};
  if (l == L::Nvfp4W4A16) w.scheme = {WeightFormat::Nvfp4CT, ActQuant::None};
  w.scale_ld = (K / 128 + 3) / 4 * 4;
  return w;
}

// A random weight in the documented device layout.
DeviceLinear make_weight(DeviceArena& a, L l, int64_t N, int64_t K, uint64_t seed, cudaStream_t s) {
  DeviceLinear w = make_weight_geometry(l, N, K);
  const dim3 g(1024), b(256);
  switch (l) {
    case L::Bf16: {
      auto* p = a.allocate_n<__nv_bfloat16>(size_t(N * K));
      fill_bf16<<<g, b, 0, s>>>(p, size_t(N * K), seed, 0.05f);
      w.weight = p;
      break;
    }
    case L::Fp8Pc:
    case L::Fp8Blk: {
      auto* p = a.allocate_n<uint8_t>(size_t(N * K));
      fill_bytes<<<g, b, 0, s>>>(p, size_t(N * K), seed, 1);
      w.weight = p;
      const int64_t ns = l == L::Fp8Pc ? N : (N + 127) / 128 * w.scale_ld;
      auto* sc = a.allocate_n<float>(size_t(ns));
      fill_f32<<<g, b, 0, s>>>(sc, size_t(ns), seed + 1, 5e-4f, 2e-3f);
      w.scales = sc;
      break;
    }
    case L::Nvfp4A4:
    case L::Nvfp4W4A16: {
      auto* p = a.allocate_n<uint8_t>(size_t(N * K / 2));
      fill_bytes<<<g, b, 0, s>>>(p, size_t(N * K / 2), seed, 0);
      auto* bs = a.allocate_n<uint8_t>(size_t(N * K / 16));
      fill_bytes<<<g, b, 0, s>>>(bs, size_t(N * K / 16), seed + 1, 2);
      w.weight = p;
      w.block_scales = bs;
      w.nvfp4_weight_divisor = 2688.f;
      w.nvfp4_input_global = 672.f;
      break;
    }
  }
  GDN_CUDA_CHECK_LAUNCH();
  return w;
}

struct Timer {
  cudaStream_t s;
  std::vector<cudaEvent_t> ev;
  explicit Timer(cudaStream_t st, int n) : s(st), ev(size_t(2 * n)) {
    for (auto& e : ev) GDN_CUDA_CHECK(cudaEventCreate(&e));
  }
  ~Timer() {
    for (auto& e : ev) cudaEventDestroy(e);
  }
  // Median milliseconds of `reps` calls of fn(i) after `warm` warm-ups.
  template <typename F>
  double median_ms(int reps, int warm, F&& fn) {
    for (int i = 0; i < warm; ++i) fn(i);
    std::vector<double> t;
    const int batch = int(ev.size() / 2);
    for (int done = 0; done < reps;) {
      const int n = std::min(batch, reps - done);
      sleep_kernel<<<1, 1, 0, s>>>(400);  // keeps the GPU busy while the batch is queued
      for (int i = 0; i < n; ++i) {
        GDN_CUDA_CHECK(cudaEventRecord(ev[size_t(2 * i)], s));
        fn(done + i);
        GDN_CUDA_CHECK(cudaEventRecord(ev[size_t(2 * i + 1)], s));
      }
      GDN_CUDA_CHECK(cudaStreamSynchronize(s));
      for (int i = 0; i < n; ++i) {
        float ms = 0;
        GDN_CUDA_CHECK(cudaEventElapsedTime(&ms, ev[size_t(2 * i)], ev[size_t(2 * i + 1)]));
        t.push_back(ms);
      }
      done += n;
    }
    std::sort(t.begin(), t.end());
    return t[t.size() / 2];
  }
};

std::string slug(const std::string& name) {
  std::string s;
  for (char c : name) s += char(std::tolower(static_cast<unsigned char>(c)));
  for (const char* k : {"h200", "h100", "b200", "a100"})
    if (s.find(k) != std::string::npos) return k;
  std::string o;
  for (char c : s) o += std::isalnum(static_cast<unsigned char>(c)) ? c : '-';
  return o;
}

double seconds_since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}

struct Row {
  std::string shape, layout;
  int64_t N, K, M;
  double ours_us, exact_us, small_us, large_us, graph_us, bytes, flops;
  const char* path;
};

}  // namespace

int main(int argc, char** argv) {
  std::string out_path, gpu_override;
  bool quick = false;
  int reps = 50;
  double budget_s = 0;
  bool profile = false;
  std::vector<int64_t> only_ms;  // --ms 1,2,4: these token counts only
  std::string only_layout;       // --layout nvfp4: layouts whose name contains this only
  const auto t_start = std::chrono::steady_clock::now();
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--out" && i + 1 < argc) out_path = argv[++i];
    else if (a == "--gpu" && i + 1 < argc) gpu_override = argv[++i];
    else if (a == "--reps" && i + 1 < argc) reps = std::max(50, std::atoi(argv[++i]));
    else if (a == "--quick") quick = true;
    else if (a == "--budget-s" && i + 1 < argc) budget_s = std::atof(argv[++i]);
    else if (a == "--profile") profile = true;
    else if (a == "--ms" && i + 1 < argc) {
      for (const char* q = argv[++i]; *q;) {
        char* end = nullptr;
        const long long m = std::strtoll(q, &end, 10);
        if (end == q || m < 1) {
          std::fprintf(stderr, "--ms: expected a comma-separated list of token counts ≥ 1, got '%s'\n", argv[i]);
          return 2;
        }
        only_ms.push_back(m);
        q = *end == ',' ? end + 1 : end;
      }
    } else if (a == "--layout" && i + 1 < argc) only_layout = argv[++i];
    else {
      std::fprintf(stderr, "usage: bench_gemm [--out FILE.json] [--quick] [--reps N>=50] [--gpu NAME] [--budget-s S] [--profile]\n"
                           "                  [--ms M1,M2,...] [--layout SUBSTRING]\n");
      return 2;
    }
  }
  const DeviceInfo& dev = device_info();
  const std::string gpu = gpu_override.empty() ? slug(dev.name) : gpu_override;
  if (out_path.empty()) out_path = "bench/results/gemm-" + gpu + ".json";
  std::printf("bench_gemm on %s (%d SMs, L2 %.0f MB), reps %d\n", dev.name.c_str(), dev.sm_count, dev.l2_bytes / 1e6, reps);

  Stream stream;
  cudaStream_t s = stream.get();
  Timer timer(s, 10);

  if (profile) {
    struct P {
      int64_t N, K;
    };
    // Default: three shapes × three layouts at M = 1 and 16; --layout / --ms narrow or change the set
    // (FP8 per-channel runs the model's AutoFast path: the wgmma kernel).
    std::vector<L> layouts;
    for (L l : {L::Bf16, L::Fp8Pc, L::Fp8Blk, L::Nvfp4A4, L::Nvfp4W4A16})
      if (only_layout.empty() ? l == L::Bf16 || l == L::Fp8Blk || l == L::Nvfp4W4A16
                              : std::strstr(lname(l), only_layout.c_str()) != nullptr)
        layouts.push_back(l);
    const std::vector<int64_t> ms = only_ms.empty() ? std::vector<int64_t>{1, 16} : only_ms;
    const int64_t mmax = *std::max_element(ms.begin(), ms.end());
    for (P sh : {P{17408, 5120}, P{10240, 5120}, P{1024, 5120}, P{5120, 17408}})
      for (L l : layouts) {
        if (only_layout.empty() && sh.K != 5120) continue;
        DeviceArena arena(size_t(sh.N * sh.K) * 2 + size_t(mmax * (sh.K * 2 + sh.N * 4)) + (size_t(256) << 20));
        DeviceLinear w = make_weight(arena, l, sh.N, sh.K, 1, s);
        auto* x = arena.allocate_n<__nv_bfloat16>(size_t(mmax * sh.K));
        auto* y = arena.allocate_n<float>(size_t(mmax * sh.N));
        fill_bf16<<<64, 256, 0, s>>>(x, size_t(mmax * sh.K), 2, 1.f);
        LinearWorkspace ws;
        ws.bytes = linear_workspace_bytes(w, mmax);
        ws.ptr = arena.allocate(ws.bytes);
        linear_workspace_init(ws, s);
        const LinearPath path = l == L::Fp8Pc ? LinearPath::AutoFast : LinearPath::SmallM;
        for (int64_t M : ms)
          for (int i = 0; i < 2; ++i) linear_forward(w, x, M, y, ws, s, path);
        stream.sync();
      }
    std::printf("profile calls done\n");
    return 0;
  }

  // --- ceilings, measured now
  double copy_gbs = 0, lt_bf16_tflops = 0, lt_fp8_tflops = 0;
  {
    const size_t bytes = size_t(1) << 30;
    void *a = nullptr, *b = nullptr;
    GDN_CUDA_CHECK(cudaMalloc(&a, bytes));
    GDN_CUDA_CHECK(cudaMalloc(&b, bytes));
    fill_bytes<<<1024, 256, 0, s>>>(static_cast<uint8_t*>(a), bytes, 1, 0);
    const double ms = timer.median_ms(20, 3, [&](int) { GDN_CUDA_CHECK(cudaMemcpyAsync(b, a, bytes, cudaMemcpyDeviceToDevice, s)); });
    copy_gbs = 2.0 * double(bytes) / (ms * 1e-3) / 1e9;
    GDN_CUDA_CHECK(cudaFree(a));
    GDN_CUDA_CHECK(cudaFree(b));

    const int64_t n = 8192;
    DeviceArena arena(size_t(n * n) * 2 * 2 + size_t(n * n) * 4 + detail::kLtWorkspaceBytes + (size_t(16) << 20));
    auto* A = arena.allocate_n<uint8_t>(size_t(n * n) * 2);
    auto* B = arena.allocate_n<uint8_t>(size_t(n * n) * 2);
    auto* D = arena.allocate_n<float>(size_t(n * n));
    auto* sa = arena.allocate_n<float>(size_t(n));
    auto* sb = arena.allocate_n<float>(size_t(n));
    void* ws = arena.allocate(detail::kLtWorkspaceBytes);
    fill_bf16<<<1024, 256, 0, s>>>(reinterpret_cast<__nv_bfloat16*>(A), size_t(n * n), 2, 1.f);
    fill_bf16<<<1024, 256, 0, s>>>(reinterpret_cast<__nv_bfloat16*>(B), size_t(n * n), 3, 1.f);
    fill_f32<<<64, 256, 0, s>>>(sa, size_t(n), 4, 0.5f, 1.f);
    fill_f32<<<64, 256, 0, s>>>(sb, size_t(n), 5, 0.5f, 1.f);
    detail::LtProblem p;
    p.n = p.m = p.k = n;
    p.a = A, p.b = B, p.d = D, p.lda = p.ldb = p.ldd = n;
    p.type = detail::LtType::Bf16;
    double ms_b = timer.median_ms(20, 3, [&](int) { detail::lt_matmul(p, ws, detail::kLtWorkspaceBytes, s); });
    lt_bf16_tflops = 2.0 * double(n) * n * n / (ms_b * 1e-3) / 1e12;
    fill_bytes<<<1024, 256, 0, s>>>(A, size_t(n * n), 6, 1);
    fill_bytes<<<1024, 256, 0, s>>>(B, size_t(n * n), 7, 1);
    p.type = detail::LtType::Fp8;
    p.scale = detail::LtScale::OuterVec;
    p.a_scale = sa, p.b_scale = sb;
    double ms_f = timer.median_ms(20, 3, [&](int) { detail::lt_matmul(p, ws, detail::kLtWorkspaceBytes, s); });
    lt_fp8_tflops = 2.0 * double(n) * n * n / (ms_f * 1e-3) / 1e12;
  }
  std::printf("ceilings: copy %.0f GB/s (read+write) | cuBLASLt 8192^3 BF16 %.0f TFLOP/s, FP8 (outer-vec, fp32 out) %.0f TFLOP/s\n",
              copy_gbs, lt_bf16_tflops, lt_fp8_tflops);

  struct Shape {
    const char* name;
    int64_t N, K;
    std::vector<L> layouts;
    int64_t max_m;
  };
  const std::vector<L> all = {L::Bf16, L::Fp8Pc, L::Fp8Blk, L::Nvfp4A4, L::Nvfp4W4A16};
  std::vector<Shape> shapes = {{"in_proj_qkv", 10240, 5120, all, 8192}, {"in_proj_z", 6144, 5120, all, 8192},
                               {"out_proj|o_proj", 5120, 6144, all, 8192}, {"q_proj", 12288, 5120, all, 8192},
                               {"k_proj|v_proj", 1024, 5120, all, 8192},   {"gate|up_proj", 17408, 5120, all, 8192},
                               {"down_proj", 5120, 17408, all, 8192},      {"lm_head", 248320, 5120, {L::Bf16, L::Fp8Blk}, 512}};
  std::vector<int64_t> Ms = {1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 2048, 8192};
  if (quick) {
    shapes = {shapes[5], shapes[4]};
    Ms = {1, 8, 16, 64, 2048};
  }
  if (!only_ms.empty()) Ms = only_ms;

  std::vector<Row> rows;
  auto write_json = [&]() {
    if (std::FILE* f = std::fopen(out_path.c_str(), "w")) {
      std::fprintf(f, "{\n  \"gpu\": \"%s\",\n  \"device_name\": \"%s\",\n  \"sm_count\": %d,\n  \"reps\": %d,\n", gpu.c_str(),
                   dev.name.c_str(), dev.sm_count, reps);
      std::fprintf(f, "  \"ceilings\": {\"copy_GBps_read_plus_write\": %.1f, \"cublaslt_bf16_8192_TFLOPs\": %.1f, "
                      "\"cublaslt_fp8_8192_TFLOPs\": %.1f},\n  \"rows\": [\n", copy_gbs, lt_bf16_tflops, lt_fp8_tflops);
      for (size_t i = 0; i < rows.size(); ++i) {
        const Row& r = rows[i];
        auto num = [](double v) { return std::isfinite(v) ? std::to_string(v) : std::string("null"); };
        std::fprintf(f,
                     "    {\"shape\": \"%s\", \"layout\": \"%s\", \"N\": %lld, \"K\": %lld, \"M\": %lld, \"path\": \"%s\", "
                     "\"us\": %s, \"exact_us\": %s, \"small_us\": %s, \"large_us\": %s, \"graph_us\": %s, \"bytes\": %.0f, \"flops\": %.0f, \"GBps\": %s, "
                     "\"TFLOPs\": %s}%s\n",
                     r.shape.c_str(), r.layout.c_str(), (long long)r.N, (long long)r.K, (long long)r.M, r.path,
                     num(r.ours_us).c_str(), num(r.exact_us).c_str(), num(r.small_us).c_str(), num(r.large_us).c_str(),
                     num(r.graph_us).c_str(),
                   r.bytes, r.flops,
                     num(r.bytes / (r.ours_us * 1e-6) / 1e9).c_str(), num(r.flops / (r.ours_us * 1e-6) / 1e12).c_str(),
                     i + 1 < rows.size() ? "," : "");
      }
      std::fprintf(f, "  ]\n}\n");
      std::fclose(f);
      } else {
      std::fprintf(stderr, "cannot write %s\n", out_path.c_str());
    }
  };
  uint64_t seed = 100;
  for (const Shape& sh : shapes) {
    for (L l : sh.layouts) {
      if (std::string(lname(l)).find(only_layout) == std::string::npos) continue;
      const int64_t N = sh.N, K = sh.K;
      int64_t mmax = 0;
      for (int64_t m : Ms) mmax = m <= sh.max_m ? std::max(mmax, m) : mmax;
      // Rotation: enough weight copies to exceed 3× L2 (≤ 64); activations and outputs rotate alike.
      const double wb = l == L::Bf16 ? 2.0 * N * K : is_fp8(l) ? double(N * K) : N * K * (0.5 + 1.0 / 16);
      const int copies = int(std::min<double>(64, std::max<double>(1, std::ceil(3.0 * dev.l2_bytes / wb))));
      DeviceLinear geom;  // geometry only, for the workspace size
      geom = make_weight_geometry(l, N, K);
      const size_t ws_bytes = linear_workspace_bytes(geom, mmax);
      const size_t need = size_t(copies) * (size_t(wb) + (size_t(4) << 20) + size_t(mmax * K * 2) + size_t(mmax * N * 4)) +
                          ws_bytes + (size_t(64) << 20);
      DeviceArena arena(need);
      std::vector<DeviceLinear> w;
      std::vector<__nv_bfloat16*> x;
      std::vector<float*> y;
      for (int c = 0; c < copies; ++c) {
        w.push_back(make_weight(arena, l, N, K, seed++, s));
        x.push_back(arena.allocate_n<__nv_bfloat16>(size_t(mmax * K)));
        fill_bf16<<<1024, 256, 0, s>>>(x.back(), size_t(mmax * K), seed++, 2.f);
        y.push_back(arena.allocate_n<float>(size_t(mmax * N)));
      }
      LinearWorkspace ws;
      ws.bytes = ws_bytes;
      ws.ptr = arena.allocate(ws.bytes);
      linear_workspace_init(ws, s);
      stream.sync();

      std::printf("\n%-16s %-12s N=%-6lld K=%-6lld (%d copies)\n", sh.name, lname(l), (long long)N, (long long)K, copies);
      std::printf("  %6s %10s %9s %7s %9s %7s | %10s %10s %10s %7s | %9s %7s\n", "M", "ours_us", "GB/s", "%copy", "TFLOP/s",
                  "%peak", "exact_us", "small_us", "large_us", "lg/ours", "graph_us", "%copy");
      for (int64_t M : Ms) {
        if (M > sh.max_m) continue;
        auto run = [&](LinearPath p) {
          try {
            return timer.median_ms(reps, 5, [&](int i) {
              const int c = i % copies;
              linear_forward(w[size_t(c)], x[size_t(c)], M, y[size_t(c)], ws, s, p);
            }) * 1e3;
          } catch (const std::exception& e) {
            std::printf("  error: %s\n", e.what());
            cudaGetLastError();
            return double(NAN);
          }
        };
        Row r;
        r.shape = sh.name, r.layout = lname(l), r.N = N, r.K = K, r.M = M;
        r.small_us = M <= 128 ? run(LinearPath::SmallM) : NAN;
        r.large_us = M >= 16 || l == L::Bf16 || is_fp8(l) ? run(LinearPath::LargeM) : NAN;
        // Per-call time inside a CUDA graph of 20 calls (how the engine runs decode): no launch gaps.
        auto graph_us = [&](LinearPath p) {
          cudaGraph_t g = nullptr;
          cudaGraphExec_t ge = nullptr;
          double us = NAN;
          try {
            GDN_CUDA_CHECK(cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal));
            try {
              for (int i = 0; i < 20; ++i) linear_forward(w[size_t(i % copies)], x[size_t(i % copies)], M, y[size_t(i % copies)], ws, s, p);
            } catch (...) {
              cudaStreamEndCapture(s, &g);
              throw;
            }
            GDN_CUDA_CHECK(cudaStreamEndCapture(s, &g));
            GDN_CUDA_CHECK(cudaGraphInstantiate(&ge, g, 0));
            us = timer.median_ms(5, 2, [&](int) { GDN_CUDA_CHECK(cudaGraphLaunch(ge, s)); }) * 1e3 / 20;
          } catch (const std::exception& e) {
            std::printf("  graph error: %s\n", e.what());
            cudaGetLastError();
          }
          if (ge) cudaGraphExecDestroy(ge);
          if (g) cudaGraphDestroy(g);
          return us;
        };
        // Ours = LinearPath::AutoFast, what the GPU model runs; exact = Auto (the small-M kernel up to
        // small_m_limit, else cuBLASLt with fp32 promotion).
        const bool auto_small = M <= small_m_limit(w[0]);
        r.exact_us = auto_small ? r.small_us : r.large_us;
        r.path = "auto-fast";
        r.ours_us = run(LinearPath::AutoFast);
        r.graph_us = M <= 2048 ? graph_us(LinearPath::AutoFast) : NAN;
        r.bytes = double(w[0].weight_bytes()) + double(M * K * 2) + double(M * N * 4);
        r.flops = 2.0 * double(M) * N * K;
        const double gbs = r.bytes / (r.ours_us * 1e-6) / 1e9, tf = r.flops / (r.ours_us * 1e-6) / 1e12;
        const double peak = is_fp8(l) ? lt_fp8_tflops : lt_bf16_tflops;
        const double ggbs = r.bytes / (r.graph_us * 1e-6) / 1e9;
        std::printf("  %6lld %10.2f %9.0f %6.1f%% %9.1f %6.1f%% | %10.2f %10.2f %10.2f %7.2f | %9.2f %6.1f%%\n",
                    (long long)M, r.ours_us, gbs, 100 * gbs / copy_gbs, tf, 100 * tf / peak, r.exact_us, r.small_us,
                    r.large_us, r.large_us / r.ours_us, r.graph_us, 100 * ggbs / copy_gbs);
        rows.push_back(r);
      }
      write_json();
      if (budget_s > 0 && seconds_since(t_start) > budget_s) {
        std::printf("\n[time budget of %.0f s reached: remaining shapes skipped]\n", budget_s);
        goto done;
      }
    }
  }
done:

  // --- summary against the targets (goals, not tests)
  std::printf("\nSummary vs targets (copy %.0f GB/s, cuBLASLt FP8 %.0f / BF16 %.0f TFLOP/s):\n", copy_gbs, lt_fp8_tflops,
              lt_bf16_tflops);
  for (const char* lay : {"bf16", "fp8-pc", "fp8-blk128", "nvfp4-a4", "nvfp4-w4a16"}) {
    double lo = 1e9, hi = 0, sum = 0;
    int n = 0;
    for (const Row& r : rows)
      if (r.layout == lay && r.M <= 16 && r.shape != "lm_head") {
        const double f = r.bytes / (r.ours_us * 1e-6) / 1e9 / copy_gbs;
        lo = std::min(lo, f), hi = std::max(hi, f), sum += f, ++n;
      }
    double glo = 1e9, ghi = 0, gsum = 0;
    for (const Row& r : rows)
      if (r.layout == lay && r.M <= 16 && r.shape != "lm_head") {
        const double f = r.bytes / (r.graph_us * 1e-6) / 1e9 / copy_gbs;
        glo = std::min(glo, f), ghi = std::max(ghi, f), gsum += f;
      }
    if (n)
      std::printf("  M<=16  %-12s %%copy-BW min %5.1f  mean %5.1f  max %5.1f | in graphs: min %5.1f  mean %5.1f  max %5.1f\n",
                  lay, 100 * lo, 100 * sum / n, 100 * hi, 100 * glo, 100 * gsum / n, 100 * ghi);
  }
  for (const char* lay : {"bf16", "fp8-pc", "fp8-blk128", "nvfp4-a4", "nvfp4-w4a16"}) {
    double lo = 1e9, hi = 0;
    int n = 0;
    for (const Row& r : rows)
      if (r.layout == lay && r.M >= 2048) {
        const double f = r.flops / (r.ours_us * 1e-6) / 1e12 / lt_fp8_tflops;
        lo = std::min(lo, f), hi = std::max(hi, f), ++n;
      }
    if (n) std::printf("  M>=2048 %-12s of cuBLASLt-FP8-8192^3: min %5.1f%%  max %5.1f%%\n", lay, 100 * lo, 100 * hi);
  }

  write_json();
  std::printf("wrote %s\n", out_path.c_str());
  return 0;
}
