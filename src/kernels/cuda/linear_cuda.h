// GPU linear layers (issue 5): y[M, N] = x[M, K] · Wᵀ for every weight layout gdnserve loads,
// with the numerics the checkpoint declares (kernels/cpu is the reference):
//   BF16 weight × BF16 activations (F16/F32 dense weights are rounded to BF16 at upload);
//   FP8 per-channel weight × per-token dynamic FP8 activations (W8A8; or BF16 activations, W8A16);
//   FP8 block-128 weight × per-token-per-128-group dynamic FP8 activations (or W8A16);
//   NVFP4 weight (E2M1 + E4M3 16-block scales + global) × NVFP4 activations (static global) or BF16.
// Activation quantization reproduces kernels/cpu/quant.cpp bit for bit (same scale formulas, IEEE
// division, RNE), so GPU and CPU see identical quantized operands and differ only in fp32
// summation order.
//
// Two paths chosen by M (LinearPath::Auto, crossovers measured on H100 in bench/results/gemm-h100.json):
//  * small M (≤ small_m_limit(): decode): our weight-streaming tensor-core kernel (mma.sync) with a
//    persistent stream-K schedule (every resident warp takes an equal share of the (row tile,
//    128-byte K group) iterations), 16-byte cp.async loads into a per-thread shared-memory ring
//    (2-3 groups in flight), a deterministic last-warp reduction of split row tiles (no atomics on
//    y), activation quantization in a pre-kernel overlapped by programmatic dependent launch.
//    Default for FP8 W8A8 up to M = 16, NVFP4 up to 64, weight-only FP8 at every M. Two Hopper
//    variants on wgmma: W8A8 FP8 (linear_wgmma.cu, LinearPath::AutoFast) and NVFP4 from 4 tokens
//    (linear_nvfp4_wgmma.cu: the weights decoded to BF16 once per CTA; exact like mma.sync).
//  * large M (prefill): cuBLASLt — BF16 (also the BF16 default at small M: its GEMV was faster);
//    FP8 with OUTER_VEC_32F (per-channel × per-token) or BLK128x128_32F weight × VEC128_32F
//    activation scales; NVFP4 dequantized to BF16 slices (exact: e2m1 × e4m3 fits BF16) + BF16
//    GEMM with the global scales in alpha. Weight-only FP8 (no FP8×BF16 in cuBLASLt) and problems
//    cuBLASLt declines run the small-M kernel per 64-token slice.
// Accuracy: every path except cuBLASLt's FP8 GEMMs matches the CPU reference to fp32 summation
// noise (≤ 1e-6 relative per token row measured); cuBLASLt FP8 is ~2.4e-4 off (its FP8 tensor-core
// accumulation; see tests/gpu/gpu_test_util.h) — LinearPath::SmallM is exact at any M.
//
// Threading: all calls are asynchronous on the given stream; a DeviceLinear is immutable after
// upload and may be used from several streams, each with its own workspace.
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <span>

#include "core/quant_types.h"
#include "kernels/cpu/linear.h"

namespace gdn::cuda {

class DeviceArena;

// What the kernels read (decided at upload from the host layout).
enum class DeviceWeightKind : uint8_t {
  Bf16,   // [rows_pad, cols_pad] BF16
  Fp8,    // [rows_pad, cols_pad] E4M3 codes as stored (K-major rows)
  Nvfp4,  // [rows_pad, cols_pad/2] E2M1 codes, 8 elements e0..e7 per 32-bit word, bits placed so
          // that the BF16 pair (e_2j, e_2j+1) is a rotate and a mask away (nvfp4_device_word).
};

// Device NVFP4 word: pair j's BF16 bits (low half: m→6, e0→7, e1→8, sign→15; high half +16) are
// rotl(w, 0 | 4 | 10) & 0x81C081C0 for j = 0 | 1 | 2, and for j = 3 rotl(w, 6) & 0x80C080C0 |
// rotl(w, 30) & 0x01000100. `natural` holds e_2k in the low and e_2k+1 in the high nibble of byte
// k (the checkpoint's packing); `negate` flips every sign (a block with a negative scale is stored
// as |s| with negated codes: the same products).
uint32_t nvfp4_device_word(uint32_t natural, bool negate);
// Device block-scale byte b of an E4M3 code: BF16 bits (b << 4) + 0x7600 are s·2¹¹⁸ exactly (b =
// |code| + 16 for normal codes, a table for the 7 subnormals, 0xA0 → −0 for zero, 0x9C → NaN);
// the sign goes into the codes (nvfp4_device_word).
uint8_t nvfp4_device_scale(uint8_t code);

// A weight resident on the GPU. Rows are padded to a multiple of 32 and columns to the kernels'
// 128-byte K group (64 BF16, 128 FP8, 256 NVFP4 elements) with zeros, so no kernel needs a K tail;
// the 27B shapes need no padding.
struct DeviceLinear {
  LinearScheme scheme;                   // act == None: weight-only (W8A16 / W4A16)
  DeviceWeightKind kind = DeviceWeightKind::Bf16;
  int64_t rows = 0, cols = 0;            // N, K (logical)
  int64_t rows_pad = 0, cols_pad = 0;    // storage
  const void* weight = nullptr;
  const float* scales = nullptr;         // Fp8PerChannel: [rows_pad]; Fp8Block128: [⌈N/128⌉, scale_ld] FP32
  int64_t scale_ld = 0;                  // ⌈K/128⌉ rounded up to 4 (cuBLASLt BLK128x128 stride rule)
  const uint8_t* block_scales = nullptr; // NVFP4: [rows_pad, cols_pad/16] nvfp4_device_scale bytes;
                                         // within each 128-byte K group's 16, position 4t+2c+b holds
                                         // natural block 8c+2t+b (one 32-bit load per row and group)
  float nvfp4_weight_divisor = 1.f;      // W = e2m1 · s_block / divisor
  float nvfp4_input_global = 1.f;        // G_x
  // Fused weights (upload_fused_linear): part p owns output rows [part_begin[p], part_begin[p+1]),
  // i.e. columns of y. parts == 1 for a plain upload.
  static constexpr int kMaxParts = 8;
  int parts = 1;
  int64_t part_begin[kMaxParts + 1] = {};
  float part_weight_divisor[kMaxParts] = {};  // NVFP4: each part's global divisor
  // NVFP4 fused from parts with different global divisors: [rows_pad] epilogue multiplier per output
  // row (256 / divisor of its part [/ G_x]); nullptr = the scalar nvfp4_weight_divisor for all rows.
  const float* nvfp4_row_alpha = nullptr;
  int64_t weight_bytes() const;          // bytes one call streams (codes + scales, padded)
  int64_t scale_count() const;           // FP32 scales stored (per-channel or block-128), 0 otherwise
};

// The device layout upload_linear(host) produces (kind, padding, scale stride, globals), with null
// pointers; host.data is not read.
DeviceLinear device_layout(const MatrixRef& host);

// --load-format dummy: a weight with the geometry and scheme of `shape` (its data is not read;
// NVFP4 globals are taken from shape.quant), filled on the GPU with random codes of a plausible
// magnitude (entries ~ U(−1, 1)·√(3/K)·amp, finite, no NaN codes) and matching scales. Deterministic
// in seed. Same arena bytes as device_bytes_for(shape).
DeviceLinear random_linear(const MatrixRef& shape, DeviceArena& arena, cudaStream_t stream, uint64_t seed,
                           float amp = 1.f);

// Device bytes (arena) one upload of `host` takes, alignment included.
size_t device_bytes_for(const MatrixRef& host);

// Progress of a multi-tensor upload, printed to `out` at most every 0.5 s and at the end:
//   [upload] 12.41 / 26.93 GB  9.87 GB/s  ETA 1.5 s
class UploadProgress {
 public:
  explicit UploadProgress(int64_t total_bytes, std::FILE* out = stderr);
  void add(int64_t bytes);
  void finish();  // final line with the average rate
  int64_t done() const { return done_; }

 private:
  void print(bool final_line);
  int64_t total_, done_ = 0;
  std::FILE* out_;
  std::chrono::steady_clock::time_point start_, last_print_;
};

// Copies host weights (mmap'd checkpoint) to the GPU through pinned staging buffers, converting what
// the kernels need on the way: F16/F32 dense → BF16, BF16/F16 scales → FP32 (already FP32 in
// QuantInfo), padding, NVFP4 nibble and scale permutation. Copies overlap the host-side conversion
// of the next chunk (two staging buffers). Not thread-safe.
class Uploader {
 public:
  Uploader(DeviceArena& arena, cudaStream_t stream, UploadProgress* progress = nullptr,
           size_t staging_bytes = size_t(64) << 20);
  ~Uploader();
  Uploader(const Uploader&) = delete;
  Uploader& operator=(const Uploader&) = delete;
  DeviceLinear linear(const MatrixRef& host);
  void sync();  // waits for every copy issued so far

 private:
  void copy(void* dst, size_t bytes, const std::function<void(uint8_t* buf, size_t off, size_t n)>& fill);
  DeviceArena& arena_;
  cudaStream_t stream_;
  UploadProgress* progress_;
  size_t staging_bytes_;
  uint8_t* staging_[2] = {nullptr, nullptr};
  cudaEvent_t done_[2] = {nullptr, nullptr};
  int next_ = 0;
};

// One weight, synchronously with respect to the host buffer.
DeviceLinear upload_linear(const MatrixRef& host, DeviceArena& arena, cudaStream_t stream);

// Several weights with the same K (and dtype, scheme) concatenated along the output dimension into
// ONE DeviceLinear (q|k|v, gate|up, in_proj_qkv|in_proj_z), so they run as one GEMM: y's columns
// [part_begin[p], part_begin[p+1]) are part p's outputs (formats.md §11). Rules, else InputError:
// same cols, dtype and scheme (weight format and activation quantization) for all parts; at most
// DeviceLinear::kMaxParts parts; FP8 block-128: every part's rows a multiple of 128 (the block-scale
// rows are concatenated); NVFP4: equal input global G_x (the parts read the same input), the weight
// global divisors may differ (then a per-row alpha, nvfp4_row_alpha, is uploaded; each output row
// gets exactly the multiplier its unfused part would). Per-channel scales and NVFP4 block scales are
// concatenated by row. Each part's outputs equal uploading that part alone up to fp32 summation
// order (the small-M split and cuBLASLt's algorithm depend on the total N). Builds the concatenation in host memory
// first (one extra host copy of the fused weight). Synchronous like upload_linear.
DeviceLinear upload_fused_linear(std::span<const MatrixRef> parts, DeviceArena& arena, cudaStream_t stream);
// Device bytes upload_fused_linear(parts) takes.
size_t device_bytes_for_fused(std::span<const MatrixRef> parts);

// AutoFast: like Auto, but W8A8 FP8 at M ≤ 64 may use the native FP8 tensor-core decode kernel
// (wgmma, linear_wgmma.cu) whose FP8 accumulation is ~2.5e-4 relative off the reference — the same
// precision as cuBLASLt's FP8 GEMMs — and larger M runs cuBLASLt's FP8 GEMM with fast accumulation
// (the tensor cores' own accumulator over the whole K, as vLLM does). The GPU model uses it;
// GDN_FP8_WGMMA=0 / GDN_LT_FAST_ACCUM=0 turn the two off.
enum class LinearPath { Auto, SmallM, LargeM, AutoFast };

// M up to which Auto takes the small-M kernel for this weight.
int64_t small_m_limit(const DeviceLinear& w);

// Scratch for activation quantization, split-K partials and counters, the NVFP4 dequantized slice
// and cuBLASLt, sized by linear_workspace_bytes(w, max_m) (take the max over the weights a stream
// uses). It must be zeroed once before first use (linear_workspace_init); every call leaves the
// split-K counters at zero again. One workspace per stream: calls sharing one must be ordered.
struct LinearWorkspace {
  void* ptr = nullptr;
  size_t bytes = 0;
};
size_t linear_workspace_bytes(const DeviceLinear& w, int64_t max_m);
void linear_workspace_init(LinearWorkspace ws, cudaStream_t stream);

// Activations already quantized per token to FP8 E4M3 (ActQuant::Fp8PerToken) by the op that
// produced them (ops_cuda.h: add_rmsnorm, swiglu, gdn_gated_rmsnorm), with linear_forward's own
// numerics: codes [M][ld] of bf16(x) / s, zero in [K, kpad); scales s [M].
struct Fp8TokenActs {
  uint8_t* codes = nullptr;
  float* scales = nullptr;
  int64_t ld = 0;    // bytes per row: a multiple of 16, ≥ kpad
  int64_t kpad = 0;  // the consumer's cols_pad
  explicit operator bool() const { return codes != nullptr; }
};
// Throws CudaError (naming `what`) unless q can take a row of `cols` values.
void check_fp8_token_out(const Fp8TokenActs& q, int64_t cols, const char* what);

// y[M, N] (fp32, row-major) = quantize_activations(x[M, K] bf16, row-major) · dequant(W)ᵀ.
// x and y must be 16-byte aligned. Throws CudaError on a CUDA/cuBLASLt failure or a workspace too
// small for M.
void linear_forward(const DeviceLinear& w, const __nv_bfloat16* x, int64_t M, float* y, LinearWorkspace ws,
                    cudaStream_t stream, LinearPath path = LinearPath::Auto);
// The same for x already quantized (w: FP8 weights with ActQuant::Fp8PerToken; x.kpad ==
// w.cols_pad): identical results to linear_forward on the BF16 values the codes came from.
void linear_forward(const DeviceLinear& w, const Fp8TokenActs& x, int64_t M, float* y, LinearWorkspace ws,
                    cudaStream_t stream, LinearPath path = LinearPath::Auto);
// Whether w takes per-token FP8 activations (the producers can then quantize for it).
inline bool takes_fp8_token_acts(const DeviceLinear& w) {
  return w.kind == DeviceWeightKind::Fp8 && w.scheme.act == ActQuant::Fp8PerToken;
}

// Activations quantized to NVFP4 by the op that produced them (ops_cuda.h: add_rmsnorm, swiglu,
// gdn_gated_rmsnorm) for a weight with ActQuant::Nvfp4: per 16-block the BF16 values q·s with the
// static global scale gx = G_x, bit for bit what linear_forward's pre-kernel makes of the
// producer's BF16 output; rows of ld elements (≥ the consumer's cols_pad, zeros past its cols).
struct Nvfp4Acts {
  __nv_bfloat16* x = nullptr;
  int64_t ld = 0;
  float gx = 0.f;
  explicit operator bool() const { return x != nullptr; }
};
inline bool takes_nvfp4_acts(const DeviceLinear& w) {
  return w.kind == DeviceWeightKind::Nvfp4 && w.scheme.act == ActQuant::Nvfp4;
}
// The same for x already quantized (w: takes_nvfp4_acts, x.gx == w.nvfp4_input_global, x.ld ≥
// w.cols_pad): identical results to linear_forward on the BF16 values the producer quantized.
void linear_forward(const DeviceLinear& w, const Nvfp4Acts& x, int64_t M, float* y, LinearWorkspace ws,
                    cudaStream_t stream, LinearPath path = LinearPath::Auto);

// A GEMM output as its consumers take it (SwiGLU, the residual add, the DeltaNet conv and gated
// norm): fp32, or BF16 where linear_forward_bf16 wrote it. They read it as BF16 holds it either way
// (an fp32 value rounded to nearest), so results do not depend on which path produced it.
struct GemmOut {
  const void* p = nullptr;
  bool bf16 = false;
  GemmOut() = default;
  GemmOut(std::nullptr_t) {}
  GemmOut(const float* f) : p(f) {}
  GemmOut(const __nv_bfloat16* b) : p(b), bf16(b != nullptr) {}
  explicit operator bool() const { return p != nullptr; }
  // The output `elems` elements further (a column offset within a row).
  GemmOut at(int64_t elems) const {
    GemmOut o = *this;
    o.p = static_cast<const char*>(p) + elems * (bf16 ? 2 : 4);
    return o;
  }
};

// The same GEMMs with y written as BF16 (cuBLASLt's epilogue rounds the fp32 result to nearest),
// for consumers that round their input to BF16 anyway (SwiGLU): half the output traffic. The
// large-M path and the small-M FP8 wgmma kernel (W8A8 FP8 at ≤ 64 tokens, LinearPath::AutoFast)
// write BF16; these return false, having written nothing usable, where the call would take another
// path (the other small-M kernels, a block-128 token tail, FP8 weight-only, a problem cuBLASLt
// declines): the caller then uses linear_forward into fp32.
bool linear_forward_bf16(const DeviceLinear& w, const __nv_bfloat16* x, int64_t M, __nv_bfloat16* y,
                         LinearWorkspace ws, cudaStream_t stream, LinearPath path = LinearPath::Auto);
bool linear_forward_bf16(const DeviceLinear& w, const Fp8TokenActs& x, int64_t M, __nv_bfloat16* y,
                         LinearWorkspace ws, cudaStream_t stream, LinearPath path = LinearPath::Auto);
bool linear_forward_bf16(const DeviceLinear& w, const Nvfp4Acts& x, int64_t M, __nv_bfloat16* y, LinearWorkspace ws,
                         cudaStream_t stream, LinearPath path = LinearPath::Auto);

}  // namespace gdn::cuda
