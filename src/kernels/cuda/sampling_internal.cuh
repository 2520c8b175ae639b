// Test hook of the GPU sampler (host-only declarations, includable from .cpp): the distribution
// sample_tokens draws from, so tests can compare the kept set and its probabilities with the CPU
// sampler's definition instead of only drawing from it.
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

#include "kernels/cuda/sampling_cuda.h"

namespace gdn::cuda {

// Exactly sample_tokens' filtering (penalties, temperature, top-k, top-p, min-p, logits modified
// the same way), but instead of drawing writes probs [R, V]: the renormalised kept distribution
// (w / Σ kept w, 0 for filtered tokens); greedy rows get a one-hot at the argmax. `out` still
// receives the token sample_tokens would draw.
void sampling_kept_probs(float* logits, int R, int V, const GpuSamplingRow* rows, const PenaltyEntry* penalties,
                         int32_t* out, float* probs, void* workspace, size_t workspace_bytes, cudaStream_t stream);

}  // namespace gdn::cuda
