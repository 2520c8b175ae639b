// --load-format dummy: random weights generated on the GPU in the device layout of linear_cuda.h,
// so the full-scale benchmarks need no checkpoint and no host-side generation (27 GB of FP8 codes
// take ~10 ms to fill on an H100 instead of minutes on the host).
#include <cmath>

#include "core/quant_codecs.h"
#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/device.h"
#include "kernels/cuda/fp_codecs.cuh"
#include "kernels/cuda/linear_cuda.h"

namespace gdn::cuda {

namespace {

__device__ __forceinline__ uint64_t hash64(uint64_t z) {
  z += 0x9E3779B97F4A7C15ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}
__device__ __forceinline__ float unit(uint64_t h) { return float(h >> 40) * (2.f / 16777216.f) - 1.f; }

// One byte per thread iteration: element bytes of row r, column byte cb (elem_per_byte elements each).
// Padding (r ≥ rows or the column past cols) is zero.
__global__ void fill_codes(uint8_t* out, int64_t rows, int64_t cols, int64_t rows_pad, int64_t row_bytes, int kind,
                           float bf16_amp, uint64_t seed) {
  const int64_t n = rows_pad * row_bytes;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t r = i / row_bytes, cb = i % row_bytes;
    const uint64_t h = hash64(seed ^ (uint64_t(i) * 0x100000001B3ull));
    uint8_t v = 0;
    if (kind == 0) {  // BF16: two bytes per element
      const int64_t c = cb / 2;
      if (r < rows && c < cols) {
        const uint64_t he = hash64(seed ^ (uint64_t(i / 2) * 0x100000001B3ull));
        const __nv_bfloat16 b = __float2bfloat16_rn(unit(he) * bf16_amp);
        const uint16_t bits = *reinterpret_cast<const uint16_t*>(&b);
        v = uint8_t((cb & 1) ? bits >> 8 : bits & 0xFF);
      }
    } else if (kind == 1) {  // FP8: |value| ≤ 2 before the scale
      if (r < rows && cb < cols) v = uint8_t(detail::f32_to_e4m3(unit(h) * 2.f));
    } else {  // NVFP4: any two E2M1 codes
      if (r < rows && 2 * cb < cols) v = uint8_t(h >> 13);
    }
    out[i] = v;
  }
}

__global__ void fill_f32(float* out, int64_t n, float v) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    out[i] = v;
}

__global__ void fill_u8(uint8_t* out, int64_t n, uint8_t v) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    out[i] = v;
}

constexpr int kThreads = 256, kBlocks = 2048;

}  // namespace

DeviceLinear random_linear(const MatrixRef& shape, DeviceArena& arena, cudaStream_t stream, uint64_t seed, float amp) {
  DeviceLinear d = device_layout(shape);
  const float target = std::sqrt(3.f / float(shape.cols)) * amp;  // max |W| of a U(−a, a) entry
  const int kind = d.kind == DeviceWeightKind::Bf16 ? 0 : d.kind == DeviceWeightKind::Fp8 ? 1 : 2;
  const int64_t row_bytes = kind == 0 ? d.cols_pad * 2 : kind == 1 ? d.cols_pad : d.cols_pad / 2;
  auto* codes = static_cast<uint8_t*>(arena.allocate(size_t(d.rows_pad * row_bytes)));
  fill_codes<<<kBlocks, kThreads, 0, stream>>>(codes, d.rows, d.cols, d.rows_pad, row_bytes, kind, target, seed);
  GDN_CUDA_CHECK_LAUNCH();
  d.weight = codes;
  if (const int64_t ns = d.scale_count(); ns > 0) {
    float* s = arena.allocate_n<float>(size_t(ns));
    fill_f32<<<kBlocks, kThreads, 0, stream>>>(s, ns, target / 2.f);  // FP8 codes span ±2
    GDN_CUDA_CHECK_LAUNCH();
    d.scales = s;
  }
  if (d.kind == DeviceWeightKind::Nvfp4) {
    // W = e2m1 · s_block / divisor with |e2m1| ≤ 6: pick the block scale that makes max|W| ≈ target.
    const float s_block = std::fmin(448.f, target * d.nvfp4_weight_divisor / 6.f);
    const uint8_t code = nvfp4_device_scale(float_to_fp8_e4m3(s_block));
    const int64_t nb = d.rows_pad * d.cols_pad / 16;
    auto* bs = arena.allocate_n<uint8_t>(size_t(nb));
    fill_u8<<<kBlocks, kThreads, 0, stream>>>(bs, nb, code);
    GDN_CUDA_CHECK_LAUNCH();
    d.block_scales = bs;
  }
  return d;
}

}  // namespace gdn::cuda
