// Weight upload throughput from the page cache (issue 5 §1: the 27B must reach the GPU in well under
// a minute). Writes a file of FP8 "weights" of the 27B's MLP shape, reads it once so it sits in
// the page cache, memory-maps it, and uploads every matrix through the Uploader (pinned double
// buffering, progress line), then projects the time for the whole 27B in FP8 and BF16.
//
//   bench_upload [--gib 8] [--file /tmp/gdn_upload.bin] [--json FILE]
#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <vector>

#include "core/mapped_file.h"
#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/device.h"
#include "kernels/cuda/linear_cuda.h"

using namespace gdn;
using clk = std::chrono::steady_clock;

int main(int argc, char** argv) {
  CLI::App app{"weight upload benchmark"};
  double gib = 8;
  std::string file = "/tmp/gdn_upload.bin", json_out;
  app.add_option("--gib", gib, "GiB of weights to upload");
  app.add_option("--file", file, "Scratch file");
  app.add_option("--json", json_out, "Write results JSON here");
  CLI11_PARSE(app, argc, argv);

  const int64_t rows = 17408, cols = 5120;  // gate_proj / up_proj of the 27B, FP8: 89 MB each
  const int64_t mat_bytes = rows * cols;
  const int64_t n = std::max<int64_t>(1, int64_t(gib * double(1ull << 30)) / mat_bytes);
  {
    std::ofstream f(file, std::ios::binary | std::ios::trunc);
    std::vector<char> buf(static_cast<size_t>(mat_bytes));
    for (size_t i = 0; i < buf.size(); ++i) buf[i] = char((i * 2654435761u) >> 24);  // finite FP8 codes mostly
    for (int64_t m = 0; m < n; ++m) f.write(buf.data(), std::streamsize(buf.size()));
  }
  MappedFile map(file);
  uint64_t sink = 0;  // touch every page so the upload reads from the page cache
  for (size_t i = 0; i < map.size(); i += 4096) sink += map.data()[i];

  std::vector<float> scales(size_t(rows), 0.01f);
  auto info = std::make_shared<QuantInfo>();
  info->scheme = {WeightFormat::Fp8PerChannel, ActQuant::Fp8PerToken};
  info->scales = scales;
  std::vector<MatrixRef> mats;
  size_t need = 0;
  for (int64_t m = 0; m < n; ++m) {
    mats.push_back({DType::F8_E4M3, map.data() + m * mat_bytes, rows, cols, info});
    need += cuda::device_bytes_for(mats.back()) + 4096;
  }
  cuda::DeviceArena arena(need);
  cudaStream_t stream;
  GDN_CUDA_CHECK(cudaStreamCreate(&stream));
  cuda::UploadProgress progress(n * mat_bytes);
  const auto t0 = clk::now();
  {
    cuda::Uploader up(arena, stream, &progress);
    for (const auto& m : mats) up.linear(m);
    up.sync();
  }
  const double s = std::chrono::duration<double>(clk::now() - t0).count();
  progress.finish();
  const double gbps = double(n * mat_bytes) / s / 1e9;
  // 27B: 26.9e9 parameters; FP8 checkpoints keep embed/lm_head (2.5e9) in BF16.
  const double fp8_bytes = 24.4e9 + 2 * 2.54e9, bf16_bytes = 2 * 26.9e9;
  std::printf("uploaded %.2f GB in %.2f s: %.1f GB/s from the page cache\n", double(n * mat_bytes) / 1e9, s, gbps);
  std::printf("projected 27B: FP8 %.1f s, BF16 %.1f s\n", fp8_bytes / 1e9 / gbps, bf16_bytes / 1e9 / gbps);
  if (!json_out.empty())
    std::ofstream(json_out) << nlohmann::ordered_json{{"bytes", n * mat_bytes}, {"seconds", s}, {"GBps", gbps},
                                                      {"projected_27b_fp8_s", fp8_bytes / 1e9 / gbps},
                                                      {"projected_27b_bf16_s", bf16_bytes / 1e9 / gbps}}
                                   .dump(2);
  std::remove(file.c_str());
  std::printf("(page checksum %llu)\n", (unsigned long long)sink);
  return 0;
}
