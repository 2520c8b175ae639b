#include "core/dtype.h"

#include <cmath>
#include <limits>

namespace gdn {

namespace {
struct DTypeInfo {
  DType type;
  std::string_view name;
  size_t size;
  bool is_float;
};
constexpr DTypeInfo kInfo[] = {
    {DType::F32, "F32", 4, true},        {DType::F16, "F16", 2, true},
    {DType::BF16, "BF16", 2, true},      {DType::F8_E4M3, "F8_E4M3", 1, true},
    {DType::F8_E5M2, "F8_E5M2", 1, true}, {DType::U8, "U8", 1, false},
    {DType::I8, "I8", 1, false},         {DType::I16, "I16", 2, false},
    {DType::I32, "I32", 4, false},       {DType::I64, "I64", 8, false},
    {DType::BOOL, "BOOL", 1, false},     {DType::F64, "F64", 8, true},
};
const DTypeInfo& info(DType t) { return kInfo[static_cast<int>(t)]; }
}  // namespace

std::optional<DType> dtype_from_name(std::string_view name) {
  for (const auto& i : kInfo)
    if (i.name == name) return i.type;
  return std::nullopt;
}
std::string_view dtype_name(DType t) { return info(t).name; }
size_t dtype_size(DType t) { return info(t).size; }
bool dtype_is_float(DType t) { return info(t).is_float; }

float f16_to_float(uint16_t h) {
  const uint32_t sign = uint32_t(h >> 15) << 31;
  const uint32_t exp = (h >> 10) & 0x1f;
  const uint32_t man = h & 0x3ff;
  if (exp == 0) {  // zero or subnormal: man * 2^-24
    const float v = std::ldexp(float(man), -24);
    return sign ? -v : v;
  }
  if (exp == 31) return bits_to_float(sign | 0x7f800000u | (man << 13));
  return bits_to_float(sign | ((exp + 112) << 23) | (man << 13));
}

float fp8_e4m3_to_float(uint8_t v) {
  const bool neg = v & 0x80;
  const int exp = (v >> 3) & 0xf;
  const int man = v & 0x7;
  if (exp == 0xf && man == 0x7) return std::numeric_limits<float>::quiet_NaN();
  float r = exp == 0 ? std::ldexp(float(man), -9) : std::ldexp(float(8 + man), exp - 10);
  return neg ? -r : r;
}

float fp8_e5m2_to_float(uint8_t v) {
  const bool neg = v & 0x80;
  const int exp = (v >> 2) & 0x1f;
  const int man = v & 0x3;
  float r;
  if (exp == 0x1f)
    r = man == 0 ? std::numeric_limits<float>::infinity() : std::numeric_limits<float>::quiet_NaN();
  else
    r = exp == 0 ? std::ldexp(float(man), -16) : std::ldexp(float(4 + man), exp - 17);
  return neg ? -r : r;
}

float load_as_float(DType t, const void* data, size_t i) {
  const auto* b = static_cast<const uint8_t*>(data);
  switch (t) {
    case DType::F32: {
      float f;
      std::memcpy(&f, b + 4 * i, 4);
      return f;
    }
    case DType::F64: {
      double d;
      std::memcpy(&d, b + 8 * i, 8);
      return float(d);
    }
    case DType::BF16: {
      uint16_t h;
      std::memcpy(&h, b + 2 * i, 2);
      return bf16_to_float(h);
    }
    case DType::F16: {
      uint16_t h;
      std::memcpy(&h, b + 2 * i, 2);
      return f16_to_float(h);
    }
    case DType::F8_E4M3: return fp8_e4m3_to_float(b[i]);
    case DType::F8_E5M2: return fp8_e5m2_to_float(b[i]);
    default: return std::numeric_limits<float>::quiet_NaN();
  }
}

}  // namespace gdn
