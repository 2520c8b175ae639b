#include "formats/safetensors.h"

#include <fmt/format.h>

#include <algorithm>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/json_depth.h"

namespace gdn {

int64_t TensorInfo::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

std::string shape_str(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

namespace {

constexpr uint64_t kMaxHeader = 100ull << 20;  // the reference library's limit is 100 MB

uint64_t read_u64_le(const uint8_t* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

bool as_u64(const nlohmann::json& j, uint64_t& out) {
  if (j.is_number_unsigned()) {
    out = j.get<uint64_t>();
    return true;
  }
  if (j.is_number_integer() && j.get<int64_t>() >= 0) {
    out = uint64_t(j.get<int64_t>());
    return true;
  }
  return false;
}

TensorInfo parse_entry(const std::string& path, const std::string& name, const nlohmann::json& e,
                       uint64_t data_start, uint64_t data_size) {
  if (!e.is_object()) fail_input("{}: tensor '{}': header entry is not a JSON object", path, name);
  TensorInfo t;
  t.name = name;
  const auto dt = e.find("dtype");
  if (dt == e.end() || !dt->is_string()) fail_input("{}: tensor '{}': missing string field 'dtype'", path, name);
  const auto parsed = dtype_from_name(dt->get<std::string>());
  if (!parsed)
    fail_input("{}: tensor '{}': unknown dtype '{}' (expected F32, F16, BF16, F8_E4M3, F8_E5M2, U8, I8, I16, "
               "I32, I64, BOOL or F64)", path, name, dt->get<std::string>());
  t.dtype = *parsed;
  const auto sh = e.find("shape");
  if (sh == e.end() || !sh->is_array()) fail_input("{}: tensor '{}': missing array field 'shape'", path, name);
  // Every dimension a non-negative integer; the product of the non-zero ones must fit in int64
  // so that numel() can never overflow, even for empty tensors.
  unsigned __int128 numel = 1, nonzero = 1;
  for (const auto& d : *sh) {
    uint64_t v;
    if (!as_u64(d, v) || v > uint64_t(std::numeric_limits<int64_t>::max()))
      fail_input("{}: tensor '{}': shape entries must be non-negative integers", path, name);
    t.shape.push_back(int64_t(v));
    numel *= v;
    if (v) nonzero *= v;
    if (nonzero > (unsigned __int128)std::numeric_limits<int64_t>::max())
      fail_input("{}: tensor '{}': shape {} has more elements than any file can hold", path, name,
                 shape_str(t.shape));
  }
  const auto off = e.find("data_offsets");
  uint64_t begin = 0, end = 0;
  if (off == e.end() || !off->is_array() || off->size() != 2 || !as_u64((*off)[0], begin) ||
      !as_u64((*off)[1], end))
    fail_input("{}: tensor '{}': 'data_offsets' must be two non-negative integers", path, name);
  if (begin > end || end > data_size)
    fail_input("{}: tensor '{}': data_offsets [{}, {}] lie outside the data region of {} bytes", path, name,
               begin, end, data_size);
  const unsigned __int128 expect = numel * dtype_size(t.dtype);
  if (expect != end - begin)
    fail_input("{}: tensor '{}': {} bytes at data_offsets [{}, {}] but dtype {} × shape {} needs {}", path,
               name, end - begin, begin, end, dtype_name(t.dtype), shape_str(t.shape),
               expect > data_size ? std::string("more than the file holds") : std::to_string(uint64_t(expect)));
  t.offset = data_start + begin;
  t.nbytes = end - begin;
  return t;
}

}  // namespace

SafetensorsHeader parse_safetensors_header(const uint8_t* data, size_t size, const std::string& path) {
  if (size < 8) fail_input("{}: truncated safetensors file: {} bytes, the 8-byte header length is missing", path, size);
  const uint64_t n = read_u64_le(data);
  if (n > size - 8)
    fail_input("{}: safetensors header length {} runs past the end of the file ({} bytes)", path, n, size);
  if (n > kMaxHeader) fail_input("{}: safetensors header length {} exceeds the 100 MB limit", path, n);
  const char* begin = reinterpret_cast<const char*>(data + 8);
  auto j = nlohmann::json::parse(begin, begin + n, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) fail_input("{}: safetensors header is not valid JSON", path);
  check_json_depth(j, path + ": safetensors header");
  if (!j.is_object()) fail_input("{}: safetensors header is not a JSON object", path);

  SafetensorsHeader h;
  const uint64_t data_start = 8 + n;
  const uint64_t data_size = size - data_start;
  for (auto it = j.begin(); it != j.end(); ++it) {
    if (it.key() == "__metadata__") {
      if (!it->is_object()) fail_input("{}: '__metadata__' is not a JSON object", path);
      for (auto m = it->begin(); m != it->end(); ++m) {
        if (!m->is_string()) fail_input("{}: '__metadata__' value '{}' is not a string", path, m.key());
        h.metadata[m.key()] = m->get<std::string>();
      }
      continue;
    }
    h.tensors.push_back(parse_entry(path, it.key(), *it, data_start, data_size));
  }
  // By start, then end: an empty tensor sharing its start with a full one sorts first, so it
  // never counts as an overlap (writers put empty tensors at the current position).
  std::sort(h.tensors.begin(), h.tensors.end(), [](const TensorInfo& a, const TensorInfo& b) {
    return a.offset != b.offset ? a.offset < b.offset : a.nbytes < b.nbytes;
  });
  for (size_t i = 1; i < h.tensors.size(); ++i) {
    const auto& prev = h.tensors[i - 1];
    const auto& cur = h.tensors[i];
    if (cur.offset < prev.offset + prev.nbytes)
      fail_input("{}: tensors '{}' (data_offsets [{}, {}]) and '{}' (data_offsets [{}, {}]) overlap in the data "
                 "region", path, prev.name, prev.offset - data_start, prev.offset - data_start + prev.nbytes,
                 cur.name, cur.offset - data_start, cur.offset - data_start + cur.nbytes);
  }
  return h;
}

SafetensorsFile::SafetensorsFile(const std::string& path)
    : file_(path), header_(parse_safetensors_header(file_.data(), file_.size(), path)) {}

void write_safetensors(const std::string& path, const std::vector<TensorToWrite>& tensors,
                       const std::map<std::string, std::string>& metadata) {
  nlohmann::ordered_json j;
  if (!metadata.empty()) j["__metadata__"] = metadata;
  uint64_t off = 0;
  for (const auto& t : tensors) {
    GDN_CHECK(t.bytes.size() == uint64_t(TensorInfo{t.name, t.dtype, t.shape}.numel()) * dtype_size(t.dtype),
              "tensor {} has {} bytes", t.name, t.bytes.size());
    j[t.name] = {{"dtype", std::string(dtype_name(t.dtype))}, {"shape", t.shape}, {"data_offsets", {off, off + t.bytes.size()}}};
    off += t.bytes.size();
  }
  std::string header = j.dump();
  header.append((8 - header.size() % 8) % 8, ' ');  // align the data region to 8 bytes
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  if (!f) fail_input("{}: cannot create file", path);
  uint8_t len[8];
  for (int i = 0; i < 8; ++i) len[i] = uint8_t(uint64_t(header.size()) >> (8 * i));
  f.write(reinterpret_cast<const char*>(len), 8);
  f.write(header.data(), std::streamsize(header.size()));
  for (const auto& t : tensors) f.write(reinterpret_cast<const char*>(t.bytes.data()), std::streamsize(t.bytes.size()));
  if (!f) fail_input("{}: write failed", path);
}

}  // namespace gdn
