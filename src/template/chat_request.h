// From an OpenAI chat-completions request to a rendered prompt, the way vLLM drives
// transformers' apply_chat_template:
//
//  * the template sees `messages`, `tools` (None when absent — transformers always passes it),
//    `documents` (None when absent), `add_generation_prompt` (request field, default true), the
//    keys of `chat_template_kwargs` at top level (enable_thinking, preserve_thinking, ...; they
//    may override anything but `messages`), and `bos_token`/`eos_token` from
//    tokenizer_config.json when present;
//  * messages are passed as given, with three normalisations vLLM applies before rendering:
//    - assistant `tool_calls[].function.arguments` JSON strings are parsed into objects (OpenAI
//      sends strings; the Qwen templates iterate `arguments|items`); an empty or missing
//      `arguments` becomes {} (vLLM's _postprocess_messages); invalid JSON is an InputError;
//    - an assistant message's `reasoning` and `reasoning_content` are both set from whichever
//      is given (vLLM passes both, for templates that read either);
//    - a null or missing `content` becomes "" (vLLM's parser turns None into empty content);
//    list-of-parts content is left to the template (the Qwen3.5/3.6 templates handle it);
//  * tools are passed exactly as given (tojson keeps their key order);
//  * `continue_final_message: true` cuts the rendering right after the final message's text,
//    as transformers does; it cannot be combined with add_generation_prompt.
#pragma once

#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "template/chat_template.h"

namespace gdn {

struct SpecialTokens {
  std::optional<std::string> bos_token, eos_token;
};

// Throws InputError for malformed requests.
nlohmann::ordered_json chat_template_context(const nlohmann::ordered_json& request, const SpecialTokens& specials = {});

// Renders `request` (applying continue_final_message). Throws InputError / TemplateError.
std::string render_chat_request(const ChatTemplate& tmpl, const nlohmann::ordered_json& request,
                                const SpecialTokens& specials = {}, const TemplateLimits& limits = {});

// The model's template: `override_file` if given, else DIR/chat_template.jinja, else
// DIR/tokenizer_config.json "chat_template" (a string, or a list of {name, template} from which
// "default" is taken), else DIR/chat_template.json "chat_template". InputError when none exists.
ChatTemplate load_chat_template(const std::string& model_dir, const std::string& override_file = "");

// bos_token / eos_token of DIR/tokenizer_config.json (strings or {"content": ...}); empty when absent.
SpecialTokens load_special_tokens(const std::string& model_dir);

}  // namespace gdn
