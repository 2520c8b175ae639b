// Device-side codecs of the quantized layouts (CUDA translation units only).
//
// Decoders turn packed codes into BF16 pairs with integer ops plus one BF16 multiply, because
// Hopper has no FP4 tensor cores and no E2M1 conversion instruction: the bit patterns are placed
// into BF16 fields directly, which yields value·2⁻ᵏ exactly (E2M1/E4M3 subnormals land on BF16
// subnormals at the same scale), and one exact multiply by a power-of-two-adjusted scale brings
// them into range. Encoders reproduce core/quant_codecs.cpp bit for bit.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp8.h>

#include <cstdint>

namespace gdn::cuda::detail {

__device__ __forceinline__ uint32_t bf16x2_bits(__nv_bfloat162 v) { return *reinterpret_cast<uint32_t*>(&v); }
__device__ __forceinline__ __nv_bfloat162 bits_bf16x2(uint32_t u) { return *reinterpret_cast<__nv_bfloat162*>(&u); }

// Two E4M3 codes at bits 0..7 and 16..23 of t → BF16 pair holding value·2⁻¹²⁰.
__device__ __forceinline__ uint32_t e4m3x2_raw_bf16(uint32_t t) {
  return ((t << 4) & 0x07F007F0u) | ((t << 8) & 0x80008000u);
}
// Four E4M3 codes (one 32-bit word, natural order) → two exact BF16 pairs (e0,e1), (e2,e3).
__device__ __forceinline__ void e4m3x4_to_bf16(uint32_t w, uint32_t& lo, uint32_t& hi) {
  const __nv_bfloat162 k2p120 = bits_bf16x2(0x7B807B80u);  // 2^120 in both halves
  lo = bf16x2_bits(__hmul2(bits_bf16x2(e4m3x2_raw_bf16(__byte_perm(w, 0, 0x4140))), k2p120));
  hi = bf16x2_bits(__hmul2(bits_bf16x2(e4m3x2_raw_bf16(__byte_perm(w, 0, 0x4342))), k2p120));
}

// The four BF16 pairs (e0,e1) (e2,e3) (e4,e5) (e6,e7) of one device NVFP4 word (bit layout in
// linear_cuda.h, DeviceWeightKind::Nvfp4), each half holding value·2⁻¹²⁶: magnitude bits
// (e1 e0 m) at BF16 bits 8..6, sign at bit 15. Pairs 0-2 are one rotate and one AND, pair 3 two of
// each: 9 integer ops per 8 elements (the nibble-shift decode took 15).
__device__ __forceinline__ void nvfp4_word_raw(uint32_t w, uint32_t (&pair)[4]) {
  constexpr uint32_t kP = 0x81C081C0u, kRot30 = 0x01000100u, kRot6 = kP & ~kRot30;
  pair[0] = w & kP;
  pair[1] = __funnelshift_l(w, w, 4) & kP;
  pair[2] = __funnelshift_l(w, w, 10) & kP;
  pair[3] = (__funnelshift_l(w, w, 6) & kRot6) | (__funnelshift_l(w, w, 30) & kRot30);
}

// Device block-scale byte i (0..3) of `word` → BF16 pair (S, S), S = s·2¹¹⁸ (the byte encoding in
// linear_cuda.h: BF16 bits (b << 4) + 0x7600, exact for every E4M3 magnitude). Times a decoded
// pair (v·2⁻¹²⁶) this gives v·s·2⁻⁸ exactly (≤ 6 significant bits, ≥ 2⁻¹⁸): one PRMT, one IMAD.
template <int i>
__device__ __forceinline__ __nv_bfloat162 nvfp4_scale_pair(uint32_t word) {
  return bits_bf16x2(__byte_perm(word, 0, 0x4040u + 0x101u * i) * 16u + 0x76007600u);
}
// The same scale as a float s (the block's E4M3 value: 0 for code 0, NaN for NaN codes).
__device__ __forceinline__ float nvfp4_scale_value(uint32_t b) {
  if (b == 0xA0u) return 0.f;  // the encoding's −0 (products are zeros either way)
  const uint32_t bits = ((b & 0xFFu) << 4) + 0x7600u;
  return __uint_as_float(bits << 16) * 0x1p-118f;
}

// float → E4M3 code: round to nearest even, saturating to ±448 (== float_to_fp8_e4m3).
__device__ __forceinline__ uint32_t f32_to_e4m3(float v) {
  return __nv_cvt_float_to_fp8(v, __NV_SATFINITE, __NV_E4M3);
}
__device__ __forceinline__ float e4m3_to_f32(uint32_t code) {
  const __half_raw h = __nv_cvt_fp8_to_halfraw(static_cast<__nv_fp8_storage_t>(code & 0xFF), __NV_E4M3);
  return __half2float(__half(h));
}

// float → E2M1 magnitude index (== float_to_e2m1's thresholds, formats.md §1.3), without sign.
__device__ __forceinline__ float e2m1_round_magnitude(float a) {
  const int idx = (a > 0.25f) + (a >= 0.75f) + (a > 1.25f) + (a >= 1.75f) + (a > 2.5f) + (a >= 3.5f) + (a > 5.f);
  constexpr float kMag[8] = {0.f, 0.5f, 1.f, 1.5f, 2.f, 3.f, 4.f, 6.f};
  // Select chain instead of a local-memory table.
  float m = 0.f;
#pragma unroll
  for (int i = 1; i < 8; ++i) m = idx == i ? kMag[i] : m;
  return m;
}

// Programmatic dependent launch (sm_90): wait for the preceding grid's memory, let the next grid start.
__device__ __forceinline__ void griddep_wait() { asm volatile("griddepcontrol.wait;" ::: "memory"); }
__device__ __forceinline__ void griddep_launch_dependents() { asm volatile("griddepcontrol.launch_dependents;" :::); }

}  // namespace gdn::cuda::detail
