#include "formats/quant_config.h"

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "formats/module_regex.h"

namespace gdn {

using nlohmann::json;

const char* weight_format_name(WeightFormat f) {
  switch (f) {
    case WeightFormat::Dense: return "dense";
    case WeightFormat::Fp8PerChannel: return "FP8 per-channel";
    case WeightFormat::Fp8Block128: return "FP8 block-128";
    case WeightFormat::Nvfp4ModelOpt: return "NVFP4 (ModelOpt)";
    case WeightFormat::Nvfp4CT: return "NVFP4 (compressed-tensors)";
  }
  return "?";
}

const char* act_quant_name(ActQuant a) {
  switch (a) {
    case ActQuant::None: return "none";
    case ActQuant::Fp8PerToken: return "FP8 per-token dynamic";
    case ActQuant::Fp8PerGroup128: return "FP8 per-token-per-128 dynamic";
    case ActQuant::Nvfp4: return "NVFP4 static global";
  }
  return "?";
}

std::string scheme_label(const LinearScheme& s) {
  switch (s.weight) {
    case WeightFormat::Dense: return "unquantized";
    case WeightFormat::Fp8PerChannel:
    case WeightFormat::Fp8Block128:
      return std::string(weight_format_name(s.weight)) + (s.act == ActQuant::None ? " W8A16" : " W8A8");
    case WeightFormat::Nvfp4ModelOpt:
    case WeightFormat::Nvfp4CT: return s.act == ActQuant::None ? "NVFP4 W4A16" : "NVFP4 W4A4";
  }
  return "?";
}

// ---------------------------------------------------------------- matching rules

bool ct_matches(const std::string& pattern, const std::string& name) {
  if (pattern.rfind("re:", 0) != 0) return pattern == name;
  return ModuleRegex(std::string_view(pattern).substr(3), "ignore/target").match_start(name);
}

bool glob_matches(const std::string& p, const std::string& s) {
  // Iterative fnmatch with backtracking on the last '*'.
  size_t pi = 0, si = 0, star = std::string::npos, mark = 0;
  auto class_match = [&](size_t& i, char c) {  // p[i] == '['; advances i past ']'
    size_t j = i + 1;
    const bool neg = j < p.size() && (p[j] == '!' || p[j] == '^');
    if (neg) ++j;
    bool hit = false, first = true;
    for (; j < p.size() && (first || p[j] != ']'); ++j, first = false) {
      if (j + 2 < p.size() && p[j + 1] == '-' && p[j + 2] != ']') {
        hit |= c >= p[j] && c <= p[j + 2];
        j += 2;
      } else {
        hit |= c == p[j];
      }
    }
    if (j >= p.size()) return std::make_pair(false, false);  // unterminated: treat '[' literally
    i = j + 1;
    return std::make_pair(true, hit != neg);
  };
  while (si < s.size()) {
    if (pi < p.size() && p[pi] == '*') {
      star = pi++;
      mark = si;
      continue;
    }
    if (pi < p.size()) {
      if (p[pi] == '[') {
        size_t next = pi;
        auto [ok, hit] = class_match(next, s[si]);
        if (ok && hit) {
          pi = next;
          ++si;
          continue;
        }
        if (!ok && s[si] == '[') {
          ++pi;
          ++si;
          continue;
        }
      } else if (p[pi] == '?' || p[pi] == s[si]) {
        ++pi;
        ++si;
        continue;
      }
    }
    if (star == std::string::npos) return false;
    pi = star + 1;
    si = ++mark;
  }
  while (pi < p.size() && p[pi] == '*') ++pi;
  return pi == p.size();
}

bool fp8_skip_matches(const std::string& pattern, const std::string& name) {
  if (pattern.empty()) return false;
  if (name == pattern) return true;
  if (name.size() > pattern.size() && name.compare(0, pattern.size(), pattern) == 0 && name[pattern.size()] == '.')
    return true;  // a parent module
  return name.size() > pattern.size() && name.compare(name.size() - pattern.size(), pattern.size(), pattern) == 0 &&
         name[name.size() - pattern.size() - 1] == '.';  // short names such as "lm_head" or "in_proj_a"
}

// ---------------------------------------------------------------- parsing

namespace {

std::vector<std::string> string_list(const json& obj, const char* key, const std::string& where) {
  std::vector<std::string> out;
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return out;
  if (!it->is_array()) fail_input("{}: quantization_config field '{}' must be a list of strings", where, key);
  for (const auto& e : *it) {
    if (!e.is_string()) fail_input("{}: quantization_config field '{}' must be a list of strings", where, key);
    out.push_back(e.get<std::string>());
  }
  return out;
}

int get_int(const json& o, const char* k, int dflt = -1) {
  auto it = o.find(k);
  return it != o.end() && it->is_number_integer() ? it->get<int>() : dflt;
}
std::string get_str(const json& o, const char* k) {
  auto it = o.find(k);
  return it != o.end() && it->is_string() ? it->get<std::string>() : "";
}

// compressed-tensors QuantizationArgs → formats we compute.
WeightFormat ct_weight_format(const json& w, const std::string& format, const std::string& where) {
  const int bits = get_int(w, "num_bits");
  const std::string type = get_str(w, "type"), strategy = get_str(w, "strategy");
  if (type == "float" && bits == 8 && strategy == "channel") return WeightFormat::Fp8PerChannel;
  if (type == "float" && bits == 8 && strategy == "block") {
    const auto bs = w.find("block_structure");
    if (bs != w.end() && *bs == json::array({128, 128})) return WeightFormat::Fp8Block128;
  }
  if (type == "float" && bits == 4 && strategy == "tensor_group" && get_int(w, "group_size") == 16 &&
      format == "nvfp4-pack-quantized")
    return WeightFormat::Nvfp4CT;
  fail_input("{}: compressed-tensors weights scheme {} (format '{}') is not supported (expected FP8 channel, FP8 "
             "block [128, 128] or NVFP4 tensor_group 16)", where, w.dump(), format);
}

ActQuant ct_act_quant(const json* a, WeightFormat wf, const std::string& where) {
  if (!a || a->is_null()) return ActQuant::None;
  const int bits = get_int(*a, "num_bits");
  const std::string type = get_str(*a, "type"), strategy = get_str(*a, "strategy");
  const auto dyn = a->find("dynamic");
  const bool dynamic_true = dyn != a->end() && dyn->is_boolean() && dyn->get<bool>();
  if (type == "float" && bits == 8 && strategy == "token" && dynamic_true) return ActQuant::Fp8PerToken;
  if (type == "float" && bits == 8 && strategy == "group" && get_int(*a, "group_size") == 128 && dynamic_true)
    return ActQuant::Fp8PerGroup128;
  if (type == "float" && bits == 4 && strategy == "tensor_group" && get_int(*a, "group_size") == 16 &&
      wf == WeightFormat::Nvfp4CT)
    return ActQuant::Nvfp4;
  fail_input("{}: compressed-tensors input_activations scheme {} is not supported (expected FP8 per-token or "
             "per-group-128 dynamic, or NVFP4 tensor_group 16)", where, a->dump());
}

}  // namespace

QuantConfig QuantConfig::parse(const json* qc, const json* hf, const std::string& where) {
  QuantConfig c;
  if (qc && qc->is_null()) qc = nullptr;
  if (qc && !qc->is_object()) fail_input("{}: quantization_config must be an object", where);
  std::string method = qc ? get_str(*qc, "quant_method") : "";
  if (!qc && hf) method = "modelopt";
  if (method.empty() && !qc) return c;

  if (method == "compressed-tensors") {
    c.method_ = QuantMethod::CompressedTensors;
    const std::string top_format = get_str(*qc, "format");
    const std::string status = get_str(*qc, "quantization_status");
    if (!status.empty() && status != "compressed")
      fail_input("{}: compressed-tensors quantization_status '{}' is not supported (expected \"compressed\")", where,
                 status);
    c.excludes_ = string_list(*qc, "ignore", where);
    for (size_t i = 0; i < c.excludes_.size(); ++i)
      c.compile_if_regex(c.excludes_[i], where + ": ignore[" + std::to_string(i) + "]");
    auto groups = qc->find("config_groups");
    if (groups == qc->end() || !groups->is_object() || groups->empty())
      fail_input("{}: compressed-tensors quantization_config needs a non-empty 'config_groups' object", where);
    for (auto g = groups->begin(); g != groups->end(); ++g) {
      const std::string gw = where + ": config_groups." + g.key();
      if (!g->is_object()) fail_input("{}: must be an object", gw);
      std::string format = get_str(*g, "format");
      if (format.empty()) format = top_format;
      if (format != "float-quantized" && format != "naive-quantized" && format != "nvfp4-pack-quantized")
        fail_input("{}: compressed-tensors format '{}' is not supported (expected float-quantized or "
                   "nvfp4-pack-quantized)", gw, format);
      auto w = g->find("weights");
      if (w == g->end() || !w->is_object()) fail_input("{}: missing object field 'weights'", gw);
      Group grp;
      grp.targets = string_list(*g, "targets", gw);
      for (size_t i = 0; i < grp.targets.size(); ++i)
        c.compile_if_regex(grp.targets[i], gw + ".targets[" + std::to_string(i) + "]");
      grp.scheme.weight = ct_weight_format(*w, format, gw);
      auto a = g->find("input_activations");
      grp.scheme.act = ct_act_quant(a == g->end() ? nullptr : &*a, grp.scheme.weight, gw);
      c.groups_.push_back(grp);
      c.detail_ = format;
    }
    if (auto kv = qc->find("kv_cache_scheme"); kv != qc->end() && kv->is_object())
      c.kv_cache_fp8_ = get_int(*kv, "num_bits") == 8 && get_str(*kv, "type") == "float";
    return c;
  }
  if (method == "fp8") {
    c.method_ = QuantMethod::Fp8Block;
    if (const std::string fmt = get_str(*qc, "fmt"); !fmt.empty() && fmt != "e4m3")
      fail_input("{}: fp8 fmt '{}' is not supported (expected \"e4m3\")", where, fmt);
    if (const std::string act = get_str(*qc, "activation_scheme"); act != "dynamic")
      fail_input("{}: fp8 activation_scheme '{}' is not supported (expected \"dynamic\")", where, act);
    auto bs = qc->find("weight_block_size");
    if (bs == qc->end() || *bs != json::array({128, 128}))
      fail_input("{}: fp8 quantization_config needs weight_block_size [128, 128] (per-tensor FP8 is not supported)",
                 where);
    c.excludes_ = string_list(*qc, "modules_to_not_convert", where);
    for (auto& e : string_list(*qc, "ignored_layers", where)) c.excludes_.push_back(e);
    auto flag = [&](const char* k) {
      auto it = qc->find(k);
      return it != qc->end() && it->is_boolean() && it->get<bool>();
    };
    c.lm_head_opt_in_ = flag("lm_head");
    c.embed_opt_in_ = flag("embed_tokens");
    c.default_scheme_ = {WeightFormat::Fp8Block128, ActQuant::Fp8PerGroup128};
    return c;
  }
  if (method == "modelopt") {
    c.method_ = QuantMethod::ModelOpt;
    std::string algo;
    int group = -1;
    if (qc) {
      algo = get_str(*qc, "quant_algo");
      c.excludes_ = string_list(*qc, "ignore", where);
      if (auto kv = qc->find("kv_cache_scheme"); kv != qc->end() && kv->is_object())
        c.kv_cache_fp8_ = get_int(*kv, "num_bits") == 8 && get_str(*kv, "type") == "float";
      if (auto g = qc->find("config_groups"); g != qc->end() && g->is_object() && !g->empty()) {
        auto w = g->begin()->find("weights");
        if (w != g->begin()->end() && w->is_object()) group = get_int(*w, "group_size");
      }
    }
    if (hf && hf->is_object()) {
      auto q = hf->find("quantization");
      if (q == hf->end() || !q->is_object()) fail_input("{}: hf_quant_config.json has no 'quantization' object", where);
      if (algo.empty()) algo = get_str(*q, "quant_algo");
      if (group < 0) group = get_int(*q, "group_size");
      if (c.excludes_.empty()) c.excludes_ = string_list(*q, "exclude_modules", where);
      c.kv_cache_fp8_ = c.kv_cache_fp8_ || get_str(*q, "kv_cache_quant_algo") == "FP8";
    }
    if (algo != "NVFP4")
      fail_input("{}: ModelOpt quant_algo '{}' is not supported (expected \"NVFP4\")", where, algo);
    if (group >= 0 && group != 16) fail_input("{}: ModelOpt NVFP4 group_size {} (expected 16)", where, group);
    c.default_scheme_ = {WeightFormat::Nvfp4ModelOpt, ActQuant::Nvfp4};
    return c;
  }
  fail_input("{}: unknown quant_method '{}' (expected compressed-tensors, fp8 or modelopt)", where, method);
}

std::string QuantConfig::layout_name() const {
  switch (method_) {
    case QuantMethod::None: return "unquantized";
    case QuantMethod::CompressedTensors: {
      if (groups_.empty()) return "compressed-tensors";
      const LinearScheme& s = groups_.front().scheme;
      if (s.weight == WeightFormat::Nvfp4CT) return "compressed-tensors nvfp4-pack-quantized (" + scheme_label(s) + ")";
      return "compressed-tensors " + detail_ + " (" + scheme_label(s) + ", " + act_quant_name(s.act) + ")";
    }
    case QuantMethod::Fp8Block:
      return std::string("fp8 block-128 (W8A8, per-token-per-128 dynamic activations)") +
             (lm_head_opt_in_ || embed_opt_in_ ? ", FP8 lm_head/embed_tokens" : "");
    case QuantMethod::ModelOpt: return "ModelOpt NVFP4 (W4A4, static global input scale)";
  }
  return "?";
}

void QuantConfig::compile_if_regex(const std::string& pattern, const std::string& where) {
  if (pattern.rfind("re:", 0) == 0 && !regexes_.count(pattern))
    regexes_.emplace(pattern, ModuleRegex(std::string_view(pattern).substr(3), where));
}

bool QuantConfig::ct_match(const std::string& pattern, const std::string& name) const {
  if (pattern.rfind("re:", 0) != 0) return pattern == name;
  return regexes_.at(pattern).match_start(name);  // every pattern was compiled by parse()
}

bool QuantConfig::excluded(const std::string& name) const {
  for (const auto& e : excludes_) {
    switch (method_) {
      case QuantMethod::CompressedTensors:
        if (ct_match(e, name)) return true;
        break;
      case QuantMethod::Fp8Block:
        if (fp8_skip_matches(e, name)) return true;
        break;
      case QuantMethod::ModelOpt: {
        if (e == name || glob_matches(e, name)) return true;
        // Patterns written for the text-only naming also apply to the wrapper's names.
        const std::string lm = "model.language_model.";
        if (name.rfind(lm, 0) == 0 && glob_matches(e, "model." + name.substr(lm.size()))) return true;
        break;
      }
      case QuantMethod::None: break;
    }
  }
  return false;
}

LinearScheme QuantConfig::scheme_for(const std::string& name, bool vocab) const {
  const bool is_embed = vocab && name.find("embed_tokens") != std::string::npos;
  switch (method_) {
    case QuantMethod::None: return {};
    case QuantMethod::Fp8Block:
      if (vocab) return (is_embed ? embed_opt_in_ : lm_head_opt_in_) ? default_scheme_ : LinearScheme{};
      return excluded(name) ? LinearScheme{} : default_scheme_;
    case QuantMethod::ModelOpt:
      if (is_embed || excluded(name)) return {};
      return default_scheme_;
    case QuantMethod::CompressedTensors: {
      if (is_embed || excluded(name)) return {};
      // Specificity: exact name, then regex, then the class target "Linear".
      for (int pass = 0; pass < 3; ++pass)
        for (const auto& g : groups_)
          for (const auto& t : g.targets) {
            const bool is_re = t.rfind("re:", 0) == 0, is_class = t == "Linear";
            if ((pass == 0 && !is_re && !is_class && t == name) || (pass == 1 && is_re && ct_match(t, name)) ||
                (pass == 2 && is_class))
              return g.scheme;
          }
      return {};
    }
  }
  return {};
}

}  // namespace gdn
