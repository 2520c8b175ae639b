// What one batched forward step looks like to the kernels (issue 6). A step is a set of sequences;
// sequence s contributes tokens [cu_seqlens[s], cu_seqlens[s+1]) of the flattened batch — a prefill
// chunk or a single decode token — at positions positions[t].
//
// Paged KV cache: fixed blocks of kKvBlockTokens tokens. Sequence s's token at position p lives in
// block block_table[s·max_blocks + p / kKvBlockTokens], row p % kKvBlockTokens. slot_mapping[t] is
// the global row (block·kKvBlockTokens + offset) where token t's K/V is written; −1 = write nothing
// (padding rows of a CUDA-graph bucket).
//
// DeltaNet state: sequence s reads and advances state slot state_slots[s]; −1 = padding sequence
// (skip it: no state read or written, outputs unspecified).
//
// Host fields decide launch configurations; under CUDA-graph capture the device arrays change
// between replays (positions and kv_lens grow) while the host fields stay fixed, so kernels must
// read lengths from the device arrays and treat max_kv_len as an upper bound only.
#pragma once

#include <cstdint>

namespace gdn::cuda {

// 64 tokens per block: one block is exactly one attention KV tile (no per-token indirection inside
// a tile), and DeltaNet prefill chunks are 64 tokens too, so block boundaries are where prefix
// caching can snapshot the recurrent state. Waste is < 64 tokens per sequence (≤ 2 MiB per
// sequence for the 27B in BF16 KV).
constexpr int kKvBlockTokens = 64;

struct StepMeta {
  // host
  int num_seqs = 0;     // S (a graph bucket counts its padding sequences)
  int num_tokens = 0;   // T = cu_seqlens[S]
  int max_q_len = 0;    // max tokens of one sequence in this step (1 = pure decode)
  int max_kv_len = 0;   // upper bound of kv_lens[s]
  int max_blocks = 0;   // row stride of block_table
  // device
  const int32_t* cu_seqlens = nullptr;    // [S+1]
  const int32_t* kv_lens = nullptr;       // [S] cached tokens after this step (= last position + 1)
  const int32_t* positions = nullptr;     // [T]
  const int32_t* seq_of_token = nullptr;  // [T] s
  const int32_t* block_table = nullptr;   // [S, max_blocks]
  const int32_t* slot_mapping = nullptr;  // [T]
  const int32_t* state_slots = nullptr;   // [S]
};

}  // namespace gdn::cuda
