// kernels/cpu linear: the BF16-GEMM-input switch the GPU tests use to measure BF16 noise.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "core/dtype.h"
#include "core/thread_pool.h"
#include "kernels/cpu/linear.h"

namespace gdn {
namespace {

TEST(CpuLinear, Bf16GemmInputsRoundsInputsOnly) {
  ThreadPool pool(1);
  const int64_t M = 3, N = 5, K = 37;
  std::vector<float> w(size_t(N * K)), x(size_t(M * K)), xr(size_t(M * K));
  for (size_t i = 0; i < w.size(); ++i) w[i] = std::sin(float(i)) * 0.3f;
  for (size_t i = 0; i < x.size(); ++i) {
    x[i] = 1.f + std::cos(float(i)) * 1e-3f;  // differences far below one BF16 step
    xr[i] = bf16_to_float(float_to_bf16(x[i]));
  }
  const MatrixRef W{DType::F32, w.data(), N, K, nullptr};
  std::vector<float> y_exact(size_t(M * N)), y_switch(size_t(M * N)), y_rounded(size_t(M * N));
  ASSERT_FALSE(bf16_gemm_inputs());
  linear(x.data(), M, W, y_exact.data(), pool);
  linear(xr.data(), M, W, y_rounded.data(), pool);
  set_bf16_gemm_inputs(true);
  linear(x.data(), M, W, y_switch.data(), pool);
  set_bf16_gemm_inputs(false);
  EXPECT_EQ(y_switch, y_rounded);   // the switch multiplies the BF16-rounded inputs
  EXPECT_NE(y_switch, y_exact);     // and that is a different result from fp32 inputs
}

}  // namespace
}  // namespace gdn
