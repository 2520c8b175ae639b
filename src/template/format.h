// Text conversions with Python's exact spelling: str() and repr() of values (what `{{ x }}` and
// `|string` print), float repr, json.dumps as transformers' `tojson` filter calls it, printf-style
// `%` formatting and HTML escaping (markupsafe).
#pragma once

#include <optional>
#include <string>

#include "template/value.h"

namespace gdn::tpl {

std::string float_repr(double f);  // Python repr(float): 1.0, 0.1, 1e-05, 1e+16, inf, nan
std::string py_str(const Value& v);   // Python str(); Undefined → ""
std::string py_repr(const Value& v);  // Python repr()

struct JsonOptions {
  bool ensure_ascii = false;
  std::optional<std::string> indent;  // already expanded: an int n becomes n spaces
  std::optional<std::string> item_sep, key_sep;
  bool sort_keys = false;
};
// json.dumps(v, ensure_ascii=..., indent=..., separators=..., sort_keys=...): the default
// separators are (', ', ': '), or (',', ': ') when indenting. TypeError for what JSON can't hold.
std::string json_dumps(const Value& v, const JsonOptions& opt);

// Python `fmt % args` (args: a tuple, a dict for %(name)s, or a single value).
std::string percent_format(const std::string& fmt, const Value& args, bool escape_args);
// Python str.format with auto/positional/keyword fields and !r/!s conversions (no format specs).
std::string brace_format(const std::string& fmt, const std::vector<Value>& args,
                         const std::vector<std::pair<std::string, Value>>& kwargs);

std::string html_escape(const std::string& s);  // markupsafe.escape

}  // namespace gdn::tpl
