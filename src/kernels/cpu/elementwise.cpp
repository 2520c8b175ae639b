#include "kernels/cpu/elementwise.h"

namespace gdn {

namespace {
float inv_rms(const float* x, int64_t dim, float eps) {
  double ss = 0.0;  // double: the sum of squares of a 5120-wide row should not lose bits
  for (int64_t i = 0; i < dim; ++i) ss += double(x[i]) * double(x[i]);
  return 1.f / std::sqrt(float(ss / double(dim)) + eps);
}
}  // namespace

void rmsnorm_1p(const float* x, const float* w, int64_t rows, int64_t dim, float eps, float* y) {
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * dim;
    float* yr = y + r * dim;
    const float s = inv_rms(xr, dim, eps);
    for (int64_t i = 0; i < dim; ++i) yr[i] = (xr[i] * s) * (1.f + w[i]);
  }
}

void rmsnorm_gated(const float* x, const float* z, const float* w, int64_t rows, int64_t dim, float eps, float* y) {
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * dim;
    const float* zr = z + r * dim;
    float* yr = y + r * dim;
    const float s = inv_rms(xr, dim, eps);
    for (int64_t i = 0; i < dim; ++i) yr[i] = w[i] * (xr[i] * s) * silu(zr[i]);
  }
}

void l2norm_scale(float* x, int64_t rows, int64_t dim, float eps, float scale) {
  for (int64_t r = 0; r < rows; ++r) {
    float* xr = x + r * dim;
    double ss = 0.0;
    for (int64_t i = 0; i < dim; ++i) ss += double(xr[i]) * double(xr[i]);
    const float s = scale / std::sqrt(float(ss) + eps);
    for (int64_t i = 0; i < dim; ++i) xr[i] *= s;
  }
}

void swiglu(const float* gate, const float* up, int64_t n, float* out) {
  for (int64_t i = 0; i < n; ++i) out[i] = silu(gate[i]) * up[i];
}

void add_inplace(float* a, const float* b, int64_t n) {
  for (int64_t i = 0; i < n; ++i) a[i] += b[i];
}

}  // namespace gdn
