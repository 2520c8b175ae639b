// Writes a random-weight checkpoint of the real Qwen3.5 architecture and published layout
// (wrapper config.json with text_config, model.language_model.* tensors in BF16 with the Qwen3.5
// F32 exceptions, untied lm_head, an MTP head in mtp.safetensors, generation_config.json).
// The weights are random: the model computes, but what it says is noise.
#pragma once

#include <cstdint>
#include <string>

namespace gdn {

struct DemoPreset {
  std::string name;
  int64_t vocab, hidden, intermediate, layers, heads, kv_heads, head_dim;
  int64_t linear_key_heads, linear_value_heads, linear_key_dim, linear_value_dim;
};

// "demo" (the README's embedded default: 133M parameters, 127M of them the real 248,320-token
// embedding and lm_head) or "mid" (a mid-size config for CPU benchmarks). Throws InputError for
// other names.
DemoPreset demo_preset(const std::string& name);

// The text side of the demo: a tokenizer.json (+ tokenizer_config.json) directory and a chat
// template file to copy in. Empty paths leave them out (the model then only takes token ids).
struct DemoText {
  std::string tokenizer_dir;
  std::string chat_template_file;
};

// Writes the checkpoint; with `text`, also tokenizer.json, tokenizer_config.json (its own
// "chat_template" removed so that chat_template.jinja is the one used) and chat_template.jinja, and
// sets the eos ids from the tokenizer's <|im_end|> and <|endoftext|>.
void write_demo_checkpoint(const std::string& dir, const DemoPreset& p, uint64_t seed, const DemoText& text = {});

}  // namespace gdn
