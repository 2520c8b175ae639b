// Token sampling on the GPU, the semantics of runtime/sampler.h (kernels/cpu has no sampler; the
// CPU one in runtime/ is the reference): penalties on raw logits (repetition, then frequency and
// presence), temperature, then top-k, top-p, min-p, then a seeded draw. Temperature 0 = greedy
// (argmax after penalties, ties to the lowest id).
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

namespace gdn::cuda {

// Per row (one row of logits per sequence that samples this step).
struct GpuSamplingRow {
  float temperature = 1.f;
  int top_k = 0;              // ≤ 0 = off
  float top_p = 1.f;
  float min_p = 0.f;
  float presence_penalty = 0.f, frequency_penalty = 0.f, repetition_penalty = 1.f;
  uint64_t seed = 0;          // the draw of this row uses Philox(seed, offset)
  uint64_t offset = 0;        // e.g. the sequence's output length: a new number per step
  int32_t penalty_begin = 0;  // this row's entries in the penalty lists: [penalty_begin, penalty_end)
  int32_t penalty_end = 0;
};

// Penalty lists, built by the runtime from each sequence's history: one entry per distinct token
// that appeared in the prompt or output; out_count = occurrences in the output (0 = prompt only).
// Repetition applies to every listed token; presence/frequency to tokens with out_count > 0.
struct PenaltyEntry {
  int32_t token = 0;
  int32_t out_count = 0;
};

size_t sampling_workspace_bytes(int max_rows, int vocab);

// logits: fp32 [R, V], modified in place (penalties, temperature). rows, penalties: device arrays.
// out: [R] token ids. Deterministic for a given (seed, offset).
void sample_tokens(float* logits, int R, int V, const GpuSamplingRow* rows, const PenaltyEntry* penalties,
                   int32_t* out, void* workspace, size_t workspace_bytes, cudaStream_t stream);

}  // namespace gdn::cuda
