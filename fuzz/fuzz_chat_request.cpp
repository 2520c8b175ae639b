// libFuzzer target for chat requests: the input is the JSON body of an OpenAI chat-completions
// request (what `gdnserve render` reads and what a server receives), normalised by
// chat_template_context and rendered through the real Qwen3.5 and Qwen3.6 chat templates. The
// request is the untrusted part here: message contents of every JSON type, malformed tool calls,
// tool-call arguments that are strings of arbitrary JSON, odd kwargs. Only gdn::InputError
// (TemplateError is one) may escape; a crash, a sanitizer report, an uncaught exception or a hang
// is a bug.
//
// The templates: $GDN_FUZZ_TEMPLATES_DIR, else fuzz/corpus/template (the Qwen templates).
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "core/error.h"
#include "template/chat_request.h"
#include "template/chat_template.h"

#ifndef GDN_FUZZ_TEMPLATES_DEFAULT
#define GDN_FUZZ_TEMPLATES_DEFAULT "fuzz/corpus/template"
#endif

namespace {

std::vector<gdn::ChatTemplate> g_templates;

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  const char* env = std::getenv("GDN_FUZZ_TEMPLATES_DIR");
  const std::string dir = env ? env : GDN_FUZZ_TEMPLATES_DEFAULT;
  for (const char* name : {"qwen35_chat_template.jinja", "qwen36_chat_template.jinja"}) {
    std::ifstream f(dir + "/" + name, std::ios::binary);
    if (!f) {
      std::fprintf(stderr, "fuzz_chat_request: %s/%s not found\n", dir.c_str(), name);
      std::exit(1);
    }
    std::ostringstream ss;
    ss << f.rdbuf();
    g_templates.push_back(gdn::ChatTemplate::compile(ss.str(), name));
  }
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const auto request = nlohmann::ordered_json::parse(data, data + size, nullptr, false);
  if (request.is_discarded()) return 0;  // not JSON: rejected before any of our code runs
  gdn::SpecialTokens specials;
  specials.eos_token = "<|im_end|>";
  gdn::TemplateLimits limits;  // what a server would set: bounded output and work
  limits.max_output_bytes = 1 << 20;
  limits.max_steps = 500'000;
  for (const gdn::ChatTemplate& t : g_templates) {
    try {
      (void)gdn::render_chat_request(t, request, specials, limits);
    } catch (const gdn::InputError&) {
      // malformed requests, template exceptions (raise_exception) and limits
    }
  }
  return 0;
}
