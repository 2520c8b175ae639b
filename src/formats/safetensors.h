// safetensors reading: header parsing (pure, fuzzed) and a memory-mapped file of tensors.
// Format: u64 little-endian header length N, N bytes of JSON
//   {"name": {"dtype": "BF16", "shape": [r, c], "data_offsets": [begin, end]}, "__metadata__": {...}}
// then the data region; offsets are relative to the data region's start.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "core/mapped_file.h"

namespace gdn {

struct TensorInfo {
  std::string name;
  DType dtype = DType::F32;
  std::vector<int64_t> shape;
  uint64_t offset = 0;  // absolute byte offset in the file
  uint64_t nbytes = 0;
  int64_t numel() const;
};

struct SafetensorsHeader {
  std::vector<TensorInfo> tensors;  // in file order of their data
  std::map<std::string, std::string> metadata;
};

// Validates everything: header length within the file, JSON well-formed, known dtypes,
// non-negative shapes, byte size == numel × dtype size, offsets inside the data region and not
// overlapping. Throws InputError naming `path` (and the tensor) on any violation.
SafetensorsHeader parse_safetensors_header(const uint8_t* data, size_t size, const std::string& path);

// A mapped safetensors file; tensor data pointers stay valid while it lives.
class SafetensorsFile {
 public:
  explicit SafetensorsFile(const std::string& path);
  const std::string& path() const { return file_.path(); }
  const SafetensorsHeader& header() const { return header_; }
  const uint8_t* data(const TensorInfo& t) const { return file_.data() + t.offset; }

 private:
  MappedFile file_;
  SafetensorsHeader header_;
};

// Writes tensors to a safetensors file (used by make-demo-model and tests).
struct TensorToWrite {
  std::string name;
  DType dtype;
  std::vector<int64_t> shape;
  std::vector<uint8_t> bytes;
};
void write_safetensors(const std::string& path, const std::vector<TensorToWrite>& tensors,
                       const std::map<std::string, std::string>& metadata = {{"format", "pt"}});

std::string shape_str(const std::vector<int64_t>& shape);

}  // namespace gdn
