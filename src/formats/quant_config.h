// The quantization a checkpoint declares (config.json "quantization_config", and ModelOpt's
// hf_quant_config.json), and the per-module scheme it implies (formats.md §9). Three producers:
//  * compressed-tensors (quant_method "compressed-tensors"): config_groups with targets, an
//    `ignore` list of exact names or "re:" regexes anchored at the start;
//  * Qwen/DeepSeek block FP8 (quant_method "fp8"): weight_block_size [128, 128], dynamic
//    activations, modules_to_not_convert (exact, dot-boundary prefix or suffix), opt-ins
//    "lm_head": true / "embed_tokens": true;
//  * NVIDIA ModelOpt (quant_method "modelopt" / hf_quant_config.json): NVFP4 with glob excludes.
#pragma once

#include <nlohmann/json_fwd.hpp>

#include <map>
#include <string>
#include <vector>

#include "core/quant_types.h"
#include "formats/module_regex.h"

namespace gdn {

enum class QuantMethod { None, CompressedTensors, Fp8Block, ModelOpt };

const char* weight_format_name(WeightFormat f);
const char* act_quant_name(ActQuant a);
std::string scheme_label(const LinearScheme& s);  // e.g. "FP8 block-128 W8A8"

class QuantConfig {
 public:
  // quantization_config (may be null/absent) from config.json, hf_quant_config.json content (may be
  // null). Throws InputError naming `where` for unknown methods/formats or malformed fields.
  static QuantConfig parse(const nlohmann::json* quantization_config, const nlohmann::json* hf_quant_config,
                           const std::string& where);

  QuantMethod method() const { return method_; }
  std::string layout_name() const;  // human name of the checkpoint layout
  bool kv_cache_fp8() const { return kv_cache_fp8_; }

  // The scheme the config declares for Linear module `name` (checkpoint name, no ".weight").
  // `vocab` marks lm_head / embed_tokens, which only the fp8 opt-ins quantize.
  LinearScheme scheme_for(const std::string& name, bool vocab = false) const;
  // True when the config explicitly excludes the module (ignore / modules_to_not_convert / exclude).
  bool excluded(const std::string& name) const;

 private:
  struct Group {  // compressed-tensors config group
    std::vector<std::string> targets;
    LinearScheme scheme;
  };
  // Compressed-tensors "re:" patterns, compiled once while the config is read (so that a bad one
  // is reported there, naming its field), by their full text.
  void compile_if_regex(const std::string& pattern, const std::string& where);
  bool ct_match(const std::string& pattern, const std::string& name) const;

  QuantMethod method_ = QuantMethod::None;
  std::map<std::string, ModuleRegex> regexes_;
  std::vector<std::string> excludes_;
  std::vector<Group> groups_;
  LinearScheme default_scheme_;  // fp8 / modelopt: every non-excluded Linear
  bool lm_head_opt_in_ = false, embed_opt_in_ = false, kv_cache_fp8_ = false;
  std::string detail_;  // e.g. the CT format string
};

// Pattern helpers (exposed for tests).
bool ct_matches(const std::string& pattern, const std::string& name);        // exact or "re:" anchored at start (PCRE2)
bool glob_matches(const std::string& pattern, const std::string& name);      // fnmatch: * ? [..], * crosses dots
bool fp8_skip_matches(const std::string& pattern, const std::string& name);  // exact, dot-prefix or suffix

}  // namespace gdn
