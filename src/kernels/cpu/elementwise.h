// Small elementwise and normalisation ops of the Qwen3.5 forward pass, fp32 (model.md §3.2–3.5).
#pragma once

#include <cmath>
#include <cstdint>

namespace gdn {

inline float sigmoid(float x) { return 1.f / (1.f + std::exp(-x)); }
inline float silu(float x) { return x / (1.f + std::exp(-x)); }
// torch.nn.functional.softplus (beta 1, threshold 20): linear above the threshold.
inline float softplus(float x) { return x > 20.f ? x : std::log1p(std::exp(x)); }

// Zero-centred RMSNorm over `dim`, for `rows` rows: y = x·rsqrt(mean(x²)+eps)·(1+w).
// In-place allowed (y == x).
void rmsnorm_1p(const float* x, const float* w, int64_t rows, int64_t dim, float eps, float* y);

// Gated RMSNorm of the DeltaNet output: y = x·rsqrt(mean(x²)+eps)·w·silu(z), per `dim` group.
void rmsnorm_gated(const float* x, const float* z, const float* w, int64_t rows, int64_t dim, float eps, float* y);

// In-place x / sqrt(Σx² + eps) over groups of `dim`, then × scale.
void l2norm_scale(float* x, int64_t rows, int64_t dim, float eps, float scale);

// out = silu(gate) · up, elementwise over n.
void swiglu(const float* gate, const float* up, int64_t n, float* out);

// a += b over n.
void add_inplace(float* a, const float* b, int64_t n);

}  // namespace gdn
