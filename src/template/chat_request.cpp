#include "template/chat_request.h"

#include <filesystem>
#include <fstream>
#include <sstream>

#include "core/json_depth.h"
#include "template/unicode.h"

namespace gdn {

namespace {

using ojson = nlohmann::ordered_json;

bool py_falsy(const ojson& v) {  // Python truthiness of a JSON value
  switch (v.type()) {
    case ojson::value_t::null: return true;
    case ojson::value_t::boolean: return !v.get<bool>();
    case ojson::value_t::number_integer:
    case ojson::value_t::number_unsigned:
    case ojson::value_t::number_float: return v.get<double>() == 0;
    case ojson::value_t::string: return v.get_ref<const std::string&>().empty();
    case ojson::value_t::array:
    case ojson::value_t::object: return v.empty();
    default: return false;
  }
}

void normalise_assistant(ojson& m, size_t index) {
  // vLLM: reasoning = message.get("reasoning") or message.get("reasoning_content")
  ojson reasoning;
  if (m.contains("reasoning") && !py_falsy(m["reasoning"])) {
    reasoning = m["reasoning"];
  } else if (m.contains("reasoning_content")) {
    reasoning = m["reasoning_content"];
  }
  if (!reasoning.is_null()) {
    m["reasoning"] = reasoning;
    m["reasoning_content"] = reasoning;
  }
  if (!m.contains("tool_calls") || !m["tool_calls"].is_array()) return;
  size_t k = 0;
  for (ojson& call : m["tool_calls"]) {
    const std::string where = "request: messages[" + std::to_string(index) + "].tool_calls[" + std::to_string(k++) + "]";
    if (!call.is_object() || !call.contains("function") || !call["function"].is_object()) continue;
    ojson& fn = call["function"];
    if (!fn.contains("arguments") || py_falsy(fn["arguments"])) {
      fn["arguments"] = ojson::object();
    } else if (fn["arguments"].is_string()) {
      try {
        ojson args = ojson::parse(fn["arguments"].get<std::string>());
        check_json_depth(args, where + ".function.arguments");
        fn["arguments"] = std::move(args);
      } catch (const ojson::parse_error& e) {
        throw InputError(where + ".function.arguments is not valid JSON: " + e.what());
      }
    }
  }
}

std::string read_file(const std::filesystem::path& p) {
  std::ifstream f(p, std::ios::binary);
  if (!f) throw InputError("cannot read " + p.string());
  std::ostringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

ojson read_json(const std::filesystem::path& p) {
  const std::string text = read_file(p);
  ojson j = ojson::parse(text, nullptr, false);
  if (j.is_discarded()) throw InputError(p.string() + ": not valid JSON");
  check_json_depth(j, p.string());
  return j;
}

}  // namespace

ojson chat_template_context(const ojson& request, const SpecialTokens& specials) {
  if (!request.is_object()) throw InputError("request: the body must be a JSON object");
  check_json_depth(request, "request");  // before anything copies it (copies recurse)
  if (!request.contains("messages") || !request["messages"].is_array())
    throw InputError("request: 'messages' must be an array");
  ojson messages = request["messages"];
  for (size_t i = 0; i < messages.size(); ++i) {
    ojson& m = messages[i];
    if (!m.is_object()) throw InputError("request: messages[" + std::to_string(i) + "] must be an object");
    if (!m.contains("content") || m["content"].is_null()) m["content"] = "";
    if (m.contains("role") && m["role"] == "assistant") normalise_assistant(m, i);
  }
  auto flag = [&](const char* key, bool dflt) {
    if (!request.contains(key) || request[key].is_null()) return dflt;
    if (!request[key].is_boolean()) throw InputError(std::string("request: '") + key + "' must be a boolean");
    return request[key].get<bool>();
  };
  const bool add_generation_prompt = flag("add_generation_prompt", true);
  if (flag("continue_final_message", false) && add_generation_prompt)
    throw InputError("request: continue_final_message and add_generation_prompt are not compatible; set add_generation_prompt to false");
  ojson ctx = ojson::object();
  ctx["messages"] = std::move(messages);
  ctx["tools"] = request.contains("tools") ? request["tools"] : ojson();
  ctx["documents"] = request.contains("documents") ? request["documents"] : ojson();
  ctx["add_generation_prompt"] = add_generation_prompt;
  if (specials.bos_token) ctx["bos_token"] = *specials.bos_token;
  if (specials.eos_token) ctx["eos_token"] = *specials.eos_token;
  if (request.contains("chat_template_kwargs") && !request["chat_template_kwargs"].is_null()) {
    const ojson& kw = request["chat_template_kwargs"];
    if (!kw.is_object()) throw InputError("request: 'chat_template_kwargs' must be an object");
    for (const auto& [k, v] : kw.items())
      if (k != "messages") ctx[k] = v;
  }
  return ctx;
}

std::string render_chat_request(const ChatTemplate& tmpl, const ojson& request, const SpecialTokens& specials,
                                const TemplateLimits& limits) {
  const ojson ctx = chat_template_context(request, specials);
  std::string text = tmpl.render(ctx, limits);
  if (!request.contains("continue_final_message") || request["continue_final_message"] != true) return text;
  // transformers' render_jinja_template: cut the rendering right after the final message.
  const ojson& messages = ctx["messages"];
  if (messages.empty()) throw InputError("request: continue_final_message needs a final message");
  ojson final = messages.back()["content"];
  if (final.is_array()) {
    ojson text_block;
    for (auto it = final.rbegin(); it != final.rend(); ++it)
      if (it->is_object() && it->contains("text")) {
        text_block = (*it)["text"];
        break;
      }
    if (text_block.is_null())
      throw InputError("continue_final_message is set but we could not find any text to continue in the final message!");
    final = text_block;
  }
  if (!final.is_string()) throw InputError("request: continue_final_message needs the final message's content to be text");
  const std::string msg = final.get<std::string>();
  const std::string stripped = tpl::uni::strip(msg, true, true, nullptr);
  const std::string lstripped = tpl::uni::strip(msg, true, false, nullptr);
  const size_t loc = stripped.empty() ? text.size() : text.rfind(stripped);
  if (loc == std::string::npos)
    throw InputError(
        "continue_final_message is set but the final message does not appear in the chat after applying the chat "
        "template! This can happen if the chat template deletes portions of the final message. Please verify the chat "
        "template and final message in your chat to ensure they are compatible.");
  if (text.substr(loc, lstripped.size()) == msg) return text.substr(0, loc + lstripped.size());  // spacing kept
  return text.substr(0, loc + stripped.size());
}

ChatTemplate load_chat_template(const std::string& model_dir, const std::string& override_file) {
  namespace fs = std::filesystem;
  if (!override_file.empty()) {
    if (!fs::is_regular_file(override_file)) throw InputError("--chat-template: no such file: " + override_file);
    return ChatTemplate::compile(read_file(override_file), override_file);
  }
  const fs::path dir(model_dir);
  if (!fs::is_directory(dir)) throw InputError("--model: not a directory: " + model_dir);
  if (fs::is_regular_file(dir / "chat_template.jinja"))
    return ChatTemplate::compile(read_file(dir / "chat_template.jinja"), (dir / "chat_template.jinja").string());
  const fs::path config = dir / "tokenizer_config.json";
  if (fs::is_regular_file(config)) {
    const ojson cfg = read_json(config);
    if (cfg.is_object() && cfg.contains("chat_template")) {
      const ojson& t = cfg["chat_template"];
      const std::string name = config.string() + ":chat_template";
      if (t.is_string()) return ChatTemplate::compile(t.get<std::string>(), name);
      if (t.is_array()) {  // [{"name": ..., "template": ...}]: transformers uses "default"
        for (const ojson& e : t)
          if (e.is_object() && e.contains("name") && e["name"] == "default" && e.contains("template") &&
              e["template"].is_string())
            return ChatTemplate::compile(e["template"].get<std::string>(), name + "[default]");
        throw InputError(config.string() + ": chat_template lists several templates but none named \"default\"");
      }
      if (!t.is_null()) throw InputError(config.string() + ": chat_template must be a string or a list of {name, template}");
    }
  }
  const fs::path cj = dir / "chat_template.json";
  if (fs::is_regular_file(cj)) {
    const ojson j = read_json(cj);
    if (j.is_object() && j.contains("chat_template") && j["chat_template"].is_string())
      return ChatTemplate::compile(j["chat_template"].get<std::string>(), cj.string() + ":chat_template");
  }
  throw InputError("no chat template: " + model_dir +
                   " has no chat_template.jinja and no chat_template in tokenizer_config.json (pass --chat-template FILE)");
}

SpecialTokens load_special_tokens(const std::string& model_dir) {
  SpecialTokens s;
  const std::filesystem::path config = std::filesystem::path(model_dir) / "tokenizer_config.json";
  if (!std::filesystem::is_regular_file(config)) return s;
  const ojson cfg = read_json(config);
  if (!cfg.is_object()) return s;
  auto token = [&](const char* key) -> std::optional<std::string> {
    if (!cfg.contains(key)) return std::nullopt;
    const ojson& t = cfg[key];
    if (t.is_string()) return t.get<std::string>();
    if (t.is_object() && t.contains("content") && t["content"].is_string()) return t["content"].get<std::string>();
    return std::nullopt;
  };
  s.bos_token = token("bos_token");
  s.eos_token = token("eos_token");
  return s;
}

}  // namespace gdn
