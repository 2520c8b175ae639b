// Device building blocks shared by the attention kernels (CUDA translation units only): cp.async,
// ldmatrix, mma.sync m16n8k16 (bf16 in, fp32 accumulate), and the staging of one 64-token KV cache
// block into shared memory.
//
// Shared-memory tiles hold rows of D bf16 values with a row stride of D + 8 elements: the 16-byte
// pad shifts consecutive rows by 4 banks, so the 8 row addresses of every ldmatrix phase hit 32
// distinct banks for every D used here (16 … 256) without an XOR swizzle.
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cmath>
#include <cstdint>

#include "kernels/cuda/attention_cuda.h"
#include "kernels/cuda/fp_codecs.cuh"

namespace gdn::cuda::attn {

constexpr int kBlk = kKvBlockTokens;  // one KV tile = one cache block
constexpr float kLog2e = 1.4426950408889634f;

template <int D>
constexpr int smem_stride() { return D + 8; }

__device__ __forceinline__ uint32_t smem_u32(const void* p) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}

// 16-byte async copy; valid == false zero-fills the destination (src-size 0 reads nothing).
__device__ __forceinline__ void cp_async16(void* smem, const void* gmem, bool valid) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(smem_u32(smem)), "l"(gmem),
               "r"(valid ? 16 : 0)
               : "memory");
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::: "memory"); }
template <int N>
__device__ __forceinline__ void cp_async_wait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory");
}

__device__ __forceinline__ void ldmatrix_x4(uint32_t (&r)[4], const void* p) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(smem_u32(p)));
}
__device__ __forceinline__ void ldmatrix_x4_trans(uint32_t (&r)[4], const void* p) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(smem_u32(p)));
}

// c += a · b for one m16n8k16 tile (A row-major 16×16, B "col" 16×8, C 16×8 fp32).
__device__ __forceinline__ void mma_bf16(float (&c)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
      "{%0,%1,%2,%3};\n"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

__device__ __forceinline__ uint32_t pack_bf16(float lo, float hi) {
  __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
  return *reinterpret_cast<uint32_t*>(&v);
}

// Rows [0, rows) of a 16×D (or more) operand tile: A fragment for k-step kk at rows row0..row0+15.
template <int D>
__device__ __forceinline__ void load_a_frag(uint32_t (&a)[4], const __nv_bfloat16* tile, int row0, int kk,
                                            int lane) {
  ldmatrix_x4(a, tile + (row0 + (lane & 15)) * smem_stride<D>() + kk * 16 + (lane >> 4) * 8);
}
// K tile rows key0..key0+15 as the B operand of S = Q·Kᵀ (k = head dim kk·16.., n = keys):
// b[0], b[1] for keys key0..+7, b[2], b[3] for keys key0+8..+15.
template <int D>
__device__ __forceinline__ void load_k_frag(uint32_t (&b)[4], const __nv_bfloat16* tile, int key0, int kk,
                                            int lane) {
  ldmatrix_x4(b, tile + (key0 + (lane & 7) + (lane >> 4) * 8) * smem_stride<D>() + kk * 16 + ((lane >> 3) & 1) * 8);
}
// V tile rows key0..key0+15 (k = keys) as the B operand of O += P·V, head dims d0..d0+15:
// b[0], b[1] for dims d0..+7, b[2], b[3] for dims d0+8..+15.
template <int D>
__device__ __forceinline__ void load_v_frag(uint32_t (&b)[4], const __nv_bfloat16* tile, int key0, int d0,
                                            int lane) {
  ldmatrix_x4_trans(b, tile + (key0 + (lane & 7) + ((lane >> 3) & 1) * 8) * smem_stride<D>() + d0 + (lane >> 4) * 8);
}

// Running softmax state of a thread's two query rows (g and g + 8 of its warp's 16).
struct RowSoftmax {
  float m_lo = -INFINITY, m_hi = -INFINITY, l_lo = 0.f, l_hi = 0.f;
};

// One tile of 64 keys of a thread's two rows in m16n8 accumulator layout, as both prefill kernels
// hold it (mma.sync n-tiles, or the wgmma m64n64 fragment): s[nt][e] is row g (g + 8 if e & 2),
// key key0 + 8·nt + 2·(lane & 3) + (e & 1). Scales (exp2 domain), masks keys past each row's
// position, updates the running max and sum, and leaves P = 2^(s − m) in s; returns the factors
// by which O's rows (lo, hi) must be rescaled.
__device__ __forceinline__ float2 softmax_tile(float (&s)[8][4], int key0, int lane, int pos_lo, int pos_hi,
                                              float scale_log2, RowSoftmax& st) {
  float mx_lo = -INFINITY, mx_hi = -INFINITY;
#pragma unroll
  for (int n = 0; n < 8; ++n) {
#pragma unroll
    for (int e = 0; e < 2; ++e) {
      const int key = key0 + n * 8 + (lane & 3) * 2 + e;
      s[n][e] = key <= pos_lo ? s[n][e] * scale_log2 : -INFINITY;
      s[n][2 + e] = key <= pos_hi ? s[n][2 + e] * scale_log2 : -INFINITY;
      mx_lo = fmaxf(mx_lo, s[n][e]);
      mx_hi = fmaxf(mx_hi, s[n][2 + e]);
    }
  }
#pragma unroll
  for (int off = 1; off < 4; off <<= 1) {  // a quad shares a row
    mx_lo = fmaxf(mx_lo, __shfl_xor_sync(0xffffffffu, mx_lo, off));
    mx_hi = fmaxf(mx_hi, __shfl_xor_sync(0xffffffffu, mx_hi, off));
  }
  const float new_lo = fmaxf(st.m_lo, mx_lo), new_hi = fmaxf(st.m_hi, mx_hi);
  const float base_lo = new_lo == -INFINITY ? 0.f : new_lo, base_hi = new_hi == -INFINITY ? 0.f : new_hi;
  const float alpha_lo = exp2f(st.m_lo - base_lo), alpha_hi = exp2f(st.m_hi - base_hi);
  st.m_lo = new_lo;
  st.m_hi = new_hi;
  float sum_lo = 0.f, sum_hi = 0.f;
#pragma unroll
  for (int n = 0; n < 8; ++n) {
    s[n][0] = exp2f(s[n][0] - base_lo);
    s[n][1] = exp2f(s[n][1] - base_lo);
    s[n][2] = exp2f(s[n][2] - base_hi);
    s[n][3] = exp2f(s[n][3] - base_hi);
    sum_lo += s[n][0] + s[n][1];
    sum_hi += s[n][2] + s[n][3];
  }
  st.l_lo = st.l_lo * alpha_lo + sum_lo;
  st.l_hi = st.l_hi * alpha_hi + sum_hi;
  return make_float2(alpha_lo, alpha_hi);
}

// P of keys 16·kk .. 16·kk + 15 (n-tiles 2kk, 2kk + 1) as the BF16 A fragment of the P·V MMA:
// the C layout of two n-tiles is the A layout of one k16 step.
__device__ __forceinline__ void p_fragment(const float (&s)[8][4], int kk, uint32_t (&pa)[4]) {
  pa[0] = pack_bf16(s[2 * kk][0], s[2 * kk][1]);
  pa[1] = pack_bf16(s[2 * kk][2], s[2 * kk][3]);
  pa[2] = pack_bf16(s[2 * kk + 1][0], s[2 * kk + 1][1]);
  pa[3] = pack_bf16(s[2 * kk + 1][2], s[2 * kk + 1][3]);
}

// 1 / l of both rows (the quad's sums) times `scale`; 0 for a row that saw no key.
__device__ __forceinline__ float2 softmax_norm(RowSoftmax st, float scale) {
#pragma unroll
  for (int off = 1; off < 4; off <<= 1) {
    st.l_lo += __shfl_xor_sync(0xffffffffu, st.l_lo, off);
    st.l_hi += __shfl_xor_sync(0xffffffffu, st.l_hi, off);
  }
  return make_float2(st.l_lo > 0.f ? scale / st.l_lo : 0.f, st.l_hi > 0.f ? scale / st.l_hi : 0.f);
}

// Which (sequence, query tile of `rows` tokens) row y of a prefill grid is: the tiles of sequence 0
// first, each sequence's last (longest) tile first; x = −1 for the surplus rows of the grid's bound.
__device__ __forceinline__ int2 prefill_tile(const int32_t* cu_seqlens, int num_seqs, int rows, int y) {
  for (int s = 0; s < num_seqs; ++s) {
    const int len = cu_seqlens[s + 1] - cu_seqlens[s];
    const int nt = len > 0 ? (len + rows - 1) / rows : 0;
    if (y < nt) return make_int2(s, nt - 1 - y);
    y -= nt;
  }
  return make_int2(-1, 0);
}

// A thread's output rows (g and g + 8 of its warp's 16: tile rows row_lo, row_hi from token t0):
// out[t, h, :] = bf16(o · inv · sigmoid(gate)), gate = gate[t·gate_ld + h·2D + D + column];
// o(i, half, e) is the fp32 accumulator of column 8·i + 2·(lane & 3) + e of row half.
template <int D, typename O>
__device__ __forceinline__ void store_gated_rows(O&& o, float2 inv, const float* gate, int64_t gate_ld,
                                                 __nv_bfloat16* out, int heads, int h, int t0, int n_rows,
                                                 int row_lo, int row_hi, int lane) {
#pragma unroll
  for (int half = 0; half < 2; ++half) {
    const int r = half ? row_hi : row_lo;
    if (r >= n_rows) continue;
    const int t = t0 + r;
    const float sc = half ? inv.y : inv.x;
    const float* g = gate + size_t(t) * gate_ld + size_t(h) * 2 * D + D;
    __nv_bfloat16* dst = out + (size_t(t) * heads + h) * D;
#pragma unroll
    for (int i = 0; i < D / 8; ++i) {
      const int col = i * 8 + (lane & 3) * 2;
      const float y0 = o(i, half, 0) * sc / (1.f + expf(-g[col]));  // gate_ld may be odd: scalar loads
      const float y1 = o(i, half, 1) * sc / (1.f + expf(-g[col + 1]));
      *reinterpret_cast<__nv_bfloat162*>(dst + col) = __floats2bfloat162_rn(y0, y1);
    }
  }
}

// Issues the async copies of one cache block (kv head kvh) into shared memory. Rows >= valid_rows
// are zero-filled (unwritten cache rows may hold NaN bit patterns; 0·NaN would poison P·V).
// BF16: straight into the padded bf16 tiles. FP8: the raw codes into [kBlk][D] byte tiles, which
// convert_fp8_tile turns into bf16 after the copy landed.
template <int D, bool kFp8, int kThreads>
__device__ __forceinline__ void issue_kv_block(const KvLayerView& kv, int kv_heads, int block, int kvh,
                                               int valid_rows, void* k_dst, void* v_dst, int tid) {
  constexpr int kElemBytes = kFp8 ? 1 : 2;
  constexpr int kChunksPerRow = D * kElemBytes / 16;
  const size_t base = (size_t(block) * kv_heads + kvh) * kBlk * D * kElemBytes;
  const char* ksrc = static_cast<const char*>(kv.k) + base;
  const char* vsrc = static_cast<const char*>(kv.v) + base;
  for (int c = tid; c < kBlk * kChunksPerRow; c += kThreads) {
    const int row = c / kChunksPerRow, col = c % kChunksPerRow;
    const bool valid = row < valid_rows;
    const size_t src = size_t(row) * D * kElemBytes + col * 16;
    const int dst = kFp8 ? row * D + col * 16 : (row * smem_stride<D>() + col * 8) * 2;
    cp_async16(static_cast<char*>(k_dst) + dst, ksrc + (valid ? src : 0), valid);
    cp_async16(static_cast<char*>(v_dst) + dst, vsrc + (valid ? src : 0), valid);
  }
}

// Raw E4M3 codes [kBlk][D] → exact bf16 codes (the scale is applied to scores / outputs instead).
template <int D, int kThreads>
__device__ __forceinline__ void convert_fp8_tile(const uint8_t* raw, __nv_bfloat16* dst, int tid) {
  constexpr int kChunksPerRow = D / 16;
  for (int c = tid; c < kBlk * kChunksPerRow; c += kThreads) {
    const int row = c / kChunksPerRow, col = c % kChunksPerRow;
    const uint4 w = *reinterpret_cast<const uint4*>(raw + row * D + col * 16);
    uint4 lo, hi;
    detail::e4m3x4_to_bf16(w.x, lo.x, lo.y);
    detail::e4m3x4_to_bf16(w.y, lo.z, lo.w);
    detail::e4m3x4_to_bf16(w.z, hi.x, hi.y);
    detail::e4m3x4_to_bf16(w.w, hi.z, hi.w);
    uint4* d = reinterpret_cast<uint4*>(dst + row * smem_stride<D>() + col * 16);
    d[0] = lo;
    d[1] = hi;
  }
}

// Block id of cache block j of a sequence; ids outside the cache (padding sequences with junk
// tables) are clamped so that nothing reads out of bounds.
__device__ __forceinline__ int table_block(const int32_t* row, int j, int num_blocks) {
  const int b = row[j];
  return (b < 0 || b >= num_blocks) ? 0 : b;
}

// Launch helpers shared by the translation units.
// The wgmma prefill kernel (attention_prefill_wgmma.cu: head_dim 256, BF16 cache, Hopper); false,
// having launched nothing, where it does not apply.
bool launch_prefill_wgmma(const AttnDims& d, const __nv_bfloat16* q, const StepMeta& m, const KvLayerView& kv,
                          const float* gate, int64_t gate_ld, __nv_bfloat16* out, cudaStream_t stream);
void launch_prefill(const AttnDims& d, const __nv_bfloat16* q, const StepMeta& m, const KvLayerView& kv,
                    const float* gate, int64_t gate_ld, __nv_bfloat16* out, cudaStream_t stream);

}  // namespace gdn::cuda::attn
