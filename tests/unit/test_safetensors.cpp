// safetensors reading and writing: every dtype round-trips, float decoding of known bit patterns,
// the header parser's validation (each error class throws InputError with a clear message),
// empty tensors, metadata, and the Checkpoint over the sharded fixture.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <vector>

#include <unistd.h>

#include "core/error.h"
#include "formats/checkpoint.h"
#include "formats/safetensors.h"
#include "test_util.h"

namespace gdn::test {
namespace {

namespace fs = std::filesystem;

// A unique file path under the temp dir, removed on destruction.
struct TempFile {
  fs::path path;
  TempFile() {
    std::string tmpl = (fs::temp_directory_path() / "gdn-st-XXXXXX").string();
    const int fd = mkstemp(tmpl.data());
    if (fd < 0) throw std::runtime_error("mkstemp failed");
    close(fd);
    path = tmpl;
  }
  ~TempFile() {
    std::error_code ec;
    fs::remove(path, ec);
  }
};

// u64 little-endian header length + header text + `data_size` zero bytes.
std::vector<uint8_t> make_buf(const std::string& header, size_t data_size = 0) {
  std::vector<uint8_t> b(8 + header.size() + data_size, 0);
  for (int i = 0; i < 8; ++i) b[size_t(i)] = uint8_t(uint64_t(header.size()) >> (8 * i));
  std::copy(header.begin(), header.end(), b.begin() + 8);
  return b;
}

SafetensorsHeader parse(const std::vector<uint8_t>& b) {
  return parse_safetensors_header(b.data(), b.size(), "buf.st");
}

// Parsing must throw InputError whose message names the buffer and contains every word.
void expect_error(const std::vector<uint8_t>& b, const std::vector<std::string>& words) {
  try {
    parse(b);
    ADD_FAILURE() << "no error for: " << std::string(b.begin() + 8, b.end());
  } catch (const InputError& e) {
    const std::string msg = e.what();
    EXPECT_EQ(msg.rfind("buf.st: ", 0), 0u) << msg;
    for (const auto& w : words) EXPECT_NE(msg.find(w), std::string::npos) << "missing '" << w << "' in: " << msg;
  }
}
void expect_error(const std::string& header, size_t data_size, const std::vector<std::string>& words) {
  SCOPED_TRACE(header);
  expect_error(make_buf(header, data_size), words);
}

std::vector<uint8_t> le_bytes(uint64_t v, size_t n) {
  std::vector<uint8_t> b(n);
  for (size_t i = 0; i < n; ++i) b[i] = uint8_t(v >> (8 * i));
  return b;
}

const TensorInfo& find(const SafetensorsHeader& h, const std::string& name) {
  for (const auto& t : h.tensors)
    if (t.name == name) return t;
  throw std::runtime_error("no tensor " + name);
}

// ---------------------------------------------------------------------------------------------
// Round trip with one tensor of every dtype; the bytes are known bit patterns whose decoded
// values are checked through the mapped file.

TEST(SafetensorsRoundTrip, EveryDtype) {
  struct Case {
    DType dtype;
    std::vector<int64_t> shape;
    std::vector<uint64_t> elems;  // raw element bit patterns
  };
  const std::vector<Case> cases = {
      {DType::F32, {2}, {0x3F800000u, 0xC0000000u}},
      {DType::F16, {2, 2}, {0x3C00, 0x0001, 0xFC00, 0x7BFF}},
      {DType::BF16, {3}, {0x3F80, 0xBF80, 0x4049}},
      {DType::F8_E4M3, {4}, {0x7E, 0x7F, 0x01, 0xFE}},
      {DType::F8_E5M2, {1, 3}, {0x7B, 0x7C, 0xFC}},
      {DType::U8, {2}, {0, 255}},
      {DType::I8, {1}, {0x80}},
      {DType::I16, {2}, {0x7FFF, 0x8000}},
      {DType::I32, {2, 1}, {7, 0xFFFFFFFF}},
      {DType::I64, {1}, {0x0123456789ABCDEFull}},
      {DType::BOOL, {3}, {1, 0, 1}},
      {DType::F64, {1}, {0x3FF8000000000000ull}},  // 1.5
  };
  std::vector<TensorToWrite> tensors;
  for (const auto& c : cases) {
    TensorToWrite t{"t_" + std::string(dtype_name(c.dtype)), c.dtype, c.shape, {}};
    for (uint64_t e : c.elems) {
      const auto b = le_bytes(e, dtype_size(c.dtype));
      t.bytes.insert(t.bytes.end(), b.begin(), b.end());
    }
    tensors.push_back(t);
  }
  TempFile tmp;
  write_safetensors(tmp.path.string(), tensors);
  SafetensorsFile f(tmp.path.string());
  const auto& h = f.header();
  ASSERT_EQ(h.tensors.size(), cases.size());

  // Offsets: tensors are laid out back to back in write order, after an 8-byte-aligned header.
  std::ifstream in(tmp.path, std::ios::binary);
  uint8_t len[8];
  in.read(reinterpret_cast<char*>(len), 8);
  uint64_t header_len = 0;
  for (int i = 7; i >= 0; --i) header_len = (header_len << 8) | len[i];
  EXPECT_EQ(header_len % 8, 0u);
  uint64_t expect_offset = 8 + header_len;
  for (size_t i = 0; i < cases.size(); ++i) {
    SCOPED_TRACE(tensors[i].name);
    const TensorInfo& t = h.tensors[i];  // sorted by offset = write order
    EXPECT_EQ(t.name, tensors[i].name);
    EXPECT_EQ(t.dtype, cases[i].dtype);
    EXPECT_EQ(t.shape, cases[i].shape);
    EXPECT_EQ(t.numel(), int64_t(cases[i].elems.size()));
    EXPECT_EQ(t.offset, expect_offset);
    EXPECT_EQ(t.nbytes, tensors[i].bytes.size());
    EXPECT_EQ(std::vector<uint8_t>(f.data(t), f.data(t) + t.nbytes), tensors[i].bytes);
    expect_offset += t.nbytes;
  }
  EXPECT_EQ(expect_offset, fs::file_size(tmp.path));

  auto val = [&](DType d, size_t i) { return load_as_float(d, f.data(find(h, "t_" + std::string(dtype_name(d)))), i); };
  EXPECT_EQ(val(DType::F32, 0), 1.0f);
  EXPECT_EQ(val(DType::F32, 1), -2.0f);
  EXPECT_EQ(val(DType::F16, 0), 1.0f);
  EXPECT_EQ(val(DType::F16, 1), std::ldexp(1.0f, -24));  // smallest subnormal
  EXPECT_EQ(val(DType::F16, 2), -std::numeric_limits<float>::infinity());
  EXPECT_EQ(val(DType::F16, 3), 65504.0f);  // largest finite
  EXPECT_EQ(val(DType::BF16, 0), 1.0f);
  EXPECT_EQ(val(DType::BF16, 1), -1.0f);
  EXPECT_EQ(val(DType::BF16, 2), 3.140625f);
  EXPECT_EQ(val(DType::F8_E4M3, 0), 448.0f);  // largest finite E4M3FN
  EXPECT_TRUE(std::isnan(val(DType::F8_E4M3, 1)));
  EXPECT_EQ(val(DType::F8_E4M3, 2), std::ldexp(1.0f, -9));  // smallest subnormal
  EXPECT_EQ(val(DType::F8_E4M3, 3), -448.0f);
  EXPECT_EQ(val(DType::F8_E5M2, 0), 57344.0f);  // largest finite E5M2
  EXPECT_EQ(val(DType::F8_E5M2, 1), std::numeric_limits<float>::infinity());
  EXPECT_EQ(val(DType::F8_E5M2, 2), -std::numeric_limits<float>::infinity());
  EXPECT_EQ(val(DType::F64, 0), 1.5f);
  EXPECT_EQ(h.metadata, (std::map<std::string, std::string>{{"format", "pt"}}));
}

TEST(SafetensorsDecode, KnownBitPatterns) {
  EXPECT_EQ(bf16_to_float(0x3F80), 1.0f);
  EXPECT_EQ(f16_to_float(0x3C00), 1.0f);
  EXPECT_EQ(f16_to_float(0x0001), std::ldexp(1.0f, -24));
  EXPECT_EQ(f16_to_float(0x8001), -std::ldexp(1.0f, -24));
  EXPECT_EQ(f16_to_float(0x0400), std::ldexp(1.0f, -14));  // smallest normal
  EXPECT_EQ(f16_to_float(0xFC00), -std::numeric_limits<float>::infinity());
  EXPECT_TRUE(std::isnan(f16_to_float(0x7E00)));
  EXPECT_EQ(fp8_e4m3_to_float(0x7E), 448.0f);
  EXPECT_TRUE(std::isnan(fp8_e4m3_to_float(0x7F)));
  EXPECT_TRUE(std::isnan(fp8_e4m3_to_float(0xFF)));
  EXPECT_EQ(fp8_e4m3_to_float(0x01), std::ldexp(1.0f, -9));
  EXPECT_EQ(fp8_e4m3_to_float(0x38), 1.0f);
  EXPECT_EQ(fp8_e4m3_to_float(0x78), 256.0f);  // exponent 15 is finite in E4M3FN
  EXPECT_EQ(fp8_e5m2_to_float(0x7B), 57344.0f);
  EXPECT_EQ(fp8_e5m2_to_float(0x7C), std::numeric_limits<float>::infinity());
  EXPECT_TRUE(std::isnan(fp8_e5m2_to_float(0x7D)));
  EXPECT_EQ(fp8_e5m2_to_float(0x3C), 1.0f);
  EXPECT_EQ(fp8_e5m2_to_float(0x01), std::ldexp(1.0f, -16));
  for (const char* n : {"F32", "F16", "BF16", "F8_E4M3", "F8_E5M2", "U8", "I8", "I16", "I32", "I64", "BOOL", "F64"}) {
    ASSERT_TRUE(dtype_from_name(n)) << n;
    EXPECT_EQ(dtype_name(*dtype_from_name(n)), n);
  }
  EXPECT_FALSE(dtype_from_name("bf16"));
}

// ---------------------------------------------------------------------------------------------
// Header validation: one hand-built buffer per error class.

TEST(SafetensorsHeader, FileAndHeaderLength) {
  for (size_t n : {0, 1, 7}) {
    const std::vector<uint8_t> b(n, 0);
    expect_error(b, {"truncated", std::to_string(n) + " bytes", "8-byte header length"});
  }
  auto b = make_buf("{}", 16);
  b[0] = 200;  // 200 > 2 + 16 remaining bytes
  expect_error(b, {"header length 200", "runs past the end of the file", "(26 bytes)"});
  b = make_buf("{}");
  for (int i = 0; i < 8; ++i) b[size_t(i)] = 0xFF;  // 2^64 − 1: must not wrap around
  expect_error(b, {"header length 18446744073709551615", "runs past the end"});
  // A header longer than 100 MB is refused before parsing.
  std::vector<uint8_t> big((101u << 20) + 8, ' ');
  const uint64_t n = big.size() - 8;
  for (int i = 0; i < 8; ++i) big[size_t(i)] = uint8_t(n >> (8 * i));
  expect_error(big, {"exceeds the 100 MB limit"});
}

TEST(SafetensorsHeader, NotJsonOrNotObject) {
  expect_error("{\"a\": ", 0, {"header is not valid JSON"});
  expect_error("", 0, {"header is not valid JSON"});
  expect_error("[1, 2]", 0, {"not a JSON object"});
  expect_error("{\"a\": 1}", 0, {"tensor 'a'", "not a JSON object"});
}

TEST(SafetensorsHeader, Dtype) {
  expect_error(R"({"w": {"shape": [1], "data_offsets": [0, 4]}})", 4, {"tensor 'w'", "missing string field 'dtype'"});
  expect_error(R"({"w": {"dtype": 3, "shape": [1], "data_offsets": [0, 4]}})", 4, {"tensor 'w'", "'dtype'"});
  expect_error(R"({"w": {"dtype": "F4", "shape": [1], "data_offsets": [0, 4]}})", 4,
               {"tensor 'w'", "unknown dtype 'F4'", "expected F32", "F64"});
  expect_error(R"({"w": {"dtype": "f32", "shape": [1], "data_offsets": [0, 4]}})", 4, {"unknown dtype 'f32'"});
}

TEST(SafetensorsHeader, Shape) {
  expect_error(R"({"w": {"dtype": "F32", "data_offsets": [0, 4]}})", 4, {"tensor 'w'", "missing array field 'shape'"});
  expect_error(R"({"w": {"dtype": "F32", "shape": 4, "data_offsets": [0, 4]}})", 4, {"'shape'"});
  for (const char* bad : {"[-1]", "[1.5]", "[\"2\"]", "[[1]]", "[9223372036854775808]"})
    expect_error(std::string(R"({"w": {"dtype": "F32", "shape": )") + bad + R"(, "data_offsets": [0, 4]}})", 4,
                 {"tensor 'w'", "shape entries must be non-negative integers"});
  // 2^32 × 2^32 elements cannot exist; numel must not overflow.
  expect_error(R"({"w": {"dtype": "F32", "shape": [4294967296, 4294967296], "data_offsets": [0, 4]}})", 4,
               {"tensor 'w'", "more elements than any file can hold"});
  // Huge but representable: the byte size check reports it, without overflow.
  expect_error(R"({"w": {"dtype": "F64", "shape": [4611686018427387904], "data_offsets": [0, 8]}})", 8,
               {"tensor 'w'", "needs more than the file holds"});
}

TEST(SafetensorsHeader, DataOffsets) {
  const std::string pre = R"({"w": {"dtype": "F32", "shape": [2], "data_offsets": )";
  for (const char* bad : {"", "[0]", "[0, 8, 16]", "[-8, 0]", "[0, 8.0]", "\"0,8\""}) {
    const std::string h = *bad ? pre + bad + "}}" : R"({"w": {"dtype": "F32", "shape": [2]}})";
    expect_error(h, 8, {"tensor 'w'", "'data_offsets' must be two non-negative integers"});
  }
  expect_error(pre + "[8, 0]}}", 8, {"tensor 'w'", "data_offsets [8, 0]", "outside the data region of 8 bytes"});
  expect_error(pre + "[4, 12]}}", 8, {"tensor 'w'", "data_offsets [4, 12]", "outside the data region of 8 bytes"});
  expect_error(pre + "[0, 18446744073709551615]}}", 8, {"outside the data region"});
  expect_error(pre + "[0, 4]}}", 8, {"tensor 'w'", "4 bytes", "F32", "shape [2]", "needs 8"});
  expect_error(pre + "[0, 12]}}", 16, {"tensor 'w'", "12 bytes", "needs 8"});
}

TEST(SafetensorsHeader, Overlap) {
  expect_error(R"({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
                   "b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}})",
               12, {"'a' (data_offsets [0, 8])", "'b' (data_offsets [4, 12])", "overlap"});
  // Identical ranges overlap too.
  expect_error(R"({"a": {"dtype": "U8", "shape": [4], "data_offsets": [0, 4]},
                   "b": {"dtype": "I8", "shape": [4], "data_offsets": [0, 4]}})",
               4, {"'a'", "'b'", "overlap"});
}

TEST(SafetensorsHeader, Metadata) {
  expect_error(R"({"__metadata__": ["pt"]})", 0, {"'__metadata__' is not a JSON object"});
  expect_error(R"({"__metadata__": {"format": "pt", "n": 3}})", 0, {"'__metadata__' value 'n' is not a string"});
  const auto h = parse(make_buf(R"({"__metadata__": {"format": "pt", "note": "x y"}})"));
  EXPECT_TRUE(h.tensors.empty());
  EXPECT_EQ(h.metadata, (std::map<std::string, std::string>{{"format", "pt"}, {"note", "x y"}}));
}

TEST(SafetensorsHeader, ValidMinimal) {
  EXPECT_TRUE(parse(make_buf("{}")).tensors.empty());
  // Trailing spaces (padding) are allowed; offsets are relative to the data region.
  const std::string text = R"({"w": {"dtype": "BF16", "shape": [2, 3], "data_offsets": [4, 16]}}   )";
  const auto h = parse(make_buf(text, 16));
  ASSERT_EQ(h.tensors.size(), 1u);
  const TensorInfo& t = h.tensors[0];
  EXPECT_EQ(t.name, "w");
  EXPECT_EQ(t.dtype, DType::BF16);
  EXPECT_EQ(t.shape, (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(t.offset, 8 + text.size() + 4);
  EXPECT_EQ(t.nbytes, 12u);
  EXPECT_TRUE(h.metadata.empty());
}

// ---------------------------------------------------------------------------------------------
// Empty tensors and metadata through the writer.

TEST(SafetensorsEmpty, ZeroElementTensors) {
  TempFile tmp;
  write_safetensors(tmp.path.string(), {{"empty", DType::F32, {0, 4}, {}},
                                        {"scalar", DType::I32, {}, {1, 0, 0, 0}},
                                        {"after", DType::BF16, {2}, {0x80, 0x3F, 0x00, 0x40}}});
  SafetensorsFile f(tmp.path.string());
  const auto& e = find(f.header(), "empty");
  EXPECT_EQ(e.numel(), 0);
  EXPECT_EQ(e.nbytes, 0u);
  EXPECT_EQ(e.shape, (std::vector<int64_t>{0, 4}));
  const auto& s = find(f.header(), "scalar");
  EXPECT_TRUE(s.shape.empty());
  EXPECT_EQ(s.numel(), 1);  // a rank-0 tensor holds one element
  EXPECT_EQ(s.offset, e.offset);
  EXPECT_EQ(load_as_float(DType::BF16, f.data(find(f.header(), "after")), 0), 1.0f);
  // A huge dimension next to a zero one is still an empty tensor.
  const auto h =
      parse(make_buf(R"({"z": {"dtype": "F64", "shape": [0, 9223372036854775807], "data_offsets": [0, 0]}})"));
  EXPECT_EQ(h.tensors.at(0).numel(), 0);
}

// An empty tensor may share its offset with the tensor that starts there, whatever the names'
// order (writers place empty tensors at the current position).
TEST(SafetensorsEmpty, EmptyTensorAtStartOfAnother) {
  for (const char* empty_name : {"a_empty", "z_empty"}) {
    const std::string header = std::string(R"({"m_full": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}, ")") +
                               empty_name + R"(": {"dtype": "F32", "shape": [0], "data_offsets": [0, 0]}})";
    SCOPED_TRACE(header);
    EXPECT_NO_THROW(parse(make_buf(header, 8)));
  }
  // Many tensors (past std::sort's small-range cutoff), each empty one before a full one.
  std::string header = "{";
  for (int i = 0; i < 40; ++i) {
    header += fmt::format(R"("f{:02}": {{"dtype": "U8", "shape": [1], "data_offsets": [{}, {}]}}, )", i, i, i + 1);
    header += fmt::format(R"("e{:02}": {{"dtype": "U8", "shape": [0], "data_offsets": [{}, {}]}}, )", i, i, i);
  }
  header += R"("__metadata__": {}})";
  EXPECT_EQ(parse(make_buf(header, 40)).tensors.size(), 80u);
}

TEST(SafetensorsMetadata, WrittenAndRead) {
  TempFile tmp;
  const std::map<std::string, std::string> meta = {{"format", "pt"}, {"generator", "gdn test"}, {"empty", ""}};
  write_safetensors(tmp.path.string(), {{"w", DType::U8, {1}, {7}}}, meta);
  EXPECT_EQ(SafetensorsFile(tmp.path.string()).header().metadata, meta);
  write_safetensors(tmp.path.string(), {{"w", DType::U8, {1}, {7}}}, {});
  EXPECT_TRUE(SafetensorsFile(tmp.path.string()).header().metadata.empty());
}

TEST(SafetensorsFile, MissingOrNotAFile) {
  EXPECT_THROW(SafetensorsFile("/nonexistent/gdn/x.safetensors"), InputError);
  EXPECT_THROW(SafetensorsFile(fs::temp_directory_path().string()), InputError);
}

// ---------------------------------------------------------------------------------------------
// Checkpoint over the sharded fixture: every tensor of the index is found in its named shard.

TEST(SafetensorsCheckpoint, ShardedIndexComplete) {
  const std::string dir = fixture("qwen36-wrapper-sharded");
  const auto ck = Checkpoint::open(dir);
  const auto idx = nlohmann::json::parse(read_text_file(dir + "/model.safetensors.index.json"));
  const auto& wm = idx.at("weight_map");
  ASSERT_GT(wm.size(), 50u);
  std::set<std::string> shards;
  for (auto it = wm.begin(); it != wm.end(); ++it) {
    SCOPED_TRACE(it.key());
    ASSERT_TRUE(ck->has(it.key()));
    const TensorRef t = ck->get(it.key());
    EXPECT_EQ(fs::path(*t.file).filename().string(), it.value().get<std::string>());
    EXPECT_EQ(t.name(), it.key());
    EXPECT_EQ(uint64_t(t.numel()) * dtype_size(t.dtype()), t.nbytes());
    shards.insert(it.value().get<std::string>());
  }
  EXPECT_EQ(shards.size(), 14u);  // 13 shards + model-mtp.safetensors
  EXPECT_TRUE(shards.count("model-mtp.safetensors"));
  // Files beside the shards (the MTP head) are read too.
  EXPECT_TRUE(ck->has("mtp.fc.weight"));
  EXPECT_GE(ck->files().size(), 14u);
  try {
    ck->get("no.such.tensor");
    ADD_FAILURE() << "no error";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("tensor 'no.such.tensor' not found"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace gdn::test
