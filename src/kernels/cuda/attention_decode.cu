// Decode attention (one query token per sequence) as split-KV flash-decoding, the workspace size,
// and paged_attention's choice of path.
//
// decode_kernel: CTA = (split p, kv head, sequence). The group's query heads (heads / kv_heads ≤ 16:
// 27B has 6) form the 16 rows of one mma tile, so the whole GQA group shares each K/V byte read;
// the split's cache blocks stream through shared memory with cp.async double buffering (16-byte
// copies, a whole 64-token block per stage), and warp w takes keys 16w..16w+15 of each block on
// tensor cores with its own online softmax. The 4 warps merge in shared memory and write the
// split's unnormalised partial (m, l, O) to the workspace; combine_kernel merges the splits,
// normalises, applies v_scale and the output gate. Splits beyond a sequence's length write
// (−inf, 0) and are skipped by the combine.
//
// The number of splits depends on host fields only (num_seqs, max_kv_len, max_blocks, SM count), so
// a captured graph stays valid while the lengths on the device grow.
#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <stdexcept>
#include <string>

#include "kernels/cuda/attention_common.cuh"
#include "kernels/cuda/fp_codecs.cuh"
#include "kernels/cuda/launch_pdl.h"
#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/device.h"

namespace gdn::cuda {
namespace attn {
namespace {

constexpr int kDecWarps = 4;
constexpr int kDecThreads = kDecWarps * 32;
constexpr int kMaxGroup = 16;

struct DecodeArgs {
  const __nv_bfloat16* q;
  const int32_t* cu_seqlens;
  const int32_t* positions;
  const int32_t* block_table;
  KvLayerView kv;
  float* part_ml;  // [S, heads, splits, 2]  (m in log2 units, l)
  float* part_o;   // [S, heads, splits, D]
  int max_blocks, heads, kv_heads, splits, blocks_per_split;
  float score_scale_log2;
};

struct Split {
  int splits, blocks_per_split;
  int bound;  // ≥ splits for every nblk up to this one (what the workspace is sized for)
};

Split choose_splits(int num_seqs, int kv_heads, int max_kv_len, int max_blocks, int sm_count) {
  int nblk = (std::max(max_kv_len, 1) + kBlk - 1) / kBlk;
  if (max_blocks > 0) nblk = std::min(nblk, max_blocks);
  nblk = std::max(nblk, 1);
  const int work = std::max(1, num_seqs * kv_heads);
  // One resident CTA per SM (≈140 KB smem), so `waves` waves of CTAs. One wave: fewer, longer
  // splits amortize each CTA's pipeline fill and the combine (H100, 27B dims: batch 1 at 8K / 32K
  // context 40.4 → 23.9 / 78.6 → 64.6 µs per layer, batch 64 at 2K 214 → 204 µs, against two
  // waves; 4 and 8 are slower still). GDN_ATTN_DECODE_WAVES overrides it (experiments).
  static const int waves = [] {
    const char* e = std::getenv("GDN_ATTN_DECODE_WAVES");
    return e ? std::clamp(std::atoi(e), 1, 16) : 1;
  }();
  const int target = waves * sm_count;
  int splits = std::clamp((target + work - 1) / work, 1, nblk);
  const int bps = (nblk + splits - 1) / splits;
  return {(nblk + bps - 1) / bps, bps, splits};
}

template <int D, bool kFp8>
struct DecodeSmem {
  static constexpr int kStride = smem_stride<D>();
  static constexpr size_t kQBytes = size_t(16) * kStride * 2;
  static constexpr size_t kTileBytes = size_t(kBlk) * kStride * 2;
  static constexpr size_t kRawBytes = size_t(kBlk) * D;
  static constexpr size_t kKvBytes = kFp8 ? 2 * kTileBytes + 4 * kRawBytes : 4 * kTileBytes;
  static constexpr size_t kMergeBytes = size_t(kDecWarps) * 16 * D * 4;  // reuses the K/V area
  static_assert(kMergeBytes <= kKvBytes, "merge buffer must fit in the K/V area");
  static constexpr size_t kBytes = kQBytes + kKvBytes;
};

template <int D, bool kFp8>
__global__ void __launch_bounds__(kDecThreads, 1) decode_kernel(DecodeArgs a) {
  detail::griddep_wait();  // launched with PDL
  detail::griddep_launch_dependents();
  using Smem = DecodeSmem<D, kFp8>;
  constexpr int kStride = Smem::kStride;
  extern __shared__ __align__(128) unsigned char smem[];
  __shared__ float sh_m[kDecWarps][16], sh_l[kDecWarps][16];
  __nv_bfloat16* q_s = reinterpret_cast<__nv_bfloat16*>(smem);
  unsigned char* kv_base = smem + Smem::kQBytes;

  const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;
  const int split = blockIdx.x, kvh = blockIdx.y, seq = blockIdx.z;
  const int group = a.heads / a.kv_heads;
  const int t = a.cu_seqlens[seq];
  if (a.cu_seqlens[seq + 1] - t < 1) return;  // no token: nothing to combine either
  const int pos = a.positions[t];
  const int n_keys = min(pos + 1, a.max_blocks * kBlk);
  const int blk_begin = split * a.blocks_per_split;
  const int blk_end = min(blk_begin + a.blocks_per_split, (max(n_keys, 0) + kBlk - 1) / kBlk);
  const size_t part_row = (size_t(seq) * a.heads + kvh * group) * a.splits + split;  // + r·splits

  if (blk_begin >= blk_end) {
    for (int r = tid; r < group; r += kDecThreads) {
      a.part_ml[(part_row + size_t(r) * a.splits) * 2] = -INFINITY;
      a.part_ml[(part_row + size_t(r) * a.splits) * 2 + 1] = 0.f;
    }
    return;
  }

  for (int c = tid; c < 16 * (D / 8); c += kDecThreads) {
    const int r = c / (D / 8), col = c % (D / 8);
    const bool valid = r < group;
    const __nv_bfloat16* src = a.q + (size_t(t) * a.heads + kvh * group + (valid ? r : 0)) * D + col * 8;
    cp_async16(q_s + r * kStride + col * 8, src, valid);
  }
  cp_async_commit();
  const int32_t* table = a.block_table + size_t(seq) * a.max_blocks;

  auto stage_k = [&](int st) -> void* {
    return kFp8 ? kv_base + 2 * Smem::kTileBytes + (2 * st) * Smem::kRawBytes : kv_base + (2 * st) * Smem::kTileBytes;
  };
  auto stage_v = [&](int st) -> void* {
    return kFp8 ? kv_base + 2 * Smem::kTileBytes + (2 * st + 1) * Smem::kRawBytes
                : kv_base + (2 * st + 1) * Smem::kTileBytes;
  };
  auto issue = [&](int j, int st) {
    const int blk = table_block(table, j, a.kv.num_blocks);
    issue_kv_block<D, kFp8, kDecThreads>(a.kv, a.kv_heads, blk, kvh, min(kBlk, n_keys - j * kBlk), stage_k(st),
                                         stage_v(st), tid);
  };

  float o[D / 8][4];
#pragma unroll
  for (int i = 0; i < D / 8; ++i) o[i][0] = o[i][1] = o[i][2] = o[i][3] = 0.f;
  float m_lo = -INFINITY, m_hi = -INFINITY, l_lo = 0.f, l_hi = 0.f;

  issue(blk_begin, 0);
  cp_async_commit();
  for (int j = blk_begin; j < blk_end; ++j) {
    const int st = (j - blk_begin) & 1;
    if (j + 1 < blk_end) issue(j + 1, st ^ 1);
    cp_async_commit();
    cp_async_wait<1>();
    __syncthreads();
    const __nv_bfloat16* k_s;
    const __nv_bfloat16* v_s;
    if constexpr (kFp8) {
      __nv_bfloat16* kb = reinterpret_cast<__nv_bfloat16*>(kv_base);
      __nv_bfloat16* vb = reinterpret_cast<__nv_bfloat16*>(kv_base + Smem::kTileBytes);
      convert_fp8_tile<D, kDecThreads>(static_cast<const uint8_t*>(stage_k(st)), kb, tid);
      convert_fp8_tile<D, kDecThreads>(static_cast<const uint8_t*>(stage_v(st)), vb, tid);
      __syncthreads();
      k_s = kb;
      v_s = vb;
    } else {
      k_s = static_cast<const __nv_bfloat16*>(stage_k(st));
      v_s = static_cast<const __nv_bfloat16*>(stage_v(st));
    }
    const int key0 = j * kBlk + warp * 16;
    if (key0 <= pos) {  // else all 16 keys of this warp lie past the query
      float s[2][4] = {};
#pragma unroll
      for (int kk = 0; kk < D / 16; ++kk) {
        uint32_t qa[4], kb[4];
        load_a_frag<D>(qa, q_s, 0, kk, lane);
        load_k_frag<D>(kb, k_s, warp * 16, kk, lane);
        mma_bf16(s[0], qa, kb[0], kb[1]);
        mma_bf16(s[1], qa, kb[2], kb[3]);
      }
      float mx_lo = -INFINITY, mx_hi = -INFINITY;
#pragma unroll
      for (int n = 0; n < 2; ++n) {
#pragma unroll
        for (int e = 0; e < 2; ++e) {
          const bool ok = key0 + n * 8 + (lane & 3) * 2 + e <= pos;
          s[n][e] = ok ? s[n][e] * a.score_scale_log2 : -INFINITY;
          s[n][2 + e] = ok ? s[n][2 + e] * a.score_scale_log2 : -INFINITY;
          mx_lo = fmaxf(mx_lo, s[n][e]);
          mx_hi = fmaxf(mx_hi, s[n][2 + e]);
        }
      }
#pragma unroll
      for (int off = 1; off < 4; off <<= 1) {
        mx_lo = fmaxf(mx_lo, __shfl_xor_sync(0xffffffffu, mx_lo, off));
        mx_hi = fmaxf(mx_hi, __shfl_xor_sync(0xffffffffu, mx_hi, off));
      }
      // key0 <= pos: at least one key is visible, so the new maxima are finite.
      const float new_lo = fmaxf(m_lo, mx_lo), new_hi = fmaxf(m_hi, mx_hi);
      const float alpha_lo = exp2f(m_lo - new_lo), alpha_hi = exp2f(m_hi - new_hi);
      m_lo = new_lo;
      m_hi = new_hi;
      float sum_lo = 0.f, sum_hi = 0.f;
#pragma unroll
      for (int n = 0; n < 2; ++n) {
        s[n][0] = exp2f(s[n][0] - new_lo);
        s[n][1] = exp2f(s[n][1] - new_lo);
        s[n][2] = exp2f(s[n][2] - new_hi);
        s[n][3] = exp2f(s[n][3] - new_hi);
        sum_lo += s[n][0] + s[n][1];
        sum_hi += s[n][2] + s[n][3];
      }
      l_lo = l_lo * alpha_lo + sum_lo;
      l_hi = l_hi * alpha_hi + sum_hi;
      uint32_t pa[4];
      pa[0] = pack_bf16(s[0][0], s[0][1]);
      pa[1] = pack_bf16(s[0][2], s[0][3]);
      pa[2] = pack_bf16(s[1][0], s[1][1]);
      pa[3] = pack_bf16(s[1][2], s[1][3]);
#pragma unroll
      for (int dp = 0; dp < D / 16; ++dp) {
        uint32_t vb[4];
        load_v_frag<D>(vb, v_s, warp * 16, dp * 16, lane);
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          o[2 * dp][e] *= e < 2 ? alpha_lo : alpha_hi;
          o[2 * dp + 1][e] *= e < 2 ? alpha_lo : alpha_hi;
        }
        mma_bf16(o[2 * dp], pa, vb[0], vb[1]);
        mma_bf16(o[2 * dp + 1], pa, vb[2], vb[3]);
      }
    }
    __syncthreads();
  }
  cp_async_wait<0>();

  // Merge the 4 warps: per row M = max m_w, each warp's O scaled by 2^(m_w − M) into its slice.
#pragma unroll
  for (int off = 1; off < 4; off <<= 1) {
    l_lo += __shfl_xor_sync(0xffffffffu, l_lo, off);
    l_hi += __shfl_xor_sync(0xffffffffu, l_hi, off);
  }
  const int row_lo = lane >> 2, row_hi = row_lo + 8;
  if ((lane & 3) == 0) {
    sh_m[warp][row_lo] = m_lo;
    sh_m[warp][row_hi] = m_hi;
    sh_l[warp][row_lo] = l_lo;
    sh_l[warp][row_hi] = l_hi;
  }
  __syncthreads();
  float* merge = reinterpret_cast<float*>(kv_base);  // [warp][16][D]
  float fac[2];
#pragma unroll
  for (int half = 0; half < 2; ++half) {
    const int r = half ? row_hi : row_lo;
    float mx = -INFINITY;
#pragma unroll
    for (int w = 0; w < kDecWarps; ++w) mx = fmaxf(mx, sh_m[w][r]);
    const float mine = half ? m_hi : m_lo;
    fac[half] = mine == -INFINITY ? 0.f : exp2f(mine - mx);
  }
  float* my = merge + size_t(warp) * 16 * D;
#pragma unroll
  for (int i = 0; i < D / 8; ++i) {
    const int col = i * 8 + (lane & 3) * 2;
    *reinterpret_cast<float2*>(my + row_lo * D + col) = make_float2(o[i][0] * fac[0], o[i][1] * fac[0]);
    *reinterpret_cast<float2*>(my + row_hi * D + col) = make_float2(o[i][2] * fac[1], o[i][3] * fac[1]);
  }
  __syncthreads();
  for (int r = 0; r < group; ++r) {
    float mx = -INFINITY;
#pragma unroll
    for (int w = 0; w < kDecWarps; ++w) mx = fmaxf(mx, sh_m[w][r]);
    const size_t prow = part_row + size_t(r) * a.splits;
    if (tid == 0) {
      float l = 0.f;
#pragma unroll
      for (int w = 0; w < kDecWarps; ++w)
        if (sh_m[w][r] != -INFINITY) l += sh_l[w][r] * exp2f(sh_m[w][r] - mx);
      a.part_ml[prow * 2] = mx;
      a.part_ml[prow * 2 + 1] = l;
    }
    for (int i = tid; i < D; i += kDecThreads) {
      float acc = 0.f;
#pragma unroll
      for (int w = 0; w < kDecWarps; ++w) acc += merge[(size_t(w) * 16 + r) * D + i];
      a.part_o[prow * D + i] = acc;
    }
  }
}

// out[t, h, :] = Σ_p 2^(m_p − M) O_p / Σ_p 2^(m_p − M) l_p · v_scale · sigmoid(gate).
// The splits' (m, l) are loaded by parallel threads into shared memory (dynamic: 2 floats per split)
// and each output element sums its splits' O in split order, four loads in flight: a serial chain
// of dependent global loads per split made this kernel 13.7 µs at one sequence and 16 splits.
__global__ void combine_kernel(const float* part_ml, const float* part_o, const int32_t* cu_seqlens, const float* gate,
                               int64_t gate_ld, __nv_bfloat16* out, int heads, int D, int splits, float v_scale) {
  extern __shared__ float sh_wl[];  // [splits] weights 2^(m_p − M) (0 for empty splits), [splits] l_p
  __shared__ float sh_red[32];
  detail::griddep_wait();  // launched with PDL
  detail::griddep_launch_dependents();
  const int h = blockIdx.x, seq = blockIdx.y;
  const int t = cu_seqlens[seq];
  if (cu_seqlens[seq + 1] - t < 1) return;
  const size_t row = (size_t(seq) * heads + h) * splits;
  float mx = -INFINITY;
  for (int p = threadIdx.x; p < splits; p += blockDim.x) {
    const float m = part_ml[(row + p) * 2];
    sh_wl[p] = m;
    sh_wl[splits + p] = part_ml[(row + p) * 2 + 1];
    mx = fmaxf(mx, m);
  }
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, o));
  if ((threadIdx.x & 31) == 0) sh_red[threadIdx.x >> 5] = mx;
  __syncthreads();
  mx = -INFINITY;
  for (int w = 0; w < int(blockDim.x + 31) / 32; ++w) mx = fmaxf(mx, sh_red[w]);
  __syncthreads();  // every thread has read the maxima and the m_p before they become weights
  for (int p = threadIdx.x; p < splits; p += blockDim.x) {
    const float m = sh_wl[p];
    sh_wl[p] = m == -INFINITY ? 0.f : exp2f(m - mx);  // empty split: its O was never written
  }
  __syncthreads();
  float l = 0.f;
  for (int p = 0; p < splits; ++p) l += sh_wl[p] * sh_wl[splits + p];  // empty splits: 0 · 0
  for (int i = threadIdx.x; i < D; i += blockDim.x) {
    float acc = 0.f;
    int p = 0;
    for (; p + 4 <= splits; p += 4) {
      float o[4];
#pragma unroll
      for (int u = 0; u < 4; ++u) o[u] = sh_wl[p + u] != 0.f ? part_o[(row + p + u) * D + i] : 0.f;
#pragma unroll
      for (int u = 0; u < 4; ++u)
        if (sh_wl[p + u] != 0.f) acc += sh_wl[p + u] * o[u];
    }
    for (; p < splits; ++p)
      if (sh_wl[p] != 0.f) acc += sh_wl[p] * part_o[(row + p) * D + i];
    const float g = gate[size_t(t) * gate_ld + size_t(h) * 2 * D + D + i];
    const float y = l > 0.f ? acc / l * v_scale / (1.f + expf(-g)) : 0.f;
    out[(size_t(t) * heads + h) * D + i] = __float2bfloat16_rn(y);
  }
}

size_t partial_bytes(int seqs, int heads, int D, int splits) {
  return size_t(seqs) * heads * splits * (size_t(D) + 2) * sizeof(float) + 256;
}

template <int D, bool kFp8>
void launch_decode_t(const DecodeArgs& a, int num_seqs, cudaStream_t stream) {
  using Smem = DecodeSmem<D, kFp8>;
  auto kernel = decode_kernel<D, kFp8>;
  static bool attr_set = false;
  if (!attr_set) {
    GDN_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(Smem::kBytes)));
    attr_set = true;
  }
  dim3 grid(a.splits, a.kv_heads, num_seqs);
  detail::launch_pdl(kernel, grid, dim3(kDecThreads), Smem::kBytes, stream, true, a);
  GDN_CUDA_CHECK_LAUNCH();
}

template <int D>
void launch_decode_d(const DecodeArgs& a, bool fp8, int num_seqs, cudaStream_t stream) {
  if (fp8)
    launch_decode_t<D, true>(a, num_seqs, stream);
  else
    launch_decode_t<D, false>(a, num_seqs, stream);
}

bool decode_supported(const AttnDims& d) {
  const int g = d.heads / d.kv_heads;
  const bool dim_ok = d.head_dim == 16 || d.head_dim == 32 || d.head_dim == 64 || d.head_dim == 128 || d.head_dim == 256;
  return dim_ok && g >= 1 && g <= kMaxGroup;
}

}  // namespace
}  // namespace attn

size_t attention_workspace_bytes(const AttnDims& d, int max_tokens, int max_seqs, int max_kv_len) {
  (void)max_tokens;  // decode steps have one token per sequence; prefill needs no scratch
  if (!attn::decode_supported(d)) return 0;
  const int sms = device_info().sm_count;
  size_t worst = 0;
  for (int s = 1; s <= std::max(max_seqs, 1); ++s) {
    const auto sp = attn::choose_splits(s, d.kv_heads, max_kv_len, 0, sms);
    worst = std::max(worst, attn::partial_bytes(s, d.heads, d.head_dim, sp.bound));
  }
  return worst;
}

void paged_attention(const AttnDims& d, const __nv_bfloat16* q, const StepMeta& m, const KvLayerView& kv,
                     const float* gate, int64_t gate_ld, __nv_bfloat16* out, void* workspace, size_t workspace_bytes,
                     cudaStream_t stream) {
  if (m.num_tokens <= 0 || m.num_seqs <= 0) return;
  if (d.heads <= 0 || d.kv_heads <= 0 || d.heads % d.kv_heads != 0)
    throw std::invalid_argument("paged_attention: heads must be a multiple of kv_heads");
  if (m.max_q_len > 1 || !attn::decode_supported(d)) {
    attn::launch_prefill(d, q, m, kv, gate, gate_ld, out, stream);
    return;
  }
  const auto sp = attn::choose_splits(m.num_seqs, d.kv_heads, m.max_kv_len, m.max_blocks, device_info().sm_count);
  const size_t need = attn::partial_bytes(m.num_seqs, d.heads, d.head_dim, sp.splits);
  if (workspace == nullptr || workspace_bytes < need)
    throw std::invalid_argument("paged_attention: workspace of " + std::to_string(workspace_bytes) +
                                " bytes, decode step needs " + std::to_string(need));
  const bool fp8 = kv.dtype == KvDtype::Fp8E4m3;
  attn::DecodeArgs a{};
  a.q = q;
  a.cu_seqlens = m.cu_seqlens;
  a.positions = m.positions;
  a.block_table = m.block_table;
  a.kv = kv;
  // Partials: (m, l) pairs first, then the O rows (256-byte aligned).
  const size_t n_part = size_t(m.num_seqs) * d.heads * sp.splits;
  a.part_ml = static_cast<float*>(workspace);
  a.part_o = reinterpret_cast<float*>(static_cast<char*>(workspace) + ((n_part * 2 * sizeof(float) + 255) / 256) * 256);
  a.max_blocks = m.max_blocks;
  a.heads = d.heads;
  a.kv_heads = d.kv_heads;
  a.splits = sp.splits;
  a.blocks_per_split = sp.blocks_per_split;
  a.score_scale_log2 = (fp8 ? kv.k_scale : 1.f) * attn::kLog2e / std::sqrt(float(d.head_dim));
  switch (d.head_dim) {
    case 16: attn::launch_decode_d<16>(a, fp8, m.num_seqs, stream); break;
    case 32: attn::launch_decode_d<32>(a, fp8, m.num_seqs, stream); break;
    case 64: attn::launch_decode_d<64>(a, fp8, m.num_seqs, stream); break;
    case 128: attn::launch_decode_d<128>(a, fp8, m.num_seqs, stream); break;
    case 256: attn::launch_decode_d<256>(a, fp8, m.num_seqs, stream); break;
  }
  const int threads = std::max(32, std::min(256, d.head_dim));
  detail::launch_pdl(attn::combine_kernel, dim3(d.heads, m.num_seqs), dim3(threads), size_t(sp.splits) * 8, stream,
                     true, a.part_ml,
                     a.part_o, m.cu_seqlens, gate, gate_ld, out, d.heads, d.head_dim, sp.splits,
                     fp8 ? kv.v_scale : 1.f);
  GDN_CUDA_CHECK_LAUNCH();
}

}  // namespace gdn::cuda
