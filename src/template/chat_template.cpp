#include "template/chat_template.h"

#include "template/interp.h"
#include "template/lexer.h"
#include "template/parser.h"
#include "template/unicode.h"

namespace gdn {

struct ChatTemplate::Impl {
  std::string name, source;
  tpl::Body body;
};

namespace {

using tpl::Value;

// JSON → template values (JSON null/true/false → None/True/False). Depth-capped before
// recursing, and every string is checked to be valid UTF-8.
Value from_json(const nlohmann::ordered_json& j, int depth) {
  if (depth > tpl::kMaxDepth) throw InputError("template context: JSON nested more than " + std::to_string(tpl::kMaxDepth) + " levels deep");
  using T = nlohmann::ordered_json::value_t;
  auto text = [](const std::string& s) {
    if (tpl::uni::find_invalid(s) != std::string::npos) throw InputError("template context: string is not valid UTF-8");
    return s;
  };
  switch (j.type()) {
    case T::null: return Value::none();
    case T::boolean: return Value::boolean(j.get<bool>());
    case T::number_integer: return Value::integer(j.get<int64_t>());
    case T::number_unsigned: {
      const uint64_t u = j.get<uint64_t>();
      return u <= uint64_t(INT64_MAX) ? Value::integer(int64_t(u)) : Value::number(double(u));
    }
    case T::number_float: return Value::number(j.get<double>());
    case T::string: return Value::str(text(j.get_ref<const std::string&>()));
    case T::array: {
      std::vector<Value> items;
      items.reserve(j.size());
      for (const auto& x : j) items.push_back(from_json(x, depth + 1));
      return Value::list(std::move(items));
    }
    case T::object: {
      std::vector<std::pair<Value, Value>> entries;
      entries.reserve(j.size());
      for (const auto& [k, v] : j.items()) entries.emplace_back(Value::str(text(k)), from_json(v, depth + 1));
      return Value::dict(std::move(entries));
    }
    default: throw InputError("template context: binary JSON values are not supported");
  }
}

TemplateError syntax_error(const std::string& name, const std::string& msg, int line, int col) {
  return TemplateError(TemplateError::Kind::Syntax, name + ":" + std::to_string(line) + ":" + std::to_string(col) + ": " + msg,
                       msg, "TemplateSyntaxError", line, col);
}

}  // namespace

ChatTemplate ChatTemplate::compile(const std::string& source, const std::string& name) {
  auto impl = std::make_shared<Impl>();
  impl->name = name;
  impl->source = source;
  if (const size_t bad = tpl::uni::find_invalid(source); bad != std::string::npos) {
    int line = 1;
    size_t line_start = 0;
    for (size_t i = 0; i < bad; ++i)
      if (source[i] == '\n') ++line, line_start = i + 1;
    throw syntax_error(name, "template source is not valid UTF-8", line, int(tpl::uni::length(source.substr(line_start, bad - line_start))) + 1);
  }
  try {
    impl->body = tpl::parse(tpl::tokenize(source));
  } catch (const tpl::SyntaxError& e) {
    throw syntax_error(name, e.message, e.line, e.col);
  }
  ChatTemplate t;
  t.impl_ = std::move(impl);
  return t;
}

std::string ChatTemplate::render(const nlohmann::json& context, const TemplateLimits& limits) const {
  return render(nlohmann::ordered_json(context), limits);
}

std::string ChatTemplate::render(const nlohmann::ordered_json& context, const TemplateLimits& limits) const {
  if (!context.is_object()) throw InputError("template context must be a JSON object");
  std::vector<std::unique_ptr<tpl::Namespace>> arena;  // outlives every value of this render
  std::string out;
  tpl::Renderer r(limits, arena);
  try {
    tpl::Frame root;
    for (const auto& [k, v] : context.items()) root.set(k, from_json(v, 1));
    r.render(impl_->body, root, out);
  } catch (const tpl::RenderError& e) {
    if (e.type == "TemplateError")  // raise_exception(): the template's own message, verbatim
      throw TemplateError(TemplateError::Kind::Raised, e.message, e.message, e.type, r.line(), 0);
    if (e.type == "LimitExceeded")
      throw TemplateError(TemplateError::Kind::Limit, impl_->name + ": " + e.message, e.message, e.type, r.line(), 0);
    throw TemplateError(TemplateError::Kind::Runtime,
                        impl_->name + ":" + std::to_string(r.line()) + ": " + e.type + ": " + e.message, e.message, e.type,
                        r.line(), 0);
  }
  return out;
}

const std::string& ChatTemplate::name() const { return impl_->name; }
const std::string& ChatTemplate::source() const { return impl_->source; }

}  // namespace gdn
