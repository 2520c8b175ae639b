// Full-scale GPU forward benchmark (issue 6): the exact Qwen3.5-27B config with random weights
// generated on the GPU (--load-format dummy, no checkpoint) in each layout. Measures batch-1 decode
// at several contexts, decode throughput at several batch sizes, prefill tok/s and TTFT, and GPU
// memory, each beside a roofline computed from counted bytes and FLOPs and ceilings measured in the
// same process (device-to-device copy bandwidth; cuBLASLt FP8 and BF16 GEMM through our linear layer
// at 8192³ and at the model's largest prefill GEMM). Prints a table and writes JSON.
//
// Usage: bench_forward [--layouts fp8,nvfp4,bf16,fp8-block] [--out FILE.json] [--gpu NAME] [--quick]
//                      [--kv bf16|fp8] [--budget-s S] [--profile [--profile-batch B]] [--profile-prefill N]
// --profile: only 23 decode steps of the first layout at batch B (default 1, context 1024; graph
// replays); the CUDA profiler range (cudaProfilerStart/Stop, for `ncu --profile-from-start off` or
// nsys) covers 2 of them.
// --profile-prefill N: one warm-up and one profiled N-token prefill of the first layout.
// Decode steps are timed on the host around GpuModel::step (graph replay + greedy GPU sampling +
// the host round trip), i.e. what a user sees per token; median over the timed steps.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include <cuda_profiler_api.h>

#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/device.h"
#include "model/cuda/gpu_model.h"

using namespace gdn;
using namespace gdn::cuda;
using clk = std::chrono::steady_clock;

namespace {

double seconds_since(clk::time_point t) { return std::chrono::duration<double>(clk::now() - t).count(); }

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}

struct Ceilings {
  double copy_gbs = 0, bf16_tflops = 0, fp8_tflops = 0, fp8_fast_tflops = 0;
};

// Device-to-device copy of 2 GiB (read + write counted), median of 10.
double copy_bandwidth(cudaStream_t s) {
  const size_t n = size_t(1) << 30;
  void *a, *b;
  GDN_CUDA_CHECK(cudaMalloc(&a, n));
  GDN_CUDA_CHECK(cudaMalloc(&b, n));
  std::vector<double> t;
  Event e0, e1;
  for (int i = 0; i < 13; ++i) {
    e0.record(s);
    GDN_CUDA_CHECK(cudaMemcpyAsync(b, a, n, cudaMemcpyDeviceToDevice, s));
    e1.record(s);
    if (i >= 3) t.push_back(e1.ms_since(e0) * 1e-3);
  }
  cudaFree(a);
  cudaFree(b);
  return 2.0 * double(n) / median(t) / 1e9;
}

// An M × N × K GEMM through our linear layer at large M (cuBLASLt), as the model's prefill runs it:
// random activations already in the GEMM's input format (FP8 codes with per-token scales for W8A8,
// BF16 otherwise), BF16 output (linear_forward_bf16); fast: LinearPath::AutoFast (FP8 with the
// tensor cores' own accumulation). Median of 10.
double gemm_tflops(DummyLayout layout, cudaStream_t s, int64_t M, int64_t N, int64_t K, bool fast = false) {
  auto q = std::make_shared<QuantInfo>();
  MatrixRef shape{DType::BF16, nullptr, N, K, nullptr};
  const bool fp8 = layout == DummyLayout::Fp8PerChannel;
  if (fp8) {
    q->scheme = {WeightFormat::Fp8PerChannel, ActQuant::Fp8PerToken};
    shape = MatrixRef{DType::F8_E4M3, nullptr, N, K, q};
  }
  DeviceArena arena(device_bytes_for(shape) + size_t(M * K) * 2 + size_t(M * N) * 2 + size_t(M) * 4 + (size_t(512) << 20));
  DeviceLinear w = random_linear(shape, arena, s, 99);
  std::vector<uint16_t> xh(size_t(M * K));
  uint64_t r = 0x9E3779B97F4A7C15ull;
  for (uint16_t& v : xh) {
    r ^= r << 13, r ^= r >> 7, r ^= r << 17;
    v = fp8 ? uint16_t((r & 0x77) | ((r >> 8 & 0x77) << 8) | (r >> 16 & 0x8080))  // two E4M3 codes, no NaN
            : uint16_t(0x3C00 | (r & 0x7F) | (r >> 8 & 0x8000));                   // ±[2⁻⁷, 2⁻⁶) in BF16
  }
  void* x = arena.allocate(size_t(M * K) * 2);
  GDN_CUDA_CHECK(cudaMemcpyAsync(x, xh.data(), xh.size() * 2, cudaMemcpyHostToDevice, s));
  const std::vector<float> sh(size_t(M), 1.f / 64);
  auto* sx = arena.allocate_n<float>(size_t(M));
  GDN_CUDA_CHECK(cudaMemcpyAsync(sx, sh.data(), sh.size() * 4, cudaMemcpyHostToDevice, s));
  auto* y = arena.allocate_n<__nv_bfloat16>(size_t(M * N));
  LinearWorkspace ws;
  ws.bytes = linear_workspace_bytes(w, M);
  ws.ptr = arena.allocate(ws.bytes);
  linear_workspace_init(ws, s);
  const LinearPath path = fast ? LinearPath::AutoFast : LinearPath::LargeM;
  // FP8 activations: K bytes per token row, so the codes fill the first M·K bytes of x.
  const Fp8TokenActs acts{static_cast<uint8_t*>(x), sx, K, K};
  std::vector<double> t;
  Event e0, e1;
  for (int i = 0; i < 13; ++i) {
    e0.record(s);
    const bool ok = fp8 ? linear_forward_bf16(w, acts, M, y, ws, s, path)
                        : linear_forward_bf16(w, static_cast<const __nv_bfloat16*>(x), M, y, ws, s, path);
    if (!ok) throw CudaError("bench_forward: the ceiling GEMM did not run on cuBLASLt");
    e1.record(s);
    if (i >= 3) t.push_back(e1.ms_since(e0) * 1e-3);
  }
  return 2.0 * double(M) * double(N) * double(K) / median(t) / 1e12;
}

// The GEMM ceiling of a mode: the better of 8192³ and the model's largest prefill GEMM (gate|up of
// an 8192-token step, N = 2·17408, K = 5120).
double gemm_ceiling(DummyLayout layout, cudaStream_t s, bool fast = false) {
  return std::max(gemm_tflops(layout, s, 8192, 8192, 8192, fast), gemm_tflops(layout, s, 8192, 34816, 5120, fast));
}

// What one decode step / prefill costs, counted from the config.
struct Costs {
  const Qwen35Config& c;
  int64_t weight_bytes;  // streamed per step (every layer + lm_head)
  int64_t params;        // multiply-adds per token in the linears (incl. lm_head)
  int64_t kv_bytes_per_token(KvDtype dt) const { return c.kv_bytes_per_token(dt == KvDtype::Bf16 ? 2 : 1); }
  int64_t state_bytes() const { return c.num_linear_layers() * int64_t(gdn_slot_bytes(gdn_dims(c))); }
  // Bytes a decode step of `batch` sequences at `context` must move: weights once, K/V of the
  // context per sequence, the DeltaNet state read and written per sequence.
  double decode_bytes(int batch, int64_t context, KvDtype dt) const {
    return double(weight_bytes) + double(batch) * (double(context) * double(kv_bytes_per_token(dt)) + 2.0 * double(state_bytes()));
  }
  double decode_flops(int batch, int64_t context) const {
    const double attn = 4.0 * double(c.num_heads * c.head_dim) * double(context) * double(c.num_attention_layers());
    return double(batch) * (2.0 * double(params) + attn);
  }
  // Prefill of n tokens from position 0: linears + causal attention (QKᵀ and PV, half the square)
  // + the chunked delta rule (≈ 4·DK·DV·HV per token per layer for state work + intra-chunk 64-wide).
  double prefill_flops(int64_t n) const {
    const double attn = 2.0 * double(c.num_heads * c.head_dim) * double(n) * double(n) * double(c.num_attention_layers());
    const double gdn = double(n) * double(c.num_linear_layers()) * double(c.linear_value_heads) *
                       (6.0 * double(c.linear_key_dim * c.linear_value_dim) + 4.0 * 64.0 * double(c.linear_key_dim + c.linear_value_dim));
    return 2.0 * double(params) * double(n) + attn + gdn;
  }
};

int64_t linear_params(const Qwen35Config& c) {
  const int64_t H = c.hidden_size, I = c.intermediate_size;
  const int64_t attn = H * (2 * c.num_heads * c.head_dim + 2 * c.num_kv_heads * c.head_dim) + c.num_heads * c.head_dim * H;
  const int64_t gdn = H * (c.conv_dim() + c.value_dim() + 2 * c.linear_value_heads) + c.value_dim() * H;
  return c.num_attention_layers() * attn + c.num_linear_layers() * gdn + c.num_layers * 3 * H * I + c.vocab_size * H;
}

struct Runner {
  GpuModel& model;
  KvDtype kv;
  double budget_end;
  clk::time_point t_start;
  bool profile_range = false;  // wrap 2 decode steps / the last prefill in cudaProfilerStart/Stop

  bool time_left() const { return seconds_since(t_start) < budget_end; }

  // Median seconds per decode step of `batch` sequences whose caches hold `context` tokens.
  // Returns < 0 when the cache does not fit.
  double decode(int batch, int64_t context, int steps) {
    const int64_t blocks_per_seq = (context + steps + 8 + kKvBlockTokens - 1) / kKvBlockTokens;
    std::unique_ptr<GpuCache> cache;
    try {
      cache = model.make_cache(kv, batch, int64_t(512) << 20, int(blocks_per_seq * batch + 1));
    } catch (const std::exception& e) {
      std::printf("  decode batch %d context %lld: does not fit (%s)\n", batch, (long long)context, e.what());
      return -1;
    }
    std::vector<std::vector<int32_t>> blocks(static_cast<size_t>(batch));
    std::vector<int32_t> slots(static_cast<size_t>(batch)), toks(static_cast<size_t>(batch), 1);
    for (int b = 0; b < batch; ++b) {
      blocks[size_t(b)] = cache->allocate_blocks(int(blocks_per_seq));
      slots[size_t(b)] = cache->allocate_slot();
    }
    GpuSamplingRow greedy;
    greedy.temperature = 0.f;
    std::vector<double> t;
    for (int i = 0; i < steps + 3; ++i) {
      std::vector<SeqStep> st(static_cast<size_t>(batch));
      for (int b = 0; b < batch; ++b) {
        st[size_t(b)].tokens = std::span<const int32_t>(&toks[size_t(b)], 1);
        st[size_t(b)].start = int32_t(context + i);
        st[size_t(b)].blocks = blocks[size_t(b)];
        st[size_t(b)].slot = slots[size_t(b)];
        st[size_t(b)].sample = &greedy;
      }
      if (profile_range && i == 3) GDN_CUDA_CHECK(cudaProfilerStart());
      const auto t0 = clk::now();
      const StepOutput o = model.step(st, *cache);
      if (i >= 3) t.push_back(seconds_since(t0));
      if (profile_range && i == 4) GDN_CUDA_CHECK(cudaProfilerStop());
      for (int b = 0; b < batch; ++b) toks[size_t(b)] = o.sampled[size_t(b)];
    }
    return median(t);
  }

  // Seconds to prefill n tokens in steps of max_tokens and sample the first output token (TTFT).
  double prefill(int64_t n, int reps) {
    const int64_t blocks = (n + kKvBlockTokens - 1) / kKvBlockTokens;
    std::unique_ptr<GpuCache> cache = model.make_cache(kv, 1, int64_t(512) << 20, int(blocks + 1));
    const std::vector<int32_t> b = cache->allocate_blocks(int(blocks));
    const int32_t slot = cache->allocate_slot();
    std::vector<int32_t> ids(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) ids[size_t(i)] = int32_t((i * 7919) % 150000);
    GpuSamplingRow greedy;
    greedy.temperature = 0.f;
    std::vector<double> t;
    for (int r = 0; r < reps + 1; ++r) {
      cache->reset_slot(slot, model.stream());
      if (profile_range && r == reps) GDN_CUDA_CHECK(cudaProfilerStart());
      const auto t0 = clk::now();
      for (int64_t p = 0; p < n; p += model.options().max_tokens) {
        SeqStep st;
        const int64_t k = std::min<int64_t>(model.options().max_tokens, n - p);
        st.tokens = std::span<const int32_t>(ids.data() + p, size_t(k));
        st.start = int32_t(p);
        st.blocks = b;
        st.slot = slot;
        st.sample = &greedy;
        model.step(std::span<const SeqStep>(&st, 1), *cache);
      }
      if (r >= 1) t.push_back(seconds_since(t0));
      if (profile_range && r == reps) GDN_CUDA_CHECK(cudaProfilerStop());
    }
    return median(t);
  }
};

}  // namespace

int main(int argc, char** argv) {
  std::string layouts_arg = "fp8,nvfp4,bf16,fp8-block", out_path, gpu_override, kv_arg = "bf16";
  bool quick = false, profile = false;
  int64_t profile_prefill = 0;
  int profile_batch = 1;
  double budget = 480;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--layouts" && i + 1 < argc) layouts_arg = argv[++i];
    else if (a == "--out" && i + 1 < argc) out_path = argv[++i];
    else if (a == "--gpu" && i + 1 < argc) gpu_override = argv[++i];
    else if (a == "--kv" && i + 1 < argc) kv_arg = argv[++i];
    else if (a == "--budget-s" && i + 1 < argc) budget = std::atof(argv[++i]);
    else if (a == "--quick") quick = true;
    else if (a == "--profile") profile = true;  // only batch-1 decode steps of the first layout (for nsys/ncu)
    else if (a == "--profile-prefill" && i + 1 < argc) profile_prefill = std::atoll(argv[++i]);
    else if (a == "--profile-batch" && i + 1 < argc) profile_batch = std::max(1, std::atoi(argv[++i]));
    else {
      std::fprintf(stderr, "usage: bench_forward [--layouts fp8,nvfp4,bf16,fp8-block] [--out FILE.json] [--gpu NAME] "
                           "[--kv bf16|fp8] [--quick] [--budget-s S]\n");
      return 2;
    }
  }
  const auto t_start = clk::now();
  const DeviceInfo& dev = device_info();
  std::string gpu = gpu_override;
  if (gpu.empty()) gpu = dev.name.find("H200") != std::string::npos ? "h200" : dev.name.find("H100") != std::string::npos ? "h100" : "gpu";
  if (out_path.empty()) out_path = "bench/results/forward-" + gpu + ".json";
  const KvDtype kv = kv_arg == "fp8" ? KvDtype::Fp8E4m3 : KvDtype::Bf16;

  Stream s;
  const Qwen35Config cfg = qwen35_27b_config();
  if (profile || profile_prefill > 0) {
    const std::string first = layouts_arg.substr(0, layouts_arg.find(','));
    GpuModelOptions o;
    o.max_tokens = profile_prefill > 0 ? int(profile_prefill) : 256;
    o.max_seqs = profile_batch;
    o.max_context = profile_prefill > 0 ? profile_prefill + 128 : 4096;
    GpuModel model(cfg, random_weights(cfg, parse_dummy_layout(first), s), o);
    Runner run{model, kv_arg == "fp8" ? KvDtype::Fp8E4m3 : KvDtype::Bf16, 1e9, clk::now(), true};
    if (profile_prefill > 0) {
      const double t = run.prefill(profile_prefill, 1);
      std::printf("[profile] %s %lld-token prefill: %.1f ms\n", first.c_str(), (long long)profile_prefill, t * 1e3);
    } else {
      const double t = run.decode(profile_batch, 1024, 20);
      std::printf("[profile] %s batch-%d decode at context 1024: %.3f ms per step\n", first.c_str(), profile_batch,
                  t * 1e3);
    }
    return 0;
  }
  Ceilings ceil;
  ceil.copy_gbs = copy_bandwidth(s);
  ceil.bf16_tflops = gemm_ceiling(DummyLayout::Bf16, s);
  ceil.fp8_tflops = gemm_ceiling(DummyLayout::Fp8PerChannel, s);
  ceil.fp8_fast_tflops = gemm_ceiling(DummyLayout::Fp8PerChannel, s, true);
  std::printf("ceilings (%s): copy %.0f GB/s, cuBLASLt BF16 %.0f TFLOP/s, cuBLASLt FP8 %.0f TFLOP/s (fast accumulation "
              "%.0f) (best of 8192^3 and 8192x34816x5120)\n",
              dev.name.c_str(), ceil.copy_gbs, ceil.bf16_tflops, ceil.fp8_tflops, ceil.fp8_fast_tflops);

  nlohmann::ordered_json J;
  J["gpu"] = dev.name;
  J["benchmark"] = "bench_forward: Qwen3.5-27B config, random weights (--load-format dummy)";
  J["kv_cache"] = kv_arg;
  J["ceilings"] = {{"copy_GBps", ceil.copy_gbs}, {"cublaslt_bf16_TFLOPs", ceil.bf16_tflops},
                   {"cublaslt_fp8_TFLOPs", ceil.fp8_tflops}, {"cublaslt_fp8_fast_accum_TFLOPs", ceil.fp8_fast_tflops},
                   {"gemm_ceiling_shapes", "best of 8192x8192x8192 and 8192x34816x5120, BF16 out, inputs pre-quantized"}};
  J["layouts"] = nlohmann::ordered_json::array();

  std::vector<std::string> layouts;
  for (size_t p = 0; p <= layouts_arg.size();) {
    const size_t e = std::min(layouts_arg.find(',', p), layouts_arg.size());
    if (e > p) layouts.push_back(layouts_arg.substr(p, e - p));
    p = e + 1;
  }
  const int steps = quick ? 10 : 30;
  for (const std::string& name : layouts) {
    if (seconds_since(t_start) > budget) {
      std::printf("[%s] skipped: time budget\n", name.c_str());
      continue;
    }
    const DummyLayout layout = parse_dummy_layout(name);
    nlohmann::ordered_json L;
    L["layout"] = name;
    try {
      const auto t0 = clk::now();
      GpuWeights w = random_weights(cfg, layout, s);
      const double load_s = seconds_since(t0);
      const int64_t wbytes = w.bytes, stream_bytes = w.decode_stream_bytes;
      GpuModelOptions o;
      o.max_tokens = 8192;
      o.max_seqs = 256;
      o.max_context = 32768 + 128;
      o.max_logit_rows = 256;
      GpuModel model(cfg, std::move(w), o);
      size_t free_b = 0, total_b = 0;
      GDN_CUDA_CHECK(cudaMemGetInfo(&free_b, &total_b));
      Costs costs{cfg, stream_bytes, linear_params(cfg)};
      // The GEMM rate each layout's prefill can reach: BF16 (NVFP4's large-M path dequantizes to
      // BF16), FP8 per-channel with fast accumulation, FP8 block-128 with cuBLASLt's promotion.
      const double peak = layout == DummyLayout::Bf16 || layout == DummyLayout::Nvfp4 ? ceil.bf16_tflops
                          : layout == DummyLayout::Fp8PerChannel                    ? ceil.fp8_fast_tflops
                                                                                   : ceil.fp8_tflops;
      std::printf("\n[%s] weights %.2f GB on the GPU (generated in %.2f s), %.2f GB streamed per decode step; "
                  "activations %.2f GB (measured peak %.2f GB); %.2f GB free for KV + states\n",
                  name.c_str(), wbytes / 1e9, load_s, stream_bytes / 1e9, model.activation_bytes() / 1e9,
                  model.activation_peak_bytes() / 1e9, free_b / 1e9);
      L["weights_GB"] = wbytes / 1e9;
      L["decode_stream_GB"] = stream_bytes / 1e9;
      L["activations_GB"] = model.activation_bytes() / 1e9;
      L["activation_peak_GB"] = model.activation_peak_bytes() / 1e9;
      L["free_after_load_GB"] = free_b / 1e9;
      L["gpu_total_GB"] = total_b / 1e9;
      Runner run{model, kv, budget, t_start};

      auto roof_decode = [&](int batch, int64_t ctx) {
        const double tb = costs.decode_bytes(batch, ctx, kv) / (ceil.copy_gbs * 1e9);
        const double tf = costs.decode_flops(batch, ctx) / (peak * 1e12);
        return double(batch) / std::max(tb, tf);
      };
      std::printf("  %-28s %10s %10s %8s\n", "decode", "tok/s", "roofline", "ratio");
      L["decode_batch1"] = nlohmann::ordered_json::array();
      for (int64_t ctx : {int64_t(0), int64_t(8192), int64_t(32768)}) {
        if (!run.time_left()) break;
        const double t = run.decode(1, ctx, steps);
        if (t <= 0) continue;
        const double roof = roof_decode(1, ctx);
        std::printf("  batch 1, context %-14lld %10.1f %10.1f %7.0f%%\n", (long long)ctx, 1 / t, roof, 100 / t / roof);
        L["decode_batch1"].push_back({{"context", ctx}, {"tok_s", 1 / t}, {"step_ms", t * 1e3}, {"roofline_tok_s", roof}});
      }
      L["decode_batches"] = nlohmann::ordered_json::array();
      for (int batch : {1, 8, 16, 64, 256}) {
        if (!run.time_left()) break;
        // Context 1024 per sequence; when that does not fit (the DeltaNet state alone is 151 MB per
        // sequence for the 27B: 38.6 GB at batch 256), context 128.
        int64_t ctx = 1024;
        double t = run.decode(batch, ctx, quick ? 6 : 15);
        if (t <= 0) {
          ctx = 128;
          t = run.decode(batch, ctx, quick ? 6 : 15);
        }
        if (t <= 0) {
          L["decode_batches"].push_back({{"batch", batch}, {"context", ctx}, {"skipped", "does not fit in GPU memory"}});
          continue;
        }
        const double roof = roof_decode(batch, ctx);
        std::printf("  batch %-3d context %-12lld %10.1f %10.1f %7.0f%%\n", batch, (long long)ctx, batch / t, roof,
                    100 * batch / t / roof);
        L["decode_batches"].push_back({{"batch", batch}, {"context", ctx}, {"tok_s", batch / t}, {"step_ms", t * 1e3},
                                       {"roofline_tok_s", roof}});
      }
      std::printf("  %-28s %10s %10s %10s %8s\n", "prefill", "TTFT ms", "tok/s", "roof tok/s", "ratio");
      L["prefill"] = nlohmann::ordered_json::array();
      for (int64_t n : {int64_t(1024), int64_t(8192), int64_t(32768)}) {
        if (!run.time_left()) break;
        const double t = run.prefill(n, quick || n > 8192 ? 1 : 3);
        const double roof_t = costs.prefill_flops(n) / (peak * 1e12);
        std::printf("  %-28lld %10.1f %10.0f %10.0f %7.0f%%\n", (long long)n, t * 1e3, n / t, n / roof_t,
                    100 * roof_t / t);
        L["prefill"].push_back({{"tokens", n}, {"ttft_ms", t * 1e3}, {"tok_s", n / t}, {"roofline_tok_s", n / roof_t},
                                {"tflops", costs.prefill_flops(n) / t / 1e12}});
      }
      size_t free_end = 0;
      GDN_CUDA_CHECK(cudaMemGetInfo(&free_end, &total_b));
      L["gpu_used_at_end_GB"] = (total_b - free_end) / 1e9;
    } catch (const std::exception& e) {
      std::printf("[%s] failed: %s\n", name.c_str(), e.what());
      L["error"] = e.what();
    }
    J["layouts"].push_back(L);
    std::ofstream(out_path) << J.dump(2) << "\n";
  }
  std::ofstream(out_path) << J.dump(2) << "\n";
  std::printf("\nwrote %s (%.0f s)\n", out_path.c_str(), seconds_since(t_start));
  return 0;
}
