// Jinja2's built-in filters on strings and numbers, and transformers' `tojson`. The sequence
// filters live in filters_seq.cpp.
#include <cmath>
#include <cstdio>
#include <cstdlib>

#include "template/builtins.h"
#include "template/format.h"
#include "template/interp.h"
#include "template/unicode.h"

namespace gdn::tpl {

namespace {

constexpr const char* kJinjaFilters[] = {
    "abs",    "attr",     "batch",   "capitalize", "center",      "count",     "d",          "default", "dictsort",
    "e",      "escape",   "filesizeformat",        "first",       "float",     "forceescape", "format", "groupby",
    "indent", "int",      "items",   "join",       "last",        "length",    "list",       "lower",   "map",
    "max",    "min",      "pprint",  "random",     "reject",      "rejectattr", "replace",   "reverse", "round",
    "safe",   "select",   "selectattr", "slice",   "sort",        "string",    "striptags",  "sum",     "title",
    "tojson", "trim",     "truncate", "unique",    "upper",       "urlencode", "urlize",     "wordcount", "wordwrap",
    "xmlattr"};

// soft_str: strings (Markup included) unchanged, anything else through str().
Value soft_str(const Value& v) { return v.is_str() ? v : Value::str(py_str(v)); }

// Python int(str, base): optional sign, optional base prefix, digits with single underscores.
std::optional<int64_t> parse_int(std::string s, int base) {
  s = uni::strip(s, true, true, nullptr);
  bool neg = false;
  size_t i = 0;
  if (i < s.size() && (s[i] == '+' || s[i] == '-')) neg = s[i++] == '-';
  if (i + 1 < s.size() && s[i] == '0') {
    const char p = char(std::tolower(static_cast<unsigned char>(s[i + 1])));
    const int pb = p == 'x' ? 16 : p == 'o' ? 8 : p == 'b' ? 2 : 0;
    if (pb && (base == pb || base == 0)) {
      base = pb;
      i += 2;
      if (i < s.size() && s[i] == '_') ++i;
    }
  }
  if (base == 0) base = 10;
  std::string digits;
  for (; i < s.size(); ++i) {
    if (s[i] == '_' && !digits.empty() && i + 1 < s.size() && s[i + 1] != '_') continue;
    const int d = std::isdigit(static_cast<unsigned char>(s[i])) ? s[i] - '0'
                  : std::isalpha(static_cast<unsigned char>(s[i]))  ? std::tolower(s[i]) - 'a' + 10
                                                                    : 99;
    if (d >= base) return std::nullopt;
    digits += s[i];
  }
  if (digits.empty() || digits.size() > 64) return std::nullopt;
  errno = 0;
  const unsigned long long v = std::strtoull(digits.c_str(), nullptr, base);
  if (errno == ERANGE || v > uint64_t(INT64_MAX) + (neg ? 1 : 0))
    raise("OverflowError", "integer too large (gdnserve integers are 64-bit)");
  return neg ? int64_t(0 - v) : int64_t(v);
}

// Python float(str): decimal or inf/nan spellings with surrounding whitespace.
std::optional<double> parse_float(const std::string& text) {
  std::string s = uni::strip(text, true, true, nullptr);
  std::string clean;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '_' && i > 0 && i + 1 < s.size() && std::isdigit(static_cast<unsigned char>(s[i - 1])) &&
        std::isdigit(static_cast<unsigned char>(s[i + 1])))
      continue;
    clean += s[i];
  }
  if (clean.empty() || clean.find_first_of("xXpP") != std::string::npos) return std::nullopt;
  char* end = nullptr;
  const double v = std::strtod(clean.c_str(), &end);
  if (end != clean.c_str() + clean.size()) return std::nullopt;
  std::string low = uni::lower(clean);
  if (!low.empty() && (low[0] == '+' || low[0] == '-')) low.erase(0, 1);
  if (std::isinf(v) && low != "inf" && low != "infinity" && low.find('e') == std::string::npos &&
      low.find_first_not_of("0123456789.") != std::string::npos)
    return std::nullopt;
  if (std::isnan(v) && low != "nan") return std::nullopt;
  return v;
}

Value f_int(const Value& in, CallArgs& args) {
  auto a = args.bind("do_int", {"default", "base"});
  const Value dflt = a[0] ? *a[0] : Value::integer(0);
  const int base = a[1] ? int(a[1]->as_int()) : 10;
  if (in.is_str()) {
    if (auto v = parse_int(in.as_str(), base)) return Value::integer(*v);
    if (auto f = parse_float(in.as_str())) {  // "42.23"|int gives 42
      if (!std::isfinite(*f)) raise("OverflowError", "cannot convert float infinity to integer");
      if (std::fabs(*f) >= 9.2e18) raise("OverflowError", "integer too large (gdnserve integers are 64-bit)");
      return Value::integer(int64_t(*f));
    }
    return dflt;
  }
  if (in.kind() == Kind::Int || in.kind() == Kind::Bool) return Value::integer(in.as_int());
  if (in.kind() == Kind::Float) {
    const double f = in.as_float();
    if (std::isnan(f)) raise("ValueError", "cannot convert float NaN to integer");
    if (!std::isfinite(f)) raise("OverflowError", "cannot convert float infinity to integer");
    if (std::fabs(f) >= 9.2e18) raise("OverflowError", "integer too large (gdnserve integers are 64-bit)");
    return Value::integer(int64_t(f));
  }
  return dflt;
}

Value f_float(const Value& in, CallArgs& args) {
  auto a = args.bind("do_float", {"default"});
  const Value dflt = a[0] ? *a[0] : Value::number(0.0);
  if (in.is_number()) return Value::number(in.as_float());
  if (in.is_str())
    if (auto f = parse_float(in.as_str())) return Value::number(*f);
  return dflt;
}

Value f_round(const Value& in, CallArgs& args) {
  auto a = args.bind("do_round", {"precision", "method"});
  const int64_t prec = a[0] ? a[0]->as_int() : 0;
  const std::string method = a[1] ? py_str(*a[1]) : "common";
  if (method != "common" && method != "ceil" && method != "floor")
    raise("FilterArgumentError", "method must be common, ceil or floor");
  if (!in.is_number()) raise("TypeError", "type " + type_name(in) + " doesn't define __round__ method");
  if (method == "common") {
    if (in.kind() != Kind::Float) return a[0] ? Value::integer(in.as_int()) : Value::integer(in.as_int());
    const double x = in.as_float();
    if (!std::isfinite(x)) return Value::number(x);
    if (prec > 300 || prec < -300) return Value::number(prec > 0 ? x : 0.0 * x);
    // Python rounds the exact binary value half-to-even at `prec` decimals; printf does the same.
    char buf[512];
    if (prec >= 0) {
      std::snprintf(buf, sizeof buf, "%.*f", int(prec), x);
      return Value::number(std::strtod(buf, nullptr));
    }
    const double scale = std::pow(10.0, double(-prec));
    return Value::number(std::nearbyint(x / scale) * scale);
  }
  const double scale = std::pow(10.0, double(prec));
  const double v = method == "ceil" ? std::ceil(in.as_float() * scale) : std::floor(in.as_float() * scale);
  return Value::number(v / scale);
}

Value f_indent(Renderer& r, const Value& in, CallArgs& args) {
  auto a = args.bind("do_indent", {"width", "first", "blank"});
  std::string ind;
  if (a[0] && a[0]->is_str()) {
    ind = a[0]->as_str();
  } else {
    const int64_t w = a[0] ? a[0]->as_int() : 4;
    r.check_size(size_t(std::max<int64_t>(w, 0)));
    ind.assign(size_t(std::max<int64_t>(w, 0)), ' ');
  }
  const bool first = a[1] && a[1]->truthy(), blank = a[2] && a[2]->truthy();
  Value s = soft_str(in);
  CallArgs none;
  std::string text = s.as_str() + "\n";  // jinja2's quirk so that splitlines keeps a trailing empty line
  const Value lines_v = call_method(r, Value::str(text), "splitlines", none);
  const auto& lines = lines_v.as_list().items;
  std::string out;
  for (size_t i = 0; i < lines.size(); ++i) {
    const std::string& line = lines[i].as_str();
    if (i) out += "\n";
    if (i && (blank || !line.empty())) out += ind;
    out += line;
    r.check_size(out.size());
  }
  if (first) out = ind + out;
  return Value::str(out, s.is_markup());
}

Value f_truncate(Renderer& r, const Value& in, CallArgs& args) {
  auto a = args.bind("do_truncate", {"length", "killwords", "end", "leeway"});
  const std::string s = py_str(in);
  const int64_t length = a[0] ? a[0]->as_int() : 255;
  const bool killwords = a[1] && a[1]->truthy();
  const std::string end = a[2] ? py_str(*a[2]) : "...";
  const int64_t leeway = a[3] && !a[3]->is_none() ? a[3]->as_int() : 5;
  const int64_t end_len = int64_t(uni::length(end));
  if (length < end_len) raise("AssertionError", "expected length >= " + std::to_string(end_len) + ", got " + std::to_string(length));
  if (leeway < 0) raise("AssertionError", "expected leeway >= 0, got " + std::to_string(leeway));
  const auto cps = uni::decode(s);
  if (int64_t(cps.size()) <= length + leeway) return Value::str(s);
  std::string head = uni::encode(cps, 0, size_t(length - end_len));
  if (!killwords) {
    CallArgs sp;
    sp.pos = {Value::str(" "), Value::integer(1)};
    head = call_method(r, Value::str(head), "rsplit", sp).as_list().items[0].as_str();
  }
  return Value::str(head + end);
}

Value f_tojson(const Value& in, CallArgs& args) {
  // transformers: json.dumps(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False)
  auto a = args.bind("tojson", {"ensure_ascii", "indent", "separators", "sort_keys"});
  JsonOptions o;
  o.ensure_ascii = a[0] && a[0]->truthy();
  if (a[1] && !a[1]->is_none()) {
    if (a[1]->is_str()) {
      o.indent = a[1]->as_str();
    } else if (a[1]->kind() == Kind::Int || a[1]->kind() == Kind::Bool) {
      o.indent = std::string(size_t(std::clamp<int64_t>(a[1]->as_int(), 0, 1024)), ' ');
    } else {
      raise("TypeError", "can't multiply sequence by non-int of type '" + type_name(*a[1]) + "'");
    }
  }
  if (a[2] && !a[2]->is_none()) {
    const auto parts = py_iterate(*a[2]);
    if (parts.size() != 2) raise("ValueError", "too many values to unpack (expected 2)");
    o.item_sep = py_str(parts[0]);
    o.key_sep = py_str(parts[1]);
  }
  o.sort_keys = a[3] && a[3]->truthy();
  return Value::str(json_dumps(in, o));
}

Value f_wordcount(const Value& in) {
  const std::string s = py_str(in);
  int64_t n = 0;
  bool in_word = false;
  for (size_t i = 0; i < s.size();) {
    const bool w = uni::is_word(uni::next(s, i));
    if (w && !in_word) ++n;
    in_word = w;
  }
  return Value::integer(n);
}

Value f_title(const Value& in) {  // jinja2's do_title: capitalise after -, whitespace, ( { [ <
  const Value s = soft_str(in);
  std::string out;
  bool start = true;
  for (size_t i = 0; i < s.as_str().size();) {
    const char32_t c = uni::next(s.as_str(), i);
    const bool sep = c == '-' || c == '(' || c == '{' || c == '[' || c == '<' || uni::is_space(c);
    if (sep) {
      uni::append(out, c);
      start = true;
    } else if (start) {
      uni::append_upper(out, c);
      start = false;
    } else {
      uni::append_lower(out, c);
    }
  }
  return Value::str(out, s.is_markup());
}

Value string_method(Renderer& r, const Value& in, const char* method, std::vector<Value> pos = {}) {
  CallArgs a;
  a.pos = std::move(pos);
  return call_method(r, soft_str(in), method, a);
}

}  // namespace

bool is_jinja_filter(std::string_view name) {
  for (const char* f : kJinjaFilters)
    if (name == f) return true;
  return false;
}

Value call_filter(Renderer& r, const std::string& name, const Value& in, CallArgs& args) {
  if (auto v = sequence_filter(r, name, in, args)) return *v;
  if (name == "tojson") return f_tojson(in, args);
  if (name == "string") {
    args.bind(name, {});
    return soft_str(in);
  }
  if (name == "safe") {
    args.bind(name, {});
    return Value::str(py_str(in), true);
  }
  if (name == "escape" || name == "e" || name == "forceescape") {
    args.bind(name, {});
    if (in.is_str() && in.is_markup() && name != "forceescape") return in;
    return Value::str(html_escape(py_str(in)), true);
  }
  if (name == "trim") {
    auto a = args.bind(name, {"chars"});
    return string_method(r, in, "strip", a[0] ? std::vector<Value>{*a[0]} : std::vector<Value>{});
  }
  if (name == "upper" || name == "lower" || name == "capitalize") {
    args.bind(name, {});
    return string_method(r, in, name.c_str());
  }
  if (name == "title") {
    args.bind(name, {});
    return f_title(in);
  }
  if (name == "replace") {
    auto a = args.bind(name, {"old", "new", "count"}, 2);
    std::vector<Value> p{Value::str(py_str(*a[0])), Value::str(py_str(*a[1]))};
    if (a[2] && !a[2]->is_none()) p.push_back(*a[2]);
    return string_method(r, Value::str(py_str(in)), "replace", std::move(p));
  }
  if (name == "center") {
    auto a = args.bind(name, {"width"});
    return string_method(r, Value::str(py_str(in)), "center", {a[0] ? *a[0] : Value::integer(80)});
  }
  if (name == "format") {
    if (!args.pos.empty() && !args.kw.empty())
      raise("FilterArgumentError", "can't handle positional and keyword arguments at the same time");
    Value fmt_args;
    if (!args.kw.empty()) {
      std::vector<std::pair<Value, Value>> kv;
      for (auto& [k, v] : args.kw) kv.emplace_back(Value::str(k), v);
      fmt_args = Value::dict(std::move(kv));
    } else {
      fmt_args = Value::list(args.pos, true);
    }
    const Value s = soft_str(in);
    std::string out = percent_format(s.as_str(), fmt_args, s.is_markup());
    r.check_size(out.size());
    return Value::str(out, s.is_markup());
  }
  if (name == "indent") return f_indent(r, in, args);
  if (name == "truncate") return f_truncate(r, in, args);
  if (name == "wordcount") {
    args.bind(name, {});
    return f_wordcount(in);
  }
  if (name == "int") return f_int(in, args);
  if (name == "float") return f_float(in, args);
  if (name == "round") return f_round(in, args);
  if (name == "abs") {
    args.bind(name, {});
    if (in.kind() == Kind::Float) return Value::number(std::fabs(in.as_float()));
    if (in.kind() == Kind::Int || in.kind() == Kind::Bool) {
      if (in.as_int() == INT64_MIN) raise("OverflowError", "integer result too large (gdnserve integers are 64-bit)");
      return Value::integer(std::llabs(in.as_int()));
    }
    raise("TypeError", "bad operand type for abs(): '" + type_name(in) + "'");
  }
  if (name == "attr") {
    auto a = args.bind(name, {"name"}, 1);
    const std::string attr = py_str(*a[0]);
    if (in.kind() == Kind::Namespace || in.kind() == Kind::Loop) return r.getattr(in, attr);
    if (in.is_undefined()) raise("UndefinedError", in.undefined_message());
    if (attr.empty() || attr[0] != '_')
      if (auto m = builtin_attribute(in, attr)) return *m;
    return Value::undefined(uni::repr(object_type_repr(in)) + " has no attribute " + uni::repr(attr));
  }
  raise("TypeError", "the '" + name + "' filter is not supported by gdnserve's template engine");
}

}  // namespace gdn::tpl
