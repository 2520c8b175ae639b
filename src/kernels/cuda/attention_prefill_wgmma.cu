// Prefill attention on Hopper's warpgroup MMA (wgmma) for the 27B's shape: head_dim 256, BF16 KV
// cache. Same contract as the mma.sync kernel of attention_prefill.cu (varlen, paged, causal by
// position, sigmoid output gate), which stays the path for every other head_dim, FP8 caches and
// other GPUs.
//
// Why: the mma.sync kernel has every warp read the whole K and V tile from shared memory through
// ldmatrix (8 warps × 64 KB per 64-key tile), which bounds it near 230 TFLOP/s on the H100. A wgmma
// reads its B operand once per warpgroup straight from shared memory.
//
// CTA = (query head, 128 consecutive query tokens of one sequence); two consumer warpgroups of 64
// rows each + a producer warpgroup (one TMA thread; setmaxnreg moves its registers to the consumers),
// 384 threads, one CTA per SM (192 KB of shared memory):
//   * Q [128][256] and each 64-token K and V cache block land by TMA in 128-byte-swizzled
//     [64 rows][128 B] column blocks (4 per 256-wide row), K/V in two stages; the producer
//     refills a stage once both warpgroups released it (mbarrier, 8 warp arrivals), so the two
//     warpgroups never wait for each other and one's softmax overlaps the other's MMAs.
//   * S = Q·Kᵀ: 16 × wgmma m64n64k16 (both operands K-major in shared memory), fp32.
//   * Scale, causal mask by position, online softmax in the exp2 domain (rows g and g+8 of each
//     warp's 16; a quad shares a row), as the mma.sync kernel.
//   * O += P·V: P from registers (the S accumulator layout is the A-fragment layout), V N-major in
//     shared memory: 4 × wgmma m64n256k16; O [64][256] fp32 in 128 registers per thread.
// Tiles past a warpgroup's last position are skipped by it. The last, partial block of a sequence
// has rows nobody wrote (possibly NaN bit patterns): their scores are masked and their V rows
// zeroed in shared memory before P·V (0·NaN would poison O).
#include <cuda.h>

#include <cmath>
#include <cstdlib>
#include <cstring>

#include "kernels/cuda/attention_common.cuh"
#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/device.h"
#include "kernels/cuda/wgmma_ptx.cuh"

namespace gdn::cuda::attn {
namespace {

using detail::mbar_arrive;
using detail::mbar_expect_tx;
using detail::mbar_init;
using detail::mbar_wait;
using detail::tma_load_2d;

constexpr int kD = 256;
constexpr int kRows = 128;                        // query rows per CTA (2 warpgroups × 64)
constexpr int kConsumerThreads = 256;            // two warpgroups
constexpr int kThreads = kConsumerThreads + 128;  // + the producer warpgroup (one TMA thread)
// Registers per thread after setmaxnreg: the producer gives its share to the consumers (O alone is
// 128 fp32 registers); 128·kProducerRegs + 256·kConsumerRegs ≤ 65536.
constexpr int kProducerRegs = 40, kConsumerRegs = 232;
constexpr uint32_t kColBlock = 64 * 128;          // [64 rows][128 B], swizzled: 8 KB
constexpr uint32_t kTile = 4 * kColBlock;         // [64 rows][256] BF16: 32 KB
constexpr uint32_t kSmemQ = 0;                    // 2 × kTile (one per warpgroup)
constexpr uint32_t kSmemK = 2 * kTile;            // 2 stages
constexpr uint32_t kSmemV = kSmemK + 2 * kTile;   // 2 stages
constexpr uint32_t kSmemBar = kSmemV + 2 * kTile;  // full[2], empty[2], q
constexpr size_t kSmemBytes = size_t(kSmemBar) + 64 + 1024;  // + alignment slack
constexpr int kEmptyArrivals = kConsumerThreads / 32;

struct WgmmaArgs {
  const int32_t* cu_seqlens;
  const int32_t* positions;
  const int32_t* block_table;
  const float* gate;
  int64_t gate_ld;
  __nv_bfloat16* out;
  int num_seqs, max_blocks, heads, kv_heads, num_blocks;
  float score_scale_log2;  // 1/√D · log2(e)
};

__global__ void __launch_bounds__(kThreads, 1)
    prefill_wgmma_kernel(const __grid_constant__ CUtensorMap qmap, const __grid_constant__ CUtensorMap kmap,
                         const __grid_constant__ CUtensorMap vmap, WgmmaArgs a) {
  extern __shared__ unsigned char smem_raw[];
  unsigned char* smem = reinterpret_cast<unsigned char*>((reinterpret_cast<uintptr_t>(smem_raw) + 1023) & ~uintptr_t(1023));
  const uint32_t sbase = detail::smem_u32(smem);
  const uint32_t bar0 = sbase + kSmemBar;
  auto full = [&](int s) { return bar0 + 8 * s; };
  auto empty = [&](int s) { return bar0 + 16 + 8 * s; };
  const uint32_t qbar = bar0 + 32;
  __shared__ int sh_seq, sh_tile, sh_max_pos, sh_wg_max[2];

  const int tid = threadIdx.x, wg = tid >> 7, warp = (tid >> 5) & 3, lane = tid & 31;
  const int h = blockIdx.x;
  if (tid == 0) {
    const int2 st = prefill_tile(a.cu_seqlens, a.num_seqs, kRows, int(blockIdx.y));
    sh_seq = st.x;
    sh_tile = st.y;
    sh_max_pos = -1;
    sh_wg_max[0] = sh_wg_max[1] = -1;
    mbar_init(full(0), 1);
    mbar_init(full(1), 1);
    mbar_init(empty(0), kEmptyArrivals);
    mbar_init(empty(1), kEmptyArrivals);
    mbar_init(qbar, 1);
    asm volatile("fence.mbarrier_init.release.cluster;" ::: "memory");
    asm volatile("fence.proxy.async.shared::cta;" ::: "memory");
  }
  __syncthreads();
  const int seq = sh_seq;
  if (seq < 0) return;
  const int t0 = a.cu_seqlens[seq] + sh_tile * kRows;
  const int n_rows = min(kRows, a.cu_seqlens[seq + 1] - t0);
  const int kvh = h / (a.heads / a.kv_heads);
  const int32_t* table = a.block_table + size_t(seq) * a.max_blocks;

  // Positions of this thread's rows (g and g+8 of its warp's 16); −1 = no query (and the producer).
  const bool consumer = tid < kConsumerThreads;
  const int row_lo = 64 * wg + 16 * warp + (lane >> 2), row_hi = row_lo + 8;
  const int pos_lo = consumer && row_lo < n_rows ? a.positions[t0 + row_lo] : -1;
  const int pos_hi = consumer && row_hi < n_rows ? a.positions[t0 + row_hi] : -1;
  int mp = max(pos_lo, pos_hi);
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) mp = max(mp, __shfl_xor_sync(0xffffffffu, mp, o));
  if (lane == 0 && consumer) {
    atomicMax(&sh_wg_max[wg], mp);
    atomicMax(&sh_max_pos, mp);
  }
  __syncthreads();
  const int n_keys = sh_max_pos + 1, wg_max = consumer ? sh_wg_max[wg] : -1;
  const int n_tiles = min((n_keys + kBlk - 1) / kBlk, a.max_blocks);

  auto issue_tile = [&](int j) {  // the producer: K and V of cache block j into stage j & 1
    const int s = j & 1;
    const int row = (table_block(table, j, a.num_blocks) * a.kv_heads + kvh) * kBlk;
    mbar_expect_tx(full(s), 2 * kTile);
#pragma unroll
    for (int cb = 0; cb < 4; ++cb) {
      tma_load_2d(sbase + kSmemK + s * kTile + cb * kColBlock, &kmap, cb * 128, row, full(s));
      tma_load_2d(sbase + kSmemV + s * kTile + cb * kColBlock, &vmap, cb * 128, row, full(s));
    }
  };
  if (!consumer) {  // the producer warpgroup: Q, then every tile as soon as its stage is free
    asm volatile("setmaxnreg.dec.sync.aligned.u32 %0;\n" ::"n"(kProducerRegs));
    if (tid == kConsumerThreads) {
      mbar_expect_tx(qbar, 2 * kTile);
#pragma unroll
      for (int w = 0; w < 2; ++w)
#pragma unroll
        for (int cb = 0; cb < 4; ++cb)
          tma_load_2d(sbase + kSmemQ + w * kTile + cb * kColBlock, &qmap, h * (kD * 2) + cb * 128, t0 + 64 * w, qbar);
      for (int j = 0; j < n_tiles; ++j) {
        if (j >= 2) mbar_wait(empty(j & 1), ((j - 2) >> 1) & 1);  // both warpgroups are done with tile j − 2
        issue_tile(j);
      }
    }
    return;
  }
  asm volatile("setmaxnreg.inc.sync.aligned.u32 %0;\n" ::"n"(kConsumerRegs));

  float o[128];
#pragma unroll
  for (int i = 0; i < 128; ++i) o[i] = 0.f;
  RowSoftmax sm;
  mbar_wait(qbar, 0);
  const uint32_t q_s = sbase + kSmemQ + wg * kTile;

  for (int j = 0; j < n_tiles; ++j) {
    const int s = j & 1;
    mbar_wait(full(s), (j >> 1) & 1);
    const int key0 = j * kBlk;
    if (key0 <= wg_max) {  // else every key of the tile is in this warpgroup's future
      const uint32_t k_s = sbase + kSmemK + s * kTile, v_s = sbase + kSmemV + s * kTile;
      const int valid = min(kBlk, n_keys - key0);
      if (valid < kBlk) {  // rows past the sequence's last key: zero V (scores are masked below)
        for (int e = tid & 127; e < 4 * (kBlk - valid) * 8; e += 128) {
          const int cb = e / ((kBlk - valid) * 8), rest = e % ((kBlk - valid) * 8);
          const int r = valid + rest / 8, c16 = rest % 8;
          *reinterpret_cast<uint4*>(smem + kSmemV + s * kTile + cb * kColBlock + r * 128 + c16 * 16) = make_uint4(0, 0, 0, 0);
        }
        asm volatile("fence.proxy.async.shared::cta;" ::: "memory");
        asm volatile("bar.sync %0, 128;" ::"r"(1 + wg) : "memory");
      }
      // S = Q·Kᵀ (64 × 64 per warpgroup; the m64n64 fragment is the m16n8 one of each warp).
      float sacc[8][4];
#pragma unroll
      for (int n = 0; n < 8; ++n) sacc[n][0] = sacc[n][1] = sacc[n][2] = sacc[n][3] = 0.f;
      detail::wgmma_fence();
#pragma unroll
      for (int kk = 0; kk < kD / 16; ++kk) {
        const uint32_t off = (kk >> 2) * kColBlock + (kk & 3) * 32;
        detail::wgmma_bf16<64>(reinterpret_cast<float(&)[32]>(sacc), detail::sw128_desc(q_s + off),
                               detail::sw128_desc(k_s + off));
      }
      detail::wgmma_commit();
      detail::wgmma_wait0();
      // Scale, causal mask, online softmax; O rescaled (element 4·i + e: row g, + 8 if e & 2).
      const float2 alpha = softmax_tile(sacc, key0, lane, pos_lo, pos_hi, a.score_scale_log2, sm);
#pragma unroll
      for (int i = 0; i < 32; ++i) {
        o[4 * i + 0] *= alpha.x;
        o[4 * i + 1] *= alpha.x;
        o[4 * i + 2] *= alpha.y;
        o[4 * i + 3] *= alpha.y;
      }
      // O += P·V: k-step kk covers keys 16·kk.. .
      uint32_t pa[4][4];
#pragma unroll
      for (int kk = 0; kk < 4; ++kk) p_fragment(sacc, kk, pa[kk]);
      detail::wgmma_fence();
#pragma unroll
      for (int kk = 0; kk < 4; ++kk) detail::wgmma_m64n256k16_rs(o, pa[kk], detail::sw128_desc_mn(v_s + kk * 2048, kColBlock));
      detail::wgmma_commit();
      detail::wgmma_wait0();
    }
    if (lane == 0) mbar_arrive(empty(s));  // this warp no longer reads stage s
  }

  // Normalise, output gate, bf16 out [T, heads·D]. Element 4·i + e: row g (+8 if e & 2), column
  // 8·i + 2·(lane & 3) + (e & 1).
  const float2 inv2 = softmax_norm(sm, 1.f);
  store_gated_rows<kD>([&](int i, int half, int e) { return o[4 * i + 2 * half + e]; }, inv2, a.gate, a.gate_ld,
                       a.out, a.heads, h, t0, n_rows, row_lo, row_hi, lane);
}

int g_mode = -1;  // set_prefill_wgmma_mode

bool wgmma_prefill_enabled() {
  static const bool hopper = device_info().cc_major == 9;
  static const bool env_on = [] {
    const char* e = std::getenv("GDN_ATTN_PREFILL_WGMMA");  // 0: the mma.sync kernel (A/B runs)
    return !(e && std::strcmp(e, "0") == 0);
  }();
  return hopper && (g_mode >= 0 ? g_mode == 1 : env_on);
}

}  // namespace

bool launch_prefill_wgmma(const AttnDims& d, const __nv_bfloat16* q, const StepMeta& m, const KvLayerView& kv,
                          const float* gate, int64_t gate_ld, __nv_bfloat16* out, cudaStream_t stream) {
  if (d.head_dim != kD || kv.dtype != KvDtype::Bf16 || !wgmma_prefill_enabled() || m.num_tokens <= 0 ||
      (reinterpret_cast<uintptr_t>(q) & 15) || (reinterpret_cast<uintptr_t>(kv.k) & 15) ||
      (reinterpret_cast<uintptr_t>(kv.v) & 15))
    return false;
  static bool attr_set = false;
  if (!attr_set) {
    GDN_CUDA_CHECK(cudaFuncSetAttribute(prefill_wgmma_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                        int(kSmemBytes)));
    attr_set = true;
  }
  const int64_t q_row_bytes = int64_t(d.heads) * kD * 2, kv_rows = int64_t(kv.num_blocks) * d.kv_heads * kBlk;
  const CUtensorMap qmap = detail::make_tma_map(q, m.num_tokens, q_row_bytes, q_row_bytes, 64, 128, true);
  const CUtensorMap kmap = detail::make_tma_map(kv.k, kv_rows, kD * 2, kD * 2, kBlk, 128, true);
  const CUtensorMap vmap = detail::make_tma_map(kv.v, kv_rows, kD * 2, kD * 2, kBlk, 128, true);
  WgmmaArgs a{};
  a.cu_seqlens = m.cu_seqlens;
  a.positions = m.positions;
  a.block_table = m.block_table;
  a.gate = gate;
  a.gate_ld = gate_ld;
  a.out = out;
  a.num_seqs = m.num_seqs;
  a.max_blocks = m.max_blocks;
  a.heads = d.heads;
  a.kv_heads = d.kv_heads;
  a.num_blocks = kv.num_blocks;
  a.score_scale_log2 = kLog2e / std::sqrt(float(kD));
  const int tiles = (m.num_tokens + kRows - 1) / kRows + m.num_seqs;
  prefill_wgmma_kernel<<<dim3(d.heads, tiles), kThreads, kSmemBytes, stream>>>(qmap, kmap, vmap, a);
  GDN_CUDA_CHECK_LAUNCH();
  return true;
}

}  // namespace gdn::cuda::attn

namespace gdn::cuda {
void set_prefill_wgmma_mode(int mode) { attn::g_mode = mode; }
}  // namespace gdn::cuda
