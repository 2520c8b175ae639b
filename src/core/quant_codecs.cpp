#include "core/quant_codecs.h"

#include <cmath>
#include <cstring>

#include "core/dtype.h"

namespace gdn {

namespace {

// Generic IEEE-style encoder for a small float with `ebits` exponent and `mbits` mantissa bits
// and exponent bias `bias`: returns the rounded magnitude bits (exponent|mantissa) without sign.
// Rounding: to nearest, ties to even, over the subnormal and normal range.
uint32_t encode_magnitude(float a, int ebits, int mbits, int bias) {
  // Work in units of the smallest subnormal: 2^(1 - bias - mbits).
  const int min_exp = 1 - bias;  // exponent of the smallest normal
  int e;
  std::frexp(a, &e);  // a = f · 2^e, f ∈ [0.5, 1)
  int exp = e - 1;    // a = 1.x · 2^exp
  if (exp < min_exp) exp = min_exp;  // subnormal range shares the smallest normal's spacing
  // Quantum at this binade, and a rounded to a multiple of it (ties to even via nearbyint).
  const float q = std::ldexp(1.f, exp - mbits);
  const float m = std::nearbyint(a / q);  // a / q is exact: powers of two; default rounding is ties-to-even
  // m ∈ [0, 2^(mbits+1)]: m == 2^(mbits+1) carries into the next binade.
  uint32_t mant = uint32_t(m);
  int biased;
  if (mant >= (1u << mbits)) {  // normal (or carried)
    if (mant == (1u << (mbits + 1))) {
      mant = 1u << mbits;
      ++exp;
    }
    biased = exp + bias;
    return (uint32_t(biased) << mbits) | (mant & ((1u << mbits) - 1));
  }
  return mant;  // subnormal (biased exponent 0)
}

}  // namespace

uint8_t float_to_fp8_e4m3(float x) {
  if (std::isnan(x)) return 0x7F;
  const uint8_t sign = std::signbit(x) ? 0x80 : 0;
  const float a = std::min(std::fabs(x), 448.f);
  return uint8_t(sign | encode_magnitude(a, 4, 3, 7));
}

uint8_t float_to_fp8_e5m2(float x) {
  if (std::isnan(x)) return 0x7F;
  const uint8_t sign = std::signbit(x) ? 0x80 : 0;
  const float a = std::fabs(x);
  // 57344 is the largest finite; anything at or past the midpoint to 2^16 rounds to infinity.
  if (a >= 61440.f) return uint8_t(sign | 0x7C);
  return uint8_t(sign | encode_magnitude(a, 5, 2, 15));
}

uint8_t float_to_e2m1(float x) {
  const float a = std::fabs(x);
  // Thresholds of round-to-nearest-even over {0, .5, 1, 1.5, 2, 3, 4, 6} (formats.md §1.3).
  const uint8_t idx = uint8_t((a > 0.25f) + (a >= 0.75f) + (a > 1.25f) + (a >= 1.75f) + (a > 2.5f) + (a >= 3.5f) +
                              (a > 5.f));
  return uint8_t(idx | (x < 0 ? 8 : 0));
}

const std::array<float, 256>& fp8_e4m3_table() {
  static const std::array<float, 256> table = [] {
    std::array<float, 256> t{};
    for (int i = 0; i < 256; ++i) t[size_t(i)] = fp8_e4m3_to_float(uint8_t(i));
    return t;
  }();
  return table;
}

}  // namespace gdn
