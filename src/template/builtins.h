// Jinja2's built-in filters, tests and globals, and the Python methods templates call on
// strings, dicts and lists. Each takes the renderer (for callbacks such as |map('upper') and
// for the size/work limits) and raises RenderError like the Python original.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "template/value.h"

namespace gdn::tpl {

// Arguments of a call, bound to parameters Python-style.
struct CallArgs {
  std::vector<Value> pos;
  std::vector<std::pair<std::string, Value>> kw;

  // One slot per parameter name, filled from positionals then keywords; TypeError on unknown
  // keywords, duplicates, too many positionals or a missing one among the first `required`.
  std::vector<std::optional<Value>> bind(const std::string& fn, std::initializer_list<const char*> params,
                                         size_t required = 0) const;
};

// Names jinja2 knows (compile-time check of `|name` and `is name`).
bool is_jinja_filter(std::string_view name);
bool is_jinja_test(std::string_view name);

Value call_filter(Renderer& r, const std::string& name, const Value& input, CallArgs& args);
// The filters over sequences (filters_seq.cpp); nullopt when `name` is not one of them.
std::optional<Value> sequence_filter(Renderer& r, const std::string& name, const Value& input, CallArgs& args);
// jinja2's make_attrgetter: "a.b.0" looked up part by part with the sandboxed getitem.
Value get_attribute_path(Renderer& r, const Value& item, const Value& attribute, const std::optional<Value>& dflt);
bool call_test(Renderer& r, const std::string& name, const Value& v, CallArgs& args);

// Python attribute access on built-in types: returns a bound method, a sandbox-blocked
// ("unsafe") undefined for mutating methods, or nullopt when the type has no such attribute.
std::optional<Value> builtin_attribute(const Value& obj, const std::string& name);
Value call_method(Renderer& r, const Value& self, const std::string& name, CallArgs& args);

// Globals: range, dict, namespace, raise_exception, strftime_now, cycler, joiner.
std::optional<Value> builtin_global(const std::string& name);

// Python slicing obj[start:stop:step] of a str, list or tuple.
Value py_slice(const Value& obj, const Value& start, const Value& stop, const Value& step);

}  // namespace gdn::tpl
