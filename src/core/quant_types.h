// Vocabulary shared by the quantization layers: how a Linear's weight is stored and how its input
// activations are quantized (formats.md §0, §2–7). Parsing lives in formats/quant_config.h, the
// CPU numerics in kernels/cpu/quant.h.
#pragma once

#include <cstdint>
#include <vector>

namespace gdn {

// How a Linear's weight is stored.
enum class WeightFormat {
  Dense,          // BF16 / F16 / F32 weight
  Fp8PerChannel,  // F8_E4M3 weight, weight_scale [out, 1] (multiplier)
  Fp8Block128,    // F8_E4M3 weight, weight_scale_inv (Qwen) or weight_scale (CT) [⌈out/128⌉, ⌈in/128⌉] (multiplier)
  Nvfp4ModelOpt,  // U8 weight [out, in/2], F8 weight_scale [out, in/16], weight_scale_2 (×), input_scale (×)
  Nvfp4CT,        // U8 weight_packed, F8 weight_scale, weight_global_scale (÷), input_global_scale (÷)
};

// How its input activations are quantized at run time.
enum class ActQuant {
  None,            // weight-only
  Fp8PerToken,     // dynamic, one scale per token: amax/448, floored at 1/(448·512)
  Fp8PerGroup128,  // dynamic, one scale per token and 128-wide K group: max(amax, 1e-10)/448
  Nvfp4,           // 16-element blocks with FP8 block scales and the static global input scale
};

struct LinearScheme {
  WeightFormat weight = WeightFormat::Dense;
  ActQuant act = ActQuant::None;
  bool operator==(const LinearScheme&) const = default;
};

// Everything the CPU kernels need to dequantize a weight and quantize its input, decoded at load.
struct QuantInfo {
  LinearScheme scheme;
  std::vector<float> scales;  // Fp8PerChannel: [out]; Fp8Block128: [⌈out/128⌉ × ⌈in/128⌉] row-major
  const uint8_t* nvfp4_block_scales = nullptr;  // [out, in/16] E4M3 codes (in the mapped file)
  float nvfp4_weight_divisor = 1.f;  // W = e2m1 · s_block / divisor (CT: weight_global_scale; ModelOpt: 1/weight_scale_2)
  float nvfp4_input_global = 1.f;    // G_x (CT: input_global_scale; ModelOpt: 1/input_scale)
};

}  // namespace gdn
