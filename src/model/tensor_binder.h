// Binds checkpoint tensors to model weights: looks names up, checks shapes and dtypes against what
// the config implies, resolves each Linear's quantization scheme (config declaration verified
// against the safetensors header, formats.md §9.4) and records bytes per component for reports.
#pragma once

#include <map>
#include <set>
#include <string>
#include <vector>

#include "formats/checkpoint.h"
#include "kernels/cpu/linear.h"
#include "model/config.h"

namespace gdn {

// One group of tensors for reporting (inspect): "DeltaNet", "attention", "MLP", "MTP", ...
struct TensorGroupStats {
  std::string group;
  std::map<std::string, int64_t> bytes_by_dtype;
  std::set<std::string> precisions;  // e.g. "BF16", "FP8 block-128 W8A8"
  int64_t params = 0;
  int64_t bytes() const;
};

enum class ActivationMode { Declared, WeightOnly };

class TensorBinder {
 public:
  TensorBinder(const Qwen35Config& cfg, const Checkpoint& ck, ActivationMode mode,
               std::vector<TensorGroupStats>& stats)
      : cfg_(cfg), ck_(ck), mode_(mode), stats_(stats) {}

  // A Linear weight `module`.weight of logical shape [rows, cols], dense or quantized as declared.
  // `vocab` marks lm_head / embed_tokens (quantized only by explicit opt-ins).
  MatrixRef linear(const std::string& module, int64_t rows, int64_t cols, const std::string& group, bool vocab = false);
  // A small float tensor decoded to fp32, shape checked.
  std::vector<float> vec(const std::string& name, const std::vector<int64_t>& shape, const std::string& group);
  // A scalar stored as [] or [1] (scales).
  float scalar(const std::string& name, const std::string& group);

  const std::set<std::string>& used() const { return used_; }

 private:
  const TensorRef& take(const std::string& name, const std::string& group, int64_t params);
  TensorRef expect(const std::string& module, const std::string& suffix, std::initializer_list<DType> dtypes,
                   const std::vector<int64_t>& shape, const std::string& why);
  std::string file_holds(const std::string& module) const;
  LinearScheme scheme_in_file(const std::string& module) const;
  TensorGroupStats& group(const std::string& name);

  const Qwen35Config& cfg_;
  const Checkpoint& ck_;
  ActivationMode mode_;
  std::vector<TensorGroupStats>& stats_;
  std::set<std::string> used_;
  std::map<std::string, TensorRef> taken_;
};

}  // namespace gdn
