// libFuzzer target for the chat-template engine: the input is template source, compiled and
// rendered with a fixed context shaped like a real chat request (messages with list content,
// tool calls, tools, kwargs) and tight limits, so that runaway templates end quickly.
// Only gdn::InputError (TemplateError is one) may escape; a crash, a sanitizer report, an
// uncaught exception or a hang is a bug.
#include <cstddef>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>

#include "core/error.h"
#include "template/chat_request.h"
#include "template/chat_template.h"

namespace {

const char* kRequest = R"({
  "messages": [
    {"role": "system", "content": [{"type": "text", "text": "You are terse."}]},
    {"role": "user", "content": "What's the weather in Zürich? 你好"},
    {"role": "assistant", "content": null, "reasoning_content": "call a tool",
     "tool_calls": [{"id": "c1", "type": "function",
                     "function": {"name": "get_weather", "arguments": "{\"city\": \"Zürich\", \"days\": 2, \"hourly\": true, \"x\": null, \"l\": [1, 2.5], \"o\": {\"k\": \"v\"}}"}}]},
    {"role": "tool", "tool_call_id": "c1", "content": "<tool_response>21C</tool_response>"},
    {"role": "user", "content": [{"type": "text", "text": "Thanks"}, {"type": "image_url", "image_url": {"url": "u"}}]}
  ],
  "tools": [{"type": "function", "function": {"name": "get_weather", "description": "Weather.",
             "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}],
  "chat_template_kwargs": {"enable_thinking": false, "preserve_thinking": true, "n": 3, "f": 1.5, "nested": {"a": [[{}]]}}
})";

nlohmann::ordered_json make_context() {
  gdn::SpecialTokens specials;
  specials.bos_token = "<s>";
  specials.eos_token = "<|im_end|>";
  return gdn::chat_template_context(nlohmann::ordered_json::parse(kRequest), specials);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const nlohmann::ordered_json context = make_context();
  gdn::TemplateLimits limits;
  limits.max_output_bytes = 1 << 20;
  limits.max_steps = 200'000;
  limits.max_loop_iterations = 20'000;
  limits.max_call_depth = 50;
  limits.max_eval_depth = 400;
  try {
    const auto tmpl = gdn::ChatTemplate::compile(std::string(reinterpret_cast<const char*>(data), size), "fuzz");
    (void)tmpl.render(context, limits);
  } catch (const gdn::InputError&) {
    // expected for most inputs: syntax, runtime and limit errors
  }
  return 0;
}
