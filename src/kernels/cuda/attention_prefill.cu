// Prefill attention over the paged cache: FlashAttention-2-style tiles on tensor cores.
//
// CTA = (one query head, one tile of kRows consecutive query tokens of ONE sequence). Each warp owns
// 16 query rows; K/V tiles are whole 64-token cache blocks, staged with cp.async double buffering
// (FP8 blocks land as raw codes and are widened to exact bf16 codes in shared memory; k_scale goes
// into the softmax scale, v_scale into the final normalisation). S = Q·Kᵀ and O += P·V use
// mma.sync m16n8k16 (bf16, fp32 accumulate) with an online softmax in the exp2 domain.
//
// Varlen: grid.y enumerates the query tiles of all sequences (an upper bound ceil(T/kRows) + S from
// host fields; surplus CTAs exit), resolved on the device from cu_seqlens. Within a sequence tiles
// run last-first, so the longest causal rows start first. Each query row attends cached positions
// [0, positions[t]] of its sequence; the K/V tiles needed are those up to the tile's largest
// position (rows past it are zero-filled, and masked by position), so chunks that start mid-sequence
// and mixed decode/prefill steps need nothing special. This kernel is also the fallback for every
// step the split-KV decode kernel does not take. The 27B's shape with a BF16 cache runs on the
// wgmma kernel of attention_prefill_wgmma.cu instead (on Hopper).
#include <cmath>
#include <stdexcept>
#include <string>

#include "kernels/cuda/attention_common.cuh"
#include "kernels/cuda/cuda_check.h"

namespace gdn::cuda::attn {
namespace {

struct PrefillArgs {
  const __nv_bfloat16* q;
  const float* gate;
  int64_t gate_ld;
  __nv_bfloat16* out;
  const int32_t* cu_seqlens;
  const int32_t* positions;
  const int32_t* block_table;
  KvLayerView kv;
  int num_seqs, max_blocks, heads, kv_heads;
  float score_scale_log2;  // 1/√D · k_scale · log2(e)
};

template <int D, int kWarps, bool kFp8>
struct PrefillSmem {
  static constexpr int kRows = 16 * kWarps;
  static constexpr int kStride = smem_stride<D>();
  static constexpr size_t kQBytes = size_t(kRows) * kStride * 2;
  static constexpr size_t kTileBytes = size_t(kBlk) * kStride * 2;  // one bf16 K or V tile
  static constexpr size_t kRawBytes = size_t(kBlk) * D;              // one FP8 K or V tile
  // BF16: Q | K0 V0 | K1 V1.  FP8: Q | K V (bf16) | raw K0 V0 | raw K1 V1.
  static constexpr size_t kBytes = kFp8 ? kQBytes + 2 * kTileBytes + 4 * kRawBytes : kQBytes + 4 * kTileBytes;
};

template <int D, int kWarps, bool kFp8>
__global__ void __launch_bounds__(kWarps * 32, 1) prefill_kernel(PrefillArgs a) {
  using Smem = PrefillSmem<D, kWarps, kFp8>;
  constexpr int kThreads = kWarps * 32, kRows = Smem::kRows, kStride = Smem::kStride;
  extern __shared__ __align__(128) unsigned char smem[];
  __shared__ int sh_seq, sh_tile, sh_max_pos;
  __nv_bfloat16* q_s = reinterpret_cast<__nv_bfloat16*>(smem);
  unsigned char* kv_base = smem + Smem::kQBytes;

  const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;
  const int h = blockIdx.x;
  // Which (sequence, tile) this CTA is: tiles of sequence 0 first, each sequence's last tile first.
  if (tid == 0) {
    const int2 st = prefill_tile(a.cu_seqlens, a.num_seqs, kRows, int(blockIdx.y));
    sh_seq = st.x;
    sh_tile = st.y;
    sh_max_pos = -1;
  }
  __syncthreads();
  const int seq = sh_seq;
  if (seq < 0) return;
  const int t0 = a.cu_seqlens[seq] + sh_tile * kRows;
  const int n_rows = min(kRows, a.cu_seqlens[seq + 1] - t0);
  const int kvh = h / (a.heads / a.kv_heads);

  // Q tile (rows past the sequence zero-filled) and the largest query position of the tile.
  for (int c = tid; c < kRows * (D / 8); c += kThreads) {
    const int r = c / (D / 8), col = c % (D / 8);
    const bool valid = r < n_rows;
    const __nv_bfloat16* src = a.q + ((size_t(valid ? t0 + r : t0)) * a.heads + h) * D + col * 8;
    cp_async16(q_s + r * kStride + col * 8, src, valid);
  }
  cp_async_commit();
  for (int r = tid; r < n_rows; r += kThreads) atomicMax(&sh_max_pos, a.positions[t0 + r]);
  // Positions of this thread's two rows (g and g+8 of its warp's 16); −1 = no query.
  const int row_lo = warp * 16 + (lane >> 2), row_hi = row_lo + 8;
  const int pos_lo = row_lo < n_rows ? a.positions[t0 + row_lo] : -1;
  const int pos_hi = row_hi < n_rows ? a.positions[t0 + row_hi] : -1;
  int warp_max_pos = max(pos_lo, pos_hi);
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) warp_max_pos = max(warp_max_pos, __shfl_xor_sync(0xffffffffu, warp_max_pos, o));
  __syncthreads();
  const int n_keys = sh_max_pos + 1;
  const int n_tiles = min((n_keys + kBlk - 1) / kBlk, a.max_blocks);
  const int32_t* table = a.block_table + size_t(seq) * a.max_blocks;

  auto stage_k = [&](int st) -> void* {
    return kFp8 ? kv_base + 2 * Smem::kTileBytes + (2 * st) * Smem::kRawBytes : kv_base + (2 * st) * Smem::kTileBytes;
  };
  auto stage_v = [&](int st) -> void* {
    return kFp8 ? kv_base + 2 * Smem::kTileBytes + (2 * st + 1) * Smem::kRawBytes
                : kv_base + (2 * st + 1) * Smem::kTileBytes;
  };
  auto issue = [&](int j) {
    const int blk = table_block(table, j, a.kv.num_blocks);
    issue_kv_block<D, kFp8, kThreads>(a.kv, a.kv_heads, blk, kvh, min(kBlk, n_keys - j * kBlk), stage_k(j & 1),
                                      stage_v(j & 1), tid);
  };

  float o[D / 8][4];
#pragma unroll
  for (int i = 0; i < D / 8; ++i) o[i][0] = o[i][1] = o[i][2] = o[i][3] = 0.f;
  RowSoftmax sm;

  if (n_tiles > 0) issue(0);
  cp_async_commit();
  for (int j = 0; j < n_tiles; ++j) {
    if (j + 1 < n_tiles) issue(j + 1);
    cp_async_commit();
    cp_async_wait<1>();
    __syncthreads();
    const __nv_bfloat16* k_s;
    const __nv_bfloat16* v_s;
    if constexpr (kFp8) {
      __nv_bfloat16* kb = reinterpret_cast<__nv_bfloat16*>(kv_base);
      __nv_bfloat16* vb = reinterpret_cast<__nv_bfloat16*>(kv_base + Smem::kTileBytes);
      convert_fp8_tile<D, kThreads>(static_cast<const uint8_t*>(stage_k(j & 1)), kb, tid);
      convert_fp8_tile<D, kThreads>(static_cast<const uint8_t*>(stage_v(j & 1)), vb, tid);
      __syncthreads();
      k_s = kb;
      v_s = vb;
    } else {
      k_s = static_cast<const __nv_bfloat16*>(stage_k(j & 1));
      v_s = static_cast<const __nv_bfloat16*>(stage_v(j & 1));
    }
    const int key0 = j * kBlk;
    if (warp_max_pos >= key0) {  // else every key of this tile is in this warp's future
      float s[8][4];
#pragma unroll
      for (int n = 0; n < 8; ++n) s[n][0] = s[n][1] = s[n][2] = s[n][3] = 0.f;
#pragma unroll
      for (int kk = 0; kk < D / 16; ++kk) {
        uint32_t qa[4];
        load_a_frag<D>(qa, q_s, warp * 16, kk, lane);
#pragma unroll
        for (int np = 0; np < 4; ++np) {
          uint32_t kb[4];
          load_k_frag<D>(kb, k_s, np * 16, kk, lane);
          mma_bf16(s[2 * np], qa, kb[0], kb[1]);
          mma_bf16(s[2 * np + 1], qa, kb[2], kb[3]);
        }
      }
      // Scale, causal mask, online softmax; O rescaled.
      const float2 alpha = softmax_tile(s, key0, lane, pos_lo, pos_hi, a.score_scale_log2, sm);
#pragma unroll
      for (int i = 0; i < D / 8; ++i) {
        o[i][0] *= alpha.x;
        o[i][1] *= alpha.x;
        o[i][2] *= alpha.y;
        o[i][3] *= alpha.y;
      }
      // O += P·V, P straight from the score accumulators.
#pragma unroll
      for (int kk = 0; kk < 4; ++kk) {
        uint32_t pa[4];
        p_fragment(s, kk, pa);
#pragma unroll
        for (int dp = 0; dp < D / 16; ++dp) {
          uint32_t vb[4];
          load_v_frag<D>(vb, v_s, kk * 16, dp * 16, lane);
          mma_bf16(o[2 * dp], pa, vb[0], vb[1]);
          mma_bf16(o[2 * dp + 1], pa, vb[2], vb[3]);
        }
      }
    }
    __syncthreads();  // the stage just read is the one the next iteration's copy overwrites
  }
  cp_async_wait<0>();

  // Normalise, v_scale, output gate, bf16 out [T, heads·D].
  const float2 inv2 = softmax_norm(sm, a.kv.v_scale);
  store_gated_rows<D>([&](int i, int half, int e) { return o[i][2 * half + e]; }, inv2, a.gate, a.gate_ld, a.out,
                      a.heads, h, t0, n_rows, row_lo, row_hi, lane);
}

template <int D, int kWarps, bool kFp8>
void launch_prefill_t(const PrefillArgs& a, int num_tokens, cudaStream_t stream) {
  using Smem = PrefillSmem<D, kWarps, kFp8>;
  auto kernel = prefill_kernel<D, kWarps, kFp8>;
  static bool attr_set = false;  // per instantiation; a repeated call is harmless
  if (!attr_set) {
    GDN_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(Smem::kBytes)));
    attr_set = true;
  }
  const int tiles = (num_tokens + Smem::kRows - 1) / Smem::kRows + a.num_seqs;
  dim3 grid(a.heads, tiles);
  kernel<<<grid, kWarps * 32, Smem::kBytes, stream>>>(a);
  GDN_CUDA_CHECK_LAUNCH();
}

template <int D>
void launch_prefill_d(const PrefillArgs& a, bool fp8, int num_tokens, cudaStream_t stream) {
  // 128-row tiles for the 27B's D = 256 (halves the K/V smem traffic per FLOP; 203 KB smem),
  // 64 rows for the small head dims.
  constexpr int kWarps = D >= 128 ? 8 : 4;
  if (fp8)
    launch_prefill_t<D, kWarps, true>(a, num_tokens, stream);
  else
    launch_prefill_t<D, kWarps, false>(a, num_tokens, stream);
}

}  // namespace

void launch_prefill(const AttnDims& d, const __nv_bfloat16* q, const StepMeta& m, const KvLayerView& kv,
                    const float* gate, int64_t gate_ld, __nv_bfloat16* out, cudaStream_t stream) {
  if (launch_prefill_wgmma(d, q, m, kv, gate, gate_ld, out, stream)) return;
  PrefillArgs a{};
  a.q = q;
  a.gate = gate;
  a.gate_ld = gate_ld;
  a.out = out;
  a.cu_seqlens = m.cu_seqlens;
  a.positions = m.positions;
  a.block_table = m.block_table;
  a.kv = kv;
  a.num_seqs = m.num_seqs;
  a.max_blocks = m.max_blocks;
  a.heads = d.heads;
  a.kv_heads = d.kv_heads;
  const float k_scale = kv.dtype == KvDtype::Fp8E4m3 ? kv.k_scale : 1.f;
  a.score_scale_log2 = k_scale * kLog2e / std::sqrt(float(d.head_dim));
  if (kv.dtype != KvDtype::Fp8E4m3) a.kv.v_scale = 1.f;
  const bool fp8 = kv.dtype == KvDtype::Fp8E4m3;
  switch (d.head_dim) {
    case 16: launch_prefill_d<16>(a, fp8, m.num_tokens, stream); break;
    case 32: launch_prefill_d<32>(a, fp8, m.num_tokens, stream); break;
    case 64: launch_prefill_d<64>(a, fp8, m.num_tokens, stream); break;
    case 128: launch_prefill_d<128>(a, fp8, m.num_tokens, stream); break;
    case 256: launch_prefill_d<256>(a, fp8, m.num_tokens, stream); break;
    default:
      throw std::invalid_argument("paged_attention: head_dim " + std::to_string(d.head_dim) +
                                  " not instantiated (16, 32, 64, 128, 256)");
  }
}

}  // namespace gdn::cuda::attn
