// Element types of checkpoint tensors and the scalar conversions the CPU reference needs.
// All conversions are bit-exact: BF16/F16/FP8 decode exactly to float; float→BF16 rounds to
// nearest even (NaN stays NaN).
#pragma once

#include <cstdint>
#include <cstring>
#include <optional>
#include <string_view>

namespace gdn {

enum class DType : uint8_t { F32, F16, BF16, F8_E4M3, F8_E5M2, U8, I8, I16, I32, I64, BOOL, F64 };

// safetensors spelling ("F32", "BF16", "F8_E4M3", ...); nullopt for anything else.
std::optional<DType> dtype_from_name(std::string_view name);
std::string_view dtype_name(DType t);
size_t dtype_size(DType t);
bool dtype_is_float(DType t);

inline float bits_to_float(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
inline uint32_t float_to_bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}

inline float bf16_to_float(uint16_t h) { return bits_to_float(uint32_t(h) << 16); }

inline uint16_t float_to_bf16(float f) {
  uint32_t u = float_to_bits(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) return uint16_t((u >> 16) | 0x40);  // quiet NaN
  u += 0x7fffu + ((u >> 16) & 1u);                                          // round to nearest even
  return uint16_t(u >> 16);
}

float f16_to_float(uint16_t h);
float fp8_e4m3_to_float(uint8_t v);  // OCP E4M3FN: no infinities, S.1111.111 is NaN
float fp8_e5m2_to_float(uint8_t v);  // IEEE-like E5M2 with infinities

// Reads element i of a buffer of type t as float (float types only).
float load_as_float(DType t, const void* data, size_t i);

}  // namespace gdn
