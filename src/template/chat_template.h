// Chat templates: a Jinja2 implementation that renders the templates shipped with models exactly
// as Hugging Face transformers' apply_chat_template does (jinja2 ImmutableSandboxedEnvironment
// with trim_blocks, lstrip_blocks and loopcontrols; globals raise_exception and strftime_now;
// transformers' own `tojson` filter = json.dumps(x, ensure_ascii=False, ...)).
//
// Templates are untrusted input. Compilation and rendering never crash or hang: syntax errors,
// template-raised errors, runtime errors and exceeded limits all surface as TemplateError (an
// InputError, so the CLI exits with code 2 and the server answers 400).
//
// Known differences from Jinja2 (none affects the chat templates we test against):
//  * integers are 64-bit (Python's are unbounded): overflow is an error;
//  * filters that return generators (|map, |select, |items, ...) compute their items eagerly,
//    so an error inside one surfaces even if the generator is never consumed;
//  * range() and dict.items()/keys()/values() return lists (their repr differs from Python's);
//  * Unicode case mapping covers Latin, Greek, Cyrillic and Armenian; isalpha, `\w` and
//    isprintable are approximations outside those scripts;
//  * include/import/extends fail at render time, as in transformers (no template loader);
//    {% autoescape %}, cycler(), lipsum(), *args/**kwargs in calls, \N{...} escapes and the
//    filters filesizeformat, groupby, pprint, random, striptags, urlencode, urlize, wordwrap
//    and xmlattr are not supported (a clear error when used);
//  * str.format supports fields and !r/!s conversions but no format specs;
//  * reprs of functions and generators carry no memory address.
#pragma once

#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "core/error.h"

namespace gdn {

struct TemplateLimits {
  size_t max_output_bytes = size_t(64) << 20;  // the rendered text and any string built on the way
  size_t max_steps = 20'000'000;               // evaluation steps, plus one per 64 bytes of data built
  size_t max_loop_iterations = 1'000'000;      // all loops of one render together
  int max_call_depth = 100;                    // nested macro calls (Jinja2 hits Python's recursion limit)
  int max_eval_depth = 1000;                   // nested evaluation (bounds the native stack)
};

class TemplateError : public InputError {
 public:
  enum class Kind {
    Syntax,   // what(): "name:line:col: message"
    Raised,   // raise_exception(msg) in the template; what() is msg verbatim
    Runtime,  // what(): "name:line: PythonType: message" (TypeError, UndefinedError, SecurityError, ...)
    Limit,    // a TemplateLimits bound was hit; what(): "name: message"
  };
  TemplateError(Kind kind, const std::string& what, std::string message, std::string python_type, int line, int col)
      : InputError(what), kind_(kind), message_(std::move(message)), type_(std::move(python_type)), line_(line), col_(col) {}
  Kind kind() const { return kind_; }
  const std::string& message() const { return message_; }  // without location
  // The exception class jinja2 raises in the same situation: "TemplateSyntaxError",
  // "TemplateError" (raise_exception), "UndefinedError", "TypeError", "SecurityError", ...
  const std::string& python_type() const { return type_; }
  int line() const { return line_; }
  int column() const { return col_; }

 private:
  Kind kind_;
  std::string message_, type_;
  int line_, col_;
};

class ChatTemplate {
 public:
  // Parses `source`; `name` prefixes error locations. Throws TemplateError (Kind::Syntax).
  static ChatTemplate compile(const std::string& source, const std::string& name = "chat_template");

  // Renders with the given variables (an object). Key order matters for `tojson`, so pass an
  // ordered_json (a plain nlohmann::json has its keys sorted already). Throws TemplateError.
  std::string render(const nlohmann::ordered_json& context, const TemplateLimits& limits = {}) const;
  std::string render(const nlohmann::json& context, const TemplateLimits& limits = {}) const;

  const std::string& name() const;
  const std::string& source() const;

  struct Impl;

 private:
  std::shared_ptr<const Impl> impl_;
};

}  // namespace gdn
