// Bit-exact low-precision codecs used by the quantized checkpoint layouts (formats.md §1):
// FP8 E4M3 (OCP "fn": no infinities, max ±448), FP8 E5M2, and FP4 E2M1 (NVFP4 elements).
// Encoders round to nearest with ties to even, as torch's float8 casts and the NVFP4 producers do.
#pragma once

#include <array>
#include <cstdint>

namespace gdn {

// float → E4M3 byte. Values beyond ±448 saturate to ±448 (what every producer does by clamping
// before the cast); NaN → 0x7F.
uint8_t float_to_fp8_e4m3(float x);
// float → E5M2 byte. Beyond the largest finite (±57344) rounds per IEEE (to ±inf past the halfway
// point to the next binade); NaN → 0x7F.
uint8_t float_to_fp8_e5m2(float x);

// E2M1 magnitudes by 3-bit code; bit 3 is the sign.
inline constexpr std::array<float, 8> kE2M1Magnitudes = {0.f, 0.5f, 1.f, 1.5f, 2.f, 3.f, 4.f, 6.f};
inline float e2m1_to_float(uint8_t code) {
  const float m = kE2M1Magnitudes[code & 7];
  return (code & 8) ? -m : m;
}
// float → 4-bit E2M1 code, nearest with ties to even; |x| > 6 saturates to ±6.
uint8_t float_to_e2m1(float x);

// Decode table for all 256 E4M3 codes (fast per-element dequantisation).
const std::array<float, 256>& fp8_e4m3_table();

}  // namespace gdn
