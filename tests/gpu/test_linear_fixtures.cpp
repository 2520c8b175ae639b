// GPU linear layers on the real weights of the quantized fixtures (five producers' layouts, declared
// and weight-only numerics) and of the BF16/F32 fixtures: every linear of the model, MTP included.
#include <gtest/gtest.h>

#include <cctype>
#include <string>
#include <utility>
#include <vector>

#include "gpu_test_util.h"
#include "model/qwen35_model.h"
#include "test_util.h"

namespace gdn::test {
namespace {

std::vector<std::pair<std::string, MatrixRef>> all_linears(const ModelWeights& w) {
  std::vector<std::pair<std::string, MatrixRef>> out;
  auto layer = [&](const std::string& p, const LayerWeights& l) {
    if (l.kind == LayerKind::FullAttention) {
      out.push_back({p + "q_proj", l.attn.q_proj});
      out.push_back({p + "k_proj", l.attn.k_proj});
      out.push_back({p + "v_proj", l.attn.v_proj});
      out.push_back({p + "o_proj", l.attn.o_proj});
    } else {
      out.push_back({p + "in_proj_qkv", l.gdn.in_proj_qkv});
      out.push_back({p + "in_proj_z", l.gdn.in_proj_z});
      out.push_back({p + "in_proj_b", l.gdn.in_proj_b});
      out.push_back({p + "in_proj_a", l.gdn.in_proj_a});
      out.push_back({p + "out_proj", l.gdn.out_proj});
    }
    out.push_back({p + "gate_proj", l.mlp.gate_proj});
    out.push_back({p + "up_proj", l.mlp.up_proj});
    out.push_back({p + "down_proj", l.mlp.down_proj});
  };
  for (size_t i = 0; i < w.layers.size(); ++i) layer("layers." + std::to_string(i) + ".", w.layers[i]);
  out.push_back({"lm_head", w.lm_head});
  if (w.mtp) {
    out.push_back({"mtp.fc", w.mtp->fc});
    for (size_t i = 0; i < w.mtp->layers.size(); ++i) layer("mtp.layers." + std::to_string(i) + ".", w.mtp->layers[i]);
  }
  return out;
}

class FixtureLinears : public ::testing::TestWithParam<std::pair<const char*, ActivationMode>> {};

TEST_P(FixtureLinears, MatchCpu) {
  const auto [dir, mode] = GetParam();
  const auto model = Qwen35Model::load(fixture(dir), mode);
  const auto linears = all_linears(model->weights());
  size_t total = 0;
  for (const auto& [name, m] : linears) total += cuda::device_bytes_for(m);
  GpuCtx g(total * 2 + (size_t(256) << 20));
  cuda::LinearWorkspace ws;
  size_t ws_bytes = 0;
  std::vector<cuda::DeviceLinear> dev;
  for (const auto& [name, m] : linears) dev.push_back(cuda::upload_linear(m, g.arena, g.stream));
  for (const auto& d : dev) ws_bytes = std::max(ws_bytes, cuda::linear_workspace_bytes(d, 65));
  ws.bytes = ws_bytes;
  ws.ptr = g.arena.allocate(ws_bytes);
  cuda::linear_workspace_init(ws, g.stream);

  // F16/F32 dense weights become BF16 at upload: the reference multiplies the same rounded values.
  std::vector<std::vector<uint16_t>> rounded(linears.size());
  auto reference_matrix = [&](size_t i) {
    const MatrixRef& m = linears[i].second;
    if (m.quant || m.dtype == DType::BF16) return m;
    rounded[i].resize(size_t(m.rows * m.cols));
    std::vector<float> row(static_cast<size_t>(m.cols));
    for (int64_t r = 0; r < m.rows; ++r) {
      decode_row(m, r, row.data());
      for (int64_t k = 0; k < m.cols; ++k) rounded[i][size_t(r * m.cols + k)] = float_to_bf16(row[size_t(k)]);
    }
    return MatrixRef{DType::BF16, rounded[i].data(), m.rows, m.cols, nullptr};
  };

  uint64_t seed = 400;
  for (size_t i = 0; i < linears.size(); ++i) {
    const auto& [name, m] = linears[i];
    const int64_t mmax = 65;
    const std::vector<uint16_t> xh = make_x(mmax, m.cols, seed++);
    const std::vector<float> xf = to_float(xh);
    const MatrixRef rm = reference_matrix(i);
    const std::vector<float> ref = cpu_linear(rm, xf, mmax);
    const std::vector<float> ref_abs = cpu_linear(abs_matrix(rm)->ref, abs_values(xf), mmax);
    auto* dx = g.arena.allocate_n<__nv_bfloat16>(size_t(mmax * m.cols));
    auto* dy = g.arena.allocate_n<float>(size_t(mmax * m.rows));
    GDN_CUDA_CHECK(cudaMemcpyAsync(dx, xh.data(), xh.size() * 2, cudaMemcpyHostToDevice, g.stream));
    for (cuda::LinearPath path : {cuda::LinearPath::SmallM, cuda::LinearPath::LargeM})
      for (int64_t M : {1, 7, 65}) {
        const std::vector<float> y = gpu_linear(g, dev[i], dx, M, dy, ws, path);
        const Compare c = compare(y.data(), ref.data(), ref_abs.data(), M, m.rows, m.cols, row_tol_for(dev[i], path));
        EXPECT_TRUE(c.ok()) << dir << " " << name << " (" << m.rows << "x" << m.cols << ") "
                            << (path == cuda::LinearPath::SmallM ? "small" : "large") << " M=" << M << ": " << c.str();
      }
  }
}

INSTANTIATE_TEST_SUITE_P(
    Fixtures, FixtureLinears,
    ::testing::Values(std::pair{"quant/ct-fp8-dynamic", ActivationMode::Declared},
                      std::pair{"quant/ct-fp8-dynamic", ActivationMode::WeightOnly},
                      std::pair{"quant/qwen-fp8-block", ActivationMode::Declared},
                      std::pair{"quant/qwen-fp8-block", ActivationMode::WeightOnly},
                      std::pair{"quant/fp8-block-lmhead", ActivationMode::Declared},
                      std::pair{"quant/modelopt-nvfp4", ActivationMode::Declared},
                      std::pair{"quant/modelopt-nvfp4", ActivationMode::WeightOnly},
                      std::pair{"quant/ct-nvfp4", ActivationMode::Declared},
                      std::pair{"quant/ct-nvfp4", ActivationMode::WeightOnly},
                      std::pair{"qwen35-wrapper-bf16", ActivationMode::Declared},
                      std::pair{"qwen35-text-f32-tied", ActivationMode::Declared}),
    [](const auto& info) {
      std::string n = std::string(info.param.first) + (info.param.second == ActivationMode::Declared ? "_declared" : "_weightonly");
      for (char& c : n)
        if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
      return n;
    });

}  // namespace
}  // namespace gdn::test
