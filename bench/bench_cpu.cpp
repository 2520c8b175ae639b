// CPU reference throughput: prefill and decode tokens/s per model, with the bytes and FLOPs each
// token costs and the memory-copy bandwidth measured in the same process as the ceiling for
// decode (which streams every weight once per token).
//
//   bench_cpu --model demo-model --model mid-model [--prompt 256] [--decode 32] [--json FILE]
#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <thread>

#include "core/error.h"
#include "core/machine.h"
#include "core/thread_pool.h"
#include "model/qwen35_model.h"

using namespace gdn;
using clk = std::chrono::steady_clock;

namespace {

// memcpy of a 1 GiB buffer on every thread: bytes read + written per second.
double copy_bandwidth(ThreadPool& pool) {
  const size_t n = size_t(1) << 30;
  std::vector<char> a(n, 1), b(n, 2);
  double best = 0;
  for (int rep = 0; rep < 3; ++rep) {
    auto t0 = clk::now();
    pool.parallel_for(int64_t(n >> 20), [&](int64_t s, int64_t e) {
      std::memcpy(b.data() + (s << 20), a.data() + (s << 20), size_t(e - s) << 20);
    });
    best = std::max(best, 2.0 * double(n) / std::chrono::duration<double>(clk::now() - t0).count());
  }
  return best;
}

struct Cost {
  double weight_bytes = 0;  // streamed per decode token (all matrices except the embedding table)
  double flops = 0;         // per token, matrix products only (2 per multiply-add)
};

Cost cost_per_token(const Qwen35Model& m) {
  Cost c;
  const ModelWeights& w = m.weights();
  auto add = [&](const MatrixRef& r) {
    c.weight_bytes += double(r.rows * r.cols) * double(dtype_size(r.dtype));
    c.flops += 2.0 * double(r.rows * r.cols);
  };
  for (const auto& l : w.layers) {
    if (l.kind == LayerKind::FullAttention) {
      for (auto* r : {&l.attn.q_proj, &l.attn.k_proj, &l.attn.v_proj, &l.attn.o_proj}) add(*r);
    } else {
      for (auto* r : {&l.gdn.in_proj_qkv, &l.gdn.in_proj_z, &l.gdn.in_proj_a, &l.gdn.in_proj_b, &l.gdn.out_proj}) add(*r);
    }
    for (auto* r : {&l.mlp.gate_proj, &l.mlp.up_proj, &l.mlp.down_proj}) add(*r);
  }
  add(w.lm_head);
  return c;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"CPU reference benchmark"};
  std::vector<std::string> models;
  int64_t prompt = 256, decode = 32;
  int threads = 0;
  std::string json_out;
  app.add_option("--model", models, "Model directories")->required();
  app.add_option("--prompt", prompt, "Prompt tokens for the prefill measurement");
  app.add_option("--decode", decode, "Decode steps");
  app.add_option("--threads", threads, "Threads (default: all cores)");
  app.add_option("--json", json_out, "Write results JSON here");
  CLI11_PARSE(app, argc, argv);
  try {
    ThreadPool pool(threads);
    const double bw = copy_bandwidth(pool);
    nlohmann::ordered_json out = {{"machine", {{"cpu", cpu_model_name()}, {"threads", pool.size()}}},
                                  {"copy_bandwidth_GBps", bw / 1e9}, {"runs", nlohmann::json::array()}};
    std::printf("machine: %s, %d threads; memcpy bandwidth %.1f GB/s (read+write)\n\n", cpu_model_name().c_str(), pool.size(),
                bw / 1e9);
    std::printf("%-14s %8s %10s %10s %11s %10s %12s %10s\n", "model", "params", "prefill", "prefill", "decode",
                "decode", "decode", "of copy");
    std::printf("%-14s %8s %10s %10s %11s %10s %12s %10s\n", "", "(M)", "tok/s", "GFLOP/s", "tok/s", "ms/tok", "GB/s weights", "bandwidth");
    for (const auto& dir : models) {
      auto m = Qwen35Model::load(dir);
      const Cost cost = cost_per_token(*m);
      std::mt19937 rng(1);
      std::vector<int32_t> ids(static_cast<size_t>(prompt));
      for (auto& id : ids) id = int32_t(rng() % uint32_t(m->config().vocab_size));
      std::vector<float> logits(size_t(m->config().vocab_size));
      SequenceState st = m->new_state();
      auto t0 = clk::now();
      m->forward(ids, st, {logits.data(), false, nullptr}, pool);
      const double prefill_s = std::chrono::duration<double>(clk::now() - t0).count();
      t0 = clk::now();
      for (int64_t i = 0; i < decode; ++i) {
        const int32_t next = ids[size_t(i) % ids.size()];
        m->forward(std::span<const int32_t>(&next, 1), st, {logits.data(), false, nullptr}, pool);
      }
      const double decode_s = std::chrono::duration<double>(clk::now() - t0).count() / double(decode);
      int64_t params = 0;
      for (const auto& g : m->weights().groups)
        if (g.group != "MTP") params += g.params;
      const double prefill_tps = double(prompt) / prefill_s;
      const double gbps = cost.weight_bytes / decode_s / 1e9;
      std::printf("%-14s %8.1f %10.1f %10.1f %11.2f %10.2f %12.1f %9.0f%%\n", dir.c_str(), double(params) / 1e6,
                  prefill_tps, cost.flops * prefill_tps / 1e9, 1.0 / decode_s, decode_s * 1e3, gbps,
                  100.0 * cost.weight_bytes / decode_s / (bw / 2));
      out["runs"].push_back({{"model", dir}, {"parameters", params}, {"prompt_tokens", prompt},
                             {"prefill_tok_per_s", prefill_tps}, {"prefill_GFLOPps", cost.flops * prefill_tps / 1e9},
                             {"decode_steps", decode}, {"decode_tok_per_s", 1.0 / decode_s},
                             {"decode_weight_GBps", gbps}, {"weight_bytes_per_token", cost.weight_bytes},
                             {"flops_per_token", cost.flops}});
    }
    std::printf("\n'of copy bandwidth': weight bytes streamed per decode step / time, over the memcpy read rate "
                "(half the read+write figure).\n");
    if (!json_out.empty()) std::ofstream(json_out) << out.dump(2) << "\n";
  } catch (const InputError& e) {
    std::fprintf(stderr, "bench_cpu: error: %s\n", e.what());
    return 2;
  }
  return 0;
}
