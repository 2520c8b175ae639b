// Kernel launch with programmatic dependent launch (sm_90): the kernel may start while the previous
// kernel on the stream finishes; it must call griddep_wait() (fp_codecs.cuh) before reading that
// kernel's output. pdl = false launches normally.
//
// Convention of the decode-path kernels: griddep_wait(), then griddep_launch_dependents() (the
// GEMV kernels trigger right after their setup, before waiting): the next kernel becomes resident
// while this one runs, and a GEMV streams its first weights during the norm or SwiGLU before it.
// Before its own griddep_wait() a kernel launched with PDL reads only what no kernel of the running
// chain writes: weights, the step's metadata (copied before the step's first kernel), and state that
// only an earlier step wrote (the DeltaNet recurrent state of its layer) — and writes nothing. Moving
// those reads ahead of the wait (norm weights, conv weights, gate parameters, the DeltaNet state)
// took batch-1 decode from 12.06 to 11.54 ms per step on the H100. Triggering before waiting
// everywhere (a cascade of early launches) was measured slower: batch-1 decode 81.5 → 73-77 tok/s.
#pragma once

#include <cuda_runtime.h>

#include "kernels/cuda/cuda_check.h"

namespace gdn::cuda::detail {

// Steps of at most this many rows take the decode variants of the norm and prepare kernels, which
// hold their weights in registers from before the wait; larger ones would lose occupancy to them.
constexpr int kPreWaitMaxRows = 64;

template <typename... KArgs, typename... Args>
void launch_pdl(void (*kernel)(KArgs...), dim3 grid, dim3 block, size_t smem, cudaStream_t s, bool pdl,
                Args&&... args) {
  cudaLaunchConfig_t cfg{};
  cfg.gridDim = grid;
  cfg.blockDim = block;
  cfg.dynamicSmemBytes = smem;
  cfg.stream = s;
  cudaLaunchAttribute attr[1];
  attr[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
  attr[0].val.programmaticStreamSerializationAllowed = 1;
  cfg.attrs = attr;
  cfg.numAttrs = pdl ? 1 : 0;
  GDN_CUDA_CHECK(cudaLaunchKernelEx(&cfg, kernel, KArgs(args)...));
}

}  // namespace gdn::cuda::detail
