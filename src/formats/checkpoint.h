// A checkpoint directory: every *.safetensors file in it, memory-mapped, with one name → tensor
// map. When model.safetensors.index.json is present, its weight_map is checked against the files
// (every listed tensor must be in the file the index names). Other safetensors files beside the
// shards (the MTP head may sit in mtp.safetensors) are read too. A tensor name found in two
// files is an error.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "formats/safetensors.h"

namespace gdn {

// A view of one tensor's bytes inside a mapped file.
struct TensorRef {
  const TensorInfo* info = nullptr;
  const uint8_t* data = nullptr;
  const std::string* file = nullptr;

  const std::string& name() const { return info->name; }
  DType dtype() const { return info->dtype; }
  const std::vector<int64_t>& shape() const { return info->shape; }
  int64_t numel() const { return info->numel(); }
  uint64_t nbytes() const { return info->nbytes; }
};

class Checkpoint {
 public:
  // Throws InputError (missing directory, no safetensors, bad index, duplicate tensor, corrupt file).
  static std::unique_ptr<Checkpoint> open(const std::string& dir);

  const std::string& dir() const { return dir_; }
  bool has(const std::string& name) const { return tensors_.count(name) != 0; }
  // Throws InputError "tensor NAME not found in DIR".
  TensorRef get(const std::string& name) const;
  const std::map<std::string, TensorRef>& tensors() const { return tensors_; }
  const std::vector<std::unique_ptr<SafetensorsFile>>& files() const { return files_; }

 private:
  std::string dir_;
  std::vector<std::unique_ptr<SafetensorsFile>> files_;
  std::map<std::string, TensorRef> tensors_;
};

// Reads a whole (small) text file; throws InputError naming the path.
std::string read_text_file(const std::string& path);

}  // namespace gdn
