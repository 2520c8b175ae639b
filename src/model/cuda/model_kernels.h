// Small kernels only the GPU model needs.
#pragma once

#include <cuda_runtime.h>

namespace gdn::cuda {

// logits[r, v] = −inf for v ≥ from (r < rows): ids the tokenizer does not define are never sampled.
void mask_logits_tail(float* logits, int rows, int vocab, int from, cudaStream_t stream);

}  // namespace gdn::cuda
