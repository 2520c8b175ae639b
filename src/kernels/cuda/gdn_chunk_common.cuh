// Device helpers shared by the chunked delta-rule kernels (gdn_chunked.cu, gdn_chunked_fused.cu).
#pragma once

#include <cuda_runtime.h>

namespace gdn::cuda::detail::chunk {

constexpr int kChunk = 64;  // tokens per chunk (the reference's chunk size)

// 16-byte global → shared copy without registers; src-size 0 zero-fills (masked elements).
__device__ __forceinline__ void cp_async16(float* dst, const float* src, bool valid) {
  const unsigned d = static_cast<unsigned>(__cvta_generic_to_shared(dst));
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(d), "l"(src), "r"(valid ? 16 : 0));
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::); }
__device__ __forceinline__ void cp_async_wait_all() { asm volatile("cp.async.wait_all;\n" ::: "memory"); }
__device__ __forceinline__ void prefetch_l2(const void* p) { asm volatile("prefetch.global.L2 [%0];" ::"l"(p)); }

__device__ __forceinline__ float4 ld4(const float* p) { return *reinterpret_cast<const float4*>(p); }
__device__ __forceinline__ void st4(float* p, float4 v) { *reinterpret_cast<float4*>(p) = v; }


// One warp: out[i] = in[0] + … + in[i] for the 64 per-token log-decays of a chunk (γ = cumsum g),
// two per lane; in == out is allowed (every lane reads before the shuffles, writes after).
__device__ __forceinline__ void warp_cumsum64(const float* in, float* out, int lane) {
  const float g0 = in[2 * lane], g1 = in[2 * lane + 1];
  float incl = g0 + g1;
#pragma unroll
  for (int o = 1; o < 32; o <<= 1) {
    const float y = __shfl_up_sync(0xffffffffu, incl, o);
    if (lane >= o) incl += y;
  }
  const float excl = incl - (g0 + g1);
  out[2 * lane] = excl + g0;
  out[2 * lane + 1] = excl + g0 + g1;
}

// Column x of T = (I + A)⁻¹ (A strictly lower, [64][lda] in shared memory) by forward substitution
// in registers: T[r][x] = δ_rx − Σ_{x ≤ c < r} A[r][c]·T[c][x], A rows as broadcast float4 reads.
__device__ __forceinline__ void solve_t_column(const float* sA, int lda, int x, float (&t)[kChunk]) {
#pragma unroll
  for (int r = 0; r < kChunk; ++r) {
    float a0 = 0.f, a1 = 0.f, a2 = 0.f, a3 = 0.f;
#pragma unroll
    for (int c = 0; c + 4 <= r; c += 4) {
      const float4 av = ld4(sA + r * lda + c);
      a0 += av.x * t[c], a1 += av.y * t[c + 1], a2 += av.z * t[c + 2], a3 += av.w * t[c + 3];
    }
#pragma unroll
    for (int c = r & ~3; c < r; ++c) a0 += sA[r * lda + c] * t[c];
    t[r] = r == x ? 1.f : (r < x ? 0.f : -((a0 + a1) + (a2 + a3)));
  }
}

}  // namespace gdn::cuda::detail::chunk
