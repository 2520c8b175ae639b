// libFuzzer target for the checkpoint configuration: config.json, generation_config.json and
// ModelOpt's hf_quant_config.json, as parse_qwen35_config reads them (the quantization schemes,
// their ignore lists and "re:" patterns included). The input is up to three documents separated by
// a 0x01 byte: config | generation | hf_quant. Bad input must end in gdn::InputError; any other
// exception, a crash or a sanitizer report is a bug.
//
// What is accepted is then used as the loader uses it: the per-sequence state sizes, and the
// scheme of every Linear module name of the model (which runs the config's patterns), and must
// hold the invariants the rest of the engine relies on.
#include <cstdint>
#include <string>
#include <string_view>

#include "core/error.h"
#include "fuzz_check.h"
#include "model/config.h"

namespace {

using gdn::fuzz::check;

// The module names the loader asks a scheme for (one layer of each kind, the vocab matrices, MTP).
void use_config(const gdn::Qwen35Config& c) {
  check(c.vocab_size > 0 && c.hidden_size > 0 && c.num_layers > 0, "accepted a config without sizes");
  check(int64_t(c.layer_kinds.size()) == c.num_layers, "layer_kinds does not cover every layer");
  check(c.rotary_dim % 2 == 0 && c.rotary_dim <= c.head_dim, "rotary_dim odd or past head_dim");
  check(c.num_linear_layers() >= 0 && c.num_attention_layers() >= 0, "negative layer counts");
  (void)c.deltanet_state_bytes();
  (void)c.kv_bytes_per_token(2);
  const std::string p = c.tensor_prefix;
  const char* linears[] = {"layers.0.linear_attn.in_proj_qkv", "layers.0.linear_attn.in_proj_z",
                           "layers.0.linear_attn.in_proj_b",   "layers.0.linear_attn.out_proj",
                           "layers.3.self_attn.q_proj",        "layers.3.self_attn.k_proj",
                           "layers.3.self_attn.o_proj",        "layers.1.mlp.gate_proj",
                           "layers.1.mlp.down_proj"};
  for (const char* l : linears) {
    (void)c.quant.scheme_for(p + l);
    (void)c.quant.excluded(p + l);
  }
  (void)c.quant.scheme_for("lm_head", true);
  (void)c.quant.scheme_for(p + "embed_tokens", true);
  (void)c.quant.scheme_for("mtp.layers.0.mlp.gate_proj");
  (void)c.quant.layout_name();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view in(reinterpret_cast<const char*>(data), size);
  const size_t a = in.find('\x01');
  const size_t b = a == std::string_view::npos ? a : in.find('\x01', a + 1);
  const std::string config(in.substr(0, a));
  const std::string generation(a == std::string_view::npos ? std::string_view() : in.substr(a + 1, b - a - 1));
  const std::string hf_quant(b == std::string_view::npos ? std::string_view() : in.substr(b + 1));
  try {
    use_config(gdn::parse_qwen35_config(config, generation, "fuzz/config.json", hf_quant));
  } catch (const gdn::InputError&) {
    // the only error bad configuration may produce
  }
  return 0;
}
