// FP8 / FP4 codecs against the reference: torch's float8_e4m3fn / float8_e5m2 casts for all 256
// codes and a few thousand encodes including every tie (tests/fixtures/quant/fp8_tables.safetensors,
// made by tools/make_quant_fixtures.py), and the E2M1 table and rounding thresholds of formats.md §1.3.
#include <gtest/gtest.h>

#include <cmath>

#include "core/dtype.h"
#include "core/quant_codecs.h"
#include "test_util.h"

namespace gdn::test {
namespace {


std::vector<float> table_floats(const std::string& name) {
  SafetensorsFile f(fixture("quant/fp8_tables.safetensors"));
  for (const auto& t : f.header().tensors)
    if (t.name == name) {
      std::vector<float> v(size_t(t.numel()));
      for (size_t i = 0; i < v.size(); ++i) v[i] = load_as_float(t.dtype, f.data(t), i);
      return v;
    }
  ADD_FAILURE() << "missing " << name;
  return {};
}
std::vector<uint8_t> table_bytes(const std::string& name) {
  SafetensorsFile f(fixture("quant/fp8_tables.safetensors"));
  for (const auto& t : f.header().tensors)
    if (t.name == name) return std::vector<uint8_t>(f.data(t), f.data(t) + t.nbytes);
  ADD_FAILURE() << "missing " << name;
  return {};
}

bool same_float(float a, float b) { return (std::isnan(a) && std::isnan(b)) || a == b; }

TEST(QuantCodecs, E4M3DecodeAll256CodesLikeTorch) {
  const auto want = table_floats("e4m3_decode");
  ASSERT_EQ(want.size(), 256u);
  for (int c = 0; c < 256; ++c) {
    EXPECT_TRUE(same_float(fp8_e4m3_to_float(uint8_t(c)), want[size_t(c)])) << "code " << c;
    EXPECT_TRUE(same_float(fp8_e4m3_table()[size_t(c)], want[size_t(c)])) << "table code " << c;
  }
}

TEST(QuantCodecs, E5M2DecodeAll256CodesLikeTorch) {
  const auto want = table_floats("e5m2_decode");
  ASSERT_EQ(want.size(), 256u);
  for (int c = 0; c < 256; ++c) EXPECT_TRUE(same_float(fp8_e5m2_to_float(uint8_t(c)), want[size_t(c)])) << "code " << c;
}

TEST(QuantCodecs, E4M3EncodeMatchesTorchIncludingTies) {
  const auto in = table_floats("e4m3_encode_in");
  const auto want = table_bytes("e4m3_encode_out");
  ASSERT_EQ(in.size(), want.size());
  ASSERT_GT(in.size(), 8000u);
  int bad = 0;
  for (size_t i = 0; i < in.size(); ++i)
    if (float_to_fp8_e4m3(in[i]) != want[i] && ++bad < 10)
      ADD_FAILURE() << "encode " << in[i] << ": got " << int(float_to_fp8_e4m3(in[i])) << " want " << int(want[i]);
  EXPECT_EQ(bad, 0);
}

TEST(QuantCodecs, E5M2EncodeMatchesTorchIncludingTies) {
  const auto in = table_floats("e5m2_encode_in");
  const auto want = table_bytes("e5m2_encode_out");
  ASSERT_EQ(in.size(), want.size());
  int bad = 0;
  for (size_t i = 0; i < in.size(); ++i)
    if (float_to_fp8_e5m2(in[i]) != want[i] && ++bad < 10)
      ADD_FAILURE() << "encode " << in[i] << ": got " << int(float_to_fp8_e5m2(in[i])) << " want " << int(want[i]);
  EXPECT_EQ(bad, 0);
}

TEST(QuantCodecs, E4M3SaturatesAndKeepsNaN) {
  EXPECT_EQ(float_to_fp8_e4m3(1e6f), 0x7E);    // +448
  EXPECT_EQ(float_to_fp8_e4m3(-1e6f), 0xFE);   // -448
  EXPECT_EQ(float_to_fp8_e4m3(INFINITY), 0x7E);
  EXPECT_EQ(float_to_fp8_e4m3(NAN), 0x7F);
  for (int c = 0; c < 256; ++c) {  // every finite code round-trips
    const float v = fp8_e4m3_to_float(uint8_t(c));
    if (std::isfinite(v) && v != 0.f) {
      EXPECT_EQ(float_to_fp8_e4m3(v), c);
    }
  }
}

TEST(QuantCodecs, E2M1TableOfAll16Codes) {
  // formats.md §1.3: codes 0–7 = 0, .5, 1, 1.5, 2, 3, 4, 6; 8–15 the same negated.
  const float want[16] = {0, 0.5f, 1, 1.5f, 2, 3, 4, 6, -0.f, -0.5f, -1, -1.5f, -2, -3, -4, -6};
  for (int c = 0; c < 16; ++c) {
    EXPECT_EQ(e2m1_to_float(uint8_t(c)), want[c]) << c;
    EXPECT_EQ(std::signbit(e2m1_to_float(uint8_t(c))), c >= 8) << c;
  }
}

TEST(QuantCodecs, E2M1RoundsToNearestEven) {
  // Ties: 0.25→0, 0.75→1, 1.25→1, 1.75→2, 2.5→2, 3.5→4, 5→4; beyond 6 saturates.
  const std::pair<float, float> cases[] = {{0.25f, 0}, {0.2501f, 0.5f}, {0.75f, 1}, {0.7499f, 0.5f}, {1.25f, 1},
                                           {1.2501f, 1.5f}, {1.75f, 2}, {2.5f, 2}, {2.5001f, 3}, {3.5f, 4},
                                           {5.f, 4}, {5.0001f, 6}, {100.f, 6}, {-0.75f, -1}, {-5.5f, -6}};
  for (auto [x, v] : cases) EXPECT_EQ(e2m1_to_float(float_to_e2m1(x)), v) << x;
  for (int c = 0; c < 16; ++c) {
    const float v = e2m1_to_float(uint8_t(c));
    if (v != 0.f) {
      EXPECT_EQ(float_to_e2m1(v), c);
    }
  }
}

}  // namespace
}  // namespace gdn::test
