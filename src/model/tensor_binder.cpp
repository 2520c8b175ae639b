#include "model/tensor_binder.h"

#include <cmath>

#include "core/error.h"

namespace gdn {

int64_t TensorGroupStats::bytes() const {
  int64_t b = 0;
  for (const auto& [dt, n] : bytes_by_dtype) b += n;
  return b;
}

namespace {
bool is_float_dtype(DType t) { return t == DType::F32 || t == DType::BF16 || t == DType::F16; }
std::string dtype_list(std::initializer_list<DType> ds) {
  std::string s;
  for (DType d : ds) s += (s.empty() ? "" : " or ") + std::string(dtype_name(d));
  return s;
}
int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }
}  // namespace

TensorGroupStats& TensorBinder::group(const std::string& name) {
  for (auto& s : stats_)
    if (s.group == name) return s;
  stats_.push_back({name, {}, {}, 0});
  return stats_.back();
}

const TensorRef& TensorBinder::take(const std::string& name, const std::string& grp, int64_t params) {
  auto [it, fresh] = taken_.emplace(name, ck_.get(name));
  if (fresh) {
    used_.insert(name);
    TensorGroupStats& g = group(grp);
    g.bytes_by_dtype[std::string(dtype_name(it->second.dtype()))] += int64_t(it->second.nbytes());
    g.params += params;
  }
  return it->second;
}

std::vector<float> TensorBinder::vec(const std::string& name, const std::vector<int64_t>& shape, const std::string& grp) {
  const TensorRef t = ck_.get(name);
  if (t.shape() != shape)
    fail_input("tensor '{}' in {}: shape {} but the config implies {}", name, *t.file, shape_str(t.shape()),
               shape_str(shape));
  if (!is_float_dtype(t.dtype()) && t.dtype() != DType::F64)
    fail_input("tensor '{}' in {}: dtype {} is not a floating-point type", name, *t.file, dtype_name(t.dtype()));
  take(name, grp, t.numel());
  group(grp).precisions.insert(std::string(dtype_name(t.dtype())));
  std::vector<float> out(size_t(t.numel()));
  for (size_t i = 0; i < out.size(); ++i) out[i] = load_as_float(t.dtype(), t.data, i);
  return out;
}

float TensorBinder::scalar(const std::string& name, const std::string& grp) {
  const TensorRef t = ck_.get(name);
  if (!(t.shape().empty() || t.shape() == std::vector<int64_t>{1}) || !dtype_is_float(t.dtype()))
    fail_input("tensor '{}' in {}: expected a float scalar of shape [] or [1], found {} {}", name, *t.file,
               dtype_name(t.dtype()), shape_str(t.shape()));
  take(name, grp, 0);
  const float v = load_as_float(t.dtype(), t.data, 0);
  if (!std::isfinite(v) || v <= 0.f)
    fail_input("tensor '{}' in {}: scale must be a positive finite number, got {}", name, *t.file, v);
  return v;
}

std::string TensorBinder::file_holds(const std::string& module) const {
  std::string s;
  for (const char* suffix : {".weight", ".weight_packed", ".weight_scale", ".weight_scale_inv", ".weight_scale_2",
                             ".input_scale", ".weight_global_scale", ".input_global_scale"}) {
    const std::string n = module + suffix;
    if (!ck_.has(n)) continue;
    const TensorRef t = ck_.get(n);
    s += (s.empty() ? "" : ", ") + std::string(suffix + 1) + " " + std::string(dtype_name(t.dtype())) + " " +
         shape_str(t.shape());
  }
  return s.empty() ? "no tensor of that module (checkpoint at " + ck_.dir() + ")" : s;
}

LinearScheme TensorBinder::scheme_in_file(const std::string& module) const {
  // The file decides for modules the config does not describe (the MTP head, formats.md §9.4).
  LinearScheme s;
  if (ck_.has(module + ".weight_packed")) {
    s.weight = WeightFormat::Nvfp4CT;
    if (ck_.has(module + ".input_global_scale")) s.act = ActQuant::Nvfp4;
  } else if (ck_.has(module + ".weight") && ck_.get(module + ".weight").dtype() == DType::U8) {
    s.weight = WeightFormat::Nvfp4ModelOpt;
    if (ck_.has(module + ".input_scale")) s.act = ActQuant::Nvfp4;
  } else if (ck_.has(module + ".weight") && ck_.get(module + ".weight").dtype() == DType::F8_E4M3) {
    const bool per_channel = ck_.has(module + ".weight_scale") && ck_.get(module + ".weight_scale").shape().size() == 2 &&
                             ck_.get(module + ".weight_scale").shape()[1] == 1 &&
                             ck_.get(module + ".weight").shape()[1] > 1;
    s.weight = per_channel ? WeightFormat::Fp8PerChannel : WeightFormat::Fp8Block128;
    s.act = per_channel ? ActQuant::Fp8PerToken : ActQuant::Fp8PerGroup128;
  }
  return s;
}

TensorRef TensorBinder::expect(const std::string& module, const std::string& suffix, std::initializer_list<DType> dtypes,
                               const std::vector<int64_t>& shape, const std::string& why) {
  const std::string name = module + "." + suffix;
  if (!ck_.has(name))
    fail_input("module '{}': tensor '{}' is missing ({}); the file holds {}", module, name, why, file_holds(module));
  const TensorRef t = ck_.get(name);
  bool dtype_ok = false;
  for (DType d : dtypes) dtype_ok |= t.dtype() == d;
  if (!dtype_ok)
    fail_input("module '{}': tensor '{}' in {} has dtype {} but {} needs {}", module, name, *t.file,
               dtype_name(t.dtype()), why, dtype_list(dtypes));
  if (!shape.empty() && t.shape() != shape) {
    // Scales may be stored as [n] instead of [n, 1], scalars as [] instead of [1].
    const bool flat_ok = shape.size() == 2 && shape[1] == 1 && t.shape() == std::vector<int64_t>{shape[0]};
    const bool scalar_ok = shape == std::vector<int64_t>{1} && t.shape().empty();
    if (!flat_ok && !scalar_ok)
      fail_input("module '{}': tensor '{}' in {} has shape {} but {} needs {}", module, name, *t.file,
                 shape_str(t.shape()), why, shape_str(shape));
  }
  return t;
}

MatrixRef TensorBinder::linear(const std::string& module, int64_t rows, int64_t cols, const std::string& grp,
                               bool vocab) {
  const bool is_mtp = module.rfind("mtp.", 0) == 0;
  LinearScheme scheme = is_mtp ? scheme_in_file(module) : cfg_.quant.scheme_for(module, vocab);
  if (vocab && module.find("embed_tokens") != std::string::npos) scheme.act = ActQuant::None;  // a lookup
  if (mode_ == ActivationMode::WeightOnly) scheme.act = ActQuant::None;
  const std::string label = scheme_label(scheme);
  auto info = std::make_shared<QuantInfo>();
  info->scheme = scheme;
  MatrixRef m{DType::F32, nullptr, rows, cols, nullptr};

  switch (scheme.weight) {
    case WeightFormat::Dense: {
      if (!ck_.has(module + ".weight") && !ck_.has(module + ".weight_packed"))
        fail_input("tensor '{}.weight' not found in the checkpoint at {} (expected an unquantized [{}, {}] weight)",
                   module, ck_.dir(), rows, cols);
      if (!is_float_dtype(ck_.get(module + ".weight").dtype()) ||
          ck_.has(module + ".weight_packed"))
        fail_input("module '{}': {} says it is not quantized, which needs a BF16, F16 or F32 weight [{}, {}]; the file "
                   "holds {}", module, cfg_.quant.method() == QuantMethod::None ? "config.json" : "quantization_config",
                   rows, cols, file_holds(module));
      const TensorRef w = expect(module, "weight", {DType::BF16, DType::F16, DType::F32}, {rows, cols}, "a dense weight");
      take(w.name(), grp, rows * cols);
      group(grp).precisions.insert(std::string(dtype_name(w.dtype())));
      return MatrixRef{w.dtype(), w.data, rows, cols, nullptr};
    }
    case WeightFormat::Fp8PerChannel: {
      const std::string why = "FP8 per-channel (" + label + ")";
      const TensorRef w = expect(module, "weight", {DType::F8_E4M3}, {rows, cols}, why);
      const TensorRef s = expect(module, "weight_scale", {DType::BF16, DType::F16, DType::F32}, {rows, 1}, why);
      take(w.name(), grp, rows * cols);
      take(s.name(), grp, 0);
      info->scales.resize(size_t(rows));
      for (int64_t i = 0; i < rows; ++i) info->scales[size_t(i)] = load_as_float(s.dtype(), s.data, size_t(i));
      m = {DType::F8_E4M3, w.data, rows, cols, info};
      break;
    }
    case WeightFormat::Fp8Block128: {
      const std::string why = "FP8 block-128 (" + label + ")";
      // Qwen/DeepSeek call the block scale weight_scale_inv (a multiplier despite the name);
      // compressed-tensors calls it weight_scale.
      const char* sname = cfg_.quant.method() == QuantMethod::CompressedTensors ? "weight_scale" : "weight_scale_inv";
      const TensorRef w = expect(module, "weight", {DType::F8_E4M3}, {rows, cols}, why);
      const TensorRef s = expect(module, sname, {DType::BF16, DType::F16, DType::F32},
                                 {ceil_div(rows, 128), ceil_div(cols, 128)}, why);
      take(w.name(), grp, rows * cols);
      take(s.name(), grp, 0);
      info->scales.resize(size_t(s.numel()));
      for (size_t i = 0; i < info->scales.size(); ++i) info->scales[i] = load_as_float(s.dtype(), s.data, i);
      m = {DType::F8_E4M3, w.data, rows, cols, info};
      break;
    }
    case WeightFormat::Nvfp4ModelOpt:
    case WeightFormat::Nvfp4CT: {
      const bool ct = scheme.weight == WeightFormat::Nvfp4CT;
      const std::string why = std::string(ct ? "compressed-tensors" : "ModelOpt") + " NVFP4 (" + label + ")";
      if (cols % 16 != 0)
        fail_input("module '{}': NVFP4 needs an input width divisible by 16, the config implies {}", module, cols);
      const TensorRef w = expect(module, ct ? "weight_packed" : "weight", {DType::U8}, {rows, cols / 2},
                                 why + ", two E2M1 values per byte");
      const TensorRef s = expect(module, "weight_scale", {DType::F8_E4M3}, {rows, cols / 16}, why);
      expect(module, ct ? "weight_global_scale" : "weight_scale_2", {DType::F32}, {1}, why);
      take(w.name(), grp, rows * cols);
      take(s.name(), grp, 0);
      info->nvfp4_block_scales = s.data;
      if (ct) {
        info->nvfp4_weight_divisor = scalar(module + ".weight_global_scale", grp);
      } else {
        info->nvfp4_weight_divisor = float(1.0 / double(scalar(module + ".weight_scale_2", grp)));
      }
      // The static input scale is part of the checkpoint even when we run weight-only.
      const char* in_name = ct ? "input_global_scale" : "input_scale";
      if (cfg_.quant.scheme_for(module, vocab).act == ActQuant::Nvfp4 || ck_.has(module + "." + in_name)) {
        expect(module, in_name, {DType::F32}, {1}, why + " with static activation quantization");
        const float v = scalar(module + "." + in_name, grp);
        info->nvfp4_input_global = ct ? v : float(1.0 / double(v));
      }
      m = {DType::U8, w.data, rows, cols, info};
      break;
    }
  }
  group(grp).precisions.insert(label);
  return m;
}

}  // namespace gdn
