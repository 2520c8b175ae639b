#include "model/cuda/model_kernels.h"

#include <cmath>

#include "kernels/cuda/cuda_check.h"

namespace gdn::cuda {

namespace {
__global__ void mask_tail_kernel(float* logits, int vocab, int from) {
  float* row = logits + size_t(blockIdx.x) * vocab;
  for (int v = from + int(threadIdx.x); v < vocab; v += blockDim.x) row[v] = -INFINITY;
}
}  // namespace

void mask_logits_tail(float* logits, int rows, int vocab, int from, cudaStream_t stream) {
  if (rows <= 0 || from >= vocab) return;
  mask_tail_kernel<<<rows, 256, 0, stream>>>(logits, vocab, from);
  GDN_CUDA_CHECK_LAUNCH();
}

}  // namespace gdn::cuda
