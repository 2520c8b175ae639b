// Gated delta rule (Gated DeltaNet core), CPU reference, fp32 throughout (model.md §3.5–3.7).
//
// Per value head j (key head kh = j / (HV / HK)), with state S_j ∈ R^{DK×DV} ([HV, DK, DV],
// row-major, the reference library's orientation):
//   S ← exp(g_t) · S ;  u = v_t − Sᵀ k_t ;  S ← S + β_t · k_t uᵀ ;  o_t = Sᵀ q_t
// Inputs are already prepared: q and k L2-normalised, q scaled by 1/sqrt(DK); g is the log-decay
// (≤ 0) and beta the write strength, both per token and value head.
#pragma once

#include <cstdint>

namespace gdn {
class ThreadPool;

struct DeltaRuleShape {
  int64_t tokens;  // T
  int64_t key_heads, value_heads;  // HK, HV (HV a multiple of HK)
  int64_t key_dim, value_dim;      // DK, DV
};

// q, k: [T, HK, DK]; v: [T, HV, DV]; g, beta: [T, HV]; state: [HV, DK, DV] (read and updated in
// place); out: [T, HV, DV]. Token-by-token recurrence (the decode form).
void delta_rule_recurrent(const DeltaRuleShape& s, const float* q, const float* k, const float* v, const float* g,
                          const float* beta, float* state, float* out, ThreadPool& pool);

// Same function, computed chunk-parallel with the WY/UT transform (the prefill form, model.md
// §3.6): chunk_size tokens per chunk (64 in the reference), the last chunk may be partial.
void delta_rule_chunked(const DeltaRuleShape& s, const float* q, const float* k, const float* v, const float* g,
                        const float* beta, float* state, float* out, ThreadPool& pool, int64_t chunk_size = 64);

}  // namespace gdn
