// Python methods on str/dict/list/tuple as the Jinja2 sandbox exposes them, and argument
// binding. Globals and slicing are in globals.cpp.
#include <algorithm>

#include "template/builtins.h"
#include "template/format.h"
#include "template/interp.h"
#include "template/unicode.h"

namespace gdn::tpl {

std::vector<std::optional<Value>> CallArgs::bind(const std::string& fn, std::initializer_list<const char*> params,
                                                 size_t required) const {
  std::vector<std::optional<Value>> slots(params.size());
  if (pos.size() > params.size())
    raise("TypeError", fn + "() takes at most " + std::to_string(params.size()) + " argument(s) (" + std::to_string(pos.size()) + " given)");
  for (size_t i = 0; i < pos.size(); ++i) slots[i] = pos[i];
  for (const auto& [k, v] : kw) {
    const std::string& key = k;  // (clang cannot capture structured bindings)
    const auto it = std::find_if(params.begin(), params.end(), [&](const char* p) { return key == p; });
    if (it == params.end()) raise("TypeError", fn + "() got an unexpected keyword argument '" + k + "'");
    auto& slot = slots[size_t(it - params.begin())];
    if (slot) raise("TypeError", fn + "() got multiple values for argument '" + k + "'");
    slot = v;
  }
  for (size_t i = 0; i < required; ++i)
    if (!slots[i]) raise("TypeError", fn + "() missing required argument '" + std::string(params.begin()[i]) + "'");
  return slots;
}

namespace {

int64_t as_index(const Value& v, const char*) {
  if (v.kind() != Kind::Int && v.kind() != Kind::Bool)
    raise("TypeError", std::string("'").append(type_name(v)).append("' object cannot be interpreted as an integer"));
  return v.as_int();
}

const std::string& as_string(const Value& v, const std::string& fn) {
  if (!v.is_str()) raise("TypeError", fn + " argument must be str, not " + type_name(v));
  return v.as_str();
}

// ---- str methods -----------------------------------------------------------------------------

Value split(const std::string& s, const std::optional<Value>& sep_v, int64_t maxsplit, bool from_right, bool markup) {
  std::vector<Value> parts;
  auto push = [&](std::string p) { parts.push_back(Value::str(std::move(p), markup)); };
  if (!sep_v || sep_v->is_none()) {  // runs of whitespace, no empty strings
    const auto cps = uni::decode(s);
    std::vector<std::pair<size_t, size_t>> words;
    size_t i = 0;
    while (i < cps.size()) {
      while (i < cps.size() && uni::is_space(cps[i])) ++i;
      if (i == cps.size()) break;
      size_t j = i;
      while (j < cps.size() && !uni::is_space(cps[j])) ++j;
      words.emplace_back(i, j);
      i = j;
    }
    if (maxsplit < 0 || size_t(maxsplit) >= words.size()) {
      for (auto [b, e] : words) push(uni::encode(cps, b, e));
    } else if (!from_right) {  // the rest keeps its trailing whitespace
      for (size_t k = 0; k < size_t(maxsplit); ++k) push(uni::encode(cps, words[k].first, words[k].second));
      push(uni::encode(cps, words[size_t(maxsplit)].first, cps.size()));
    } else {  // the rest keeps its leading whitespace
      const size_t keep = words.size() - size_t(maxsplit);
      push(uni::encode(cps, 0, words[keep - 1].second));
      for (size_t k = keep; k < words.size(); ++k) push(uni::encode(cps, words[k].first, words[k].second));
    }
    return Value::list(std::move(parts));
  }
  const std::string& sep = as_string(*sep_v, "split()");
  if (sep.empty()) raise("ValueError", "empty separator");
  std::vector<std::string> pieces;
  if (!from_right) {
    size_t start = 0;
    for (int64_t n = 0; maxsplit < 0 || n < maxsplit; ++n) {
      const size_t p = s.find(sep, start);
      if (p == std::string::npos) break;
      pieces.push_back(s.substr(start, p - start));
      start = p + sep.size();
    }
    pieces.push_back(s.substr(start));
  } else {
    size_t end = s.size();
    for (int64_t n = 0; maxsplit < 0 || n < maxsplit; ++n) {
      if (end < sep.size()) break;
      const size_t p = s.rfind(sep, end - sep.size());
      if (p == std::string::npos) break;
      pieces.push_back(s.substr(p + sep.size(), end - p - sep.size()));
      end = p;
    }
    pieces.push_back(s.substr(0, end));
    std::reverse(pieces.begin(), pieces.end());
  }
  for (auto& p : pieces) push(std::move(p));
  return Value::list(std::move(parts));
}

std::string py_title(const std::string& s) {  // Python str.title(): case follows the previous char
  std::string out;
  bool prev_cased = false;
  for (size_t i = 0; i < s.size();) {
    const char32_t c = uni::next(s, i);
    if (prev_cased) {
      uni::append_lower(out, c);
    } else {
      uni::append_upper(out, c);
    }
    prev_cased = uni::is_upper(c) || uni::is_lower(c);
  }
  return out;
}

std::string py_capitalize(const std::string& s) {
  std::string out;
  bool first = true;
  for (size_t i = 0; i < s.size();) {
    const char32_t c = uni::next(s, i);
    if (first) {
      uni::append_upper(out, c);
    } else {
      uni::append_lower(out, c);
    }
    first = false;
  }
  return out;
}

std::string replace_all(const std::string& s, const std::string& old, const std::string& neu, int64_t count,
                        Renderer& r) {
  std::string out;
  if (old.empty()) {  // Python inserts `neu` before every character and at the end
    int64_t n = 0;
    for (size_t i = 0; i < s.size();) {
      if (count < 0 || n++ < count) out += neu;
      const size_t b = i;
      uni::next(s, i);
      out.append(s, b, i - b);
      r.check_size(out.size());
    }
    if (count < 0 || n < count) out += neu;
    return out;
  }
  size_t start = 0;
  for (int64_t n = 0; count < 0 || n < count; ++n) {
    const size_t p = s.find(old, start);
    if (p == std::string::npos) break;
    out.append(s, start, p - start);
    out += neu;
    r.check_size(out.size());
    start = p + old.size();
  }
  out.append(s, start);
  return out;
}

// Code-point [start, end) window of Python's optional start/end arguments, as byte offsets.
std::pair<size_t, size_t> window(const std::string& s, const std::optional<Value>& start, const std::optional<Value>& end) {
  const auto cps = uni::decode(s);
  const int64_t n = int64_t(cps.size());
  auto clamp = [&](const std::optional<Value>& v, int64_t dflt) {
    if (!v || v->is_none()) return dflt;
    int64_t i = as_index(*v, nullptr);
    if (i < 0) i += n;
    return std::clamp<int64_t>(i, 0, n);
  };
  const int64_t b = clamp(start, 0), e = std::max(b, clamp(end, n));
  return {uni::encode(cps, 0, size_t(b)).size(), uni::encode(cps, 0, size_t(e)).size()};
}

Value str_method(Renderer& r, const Value& self, const std::string& m, CallArgs& args) {
  const std::string& s = self.as_str();
  const bool mk = self.is_markup();
  auto str = [&](std::string v) { return Value::str(std::move(v), mk); };
  if (m == "startswith" || m == "endswith") {
    auto a = args.bind(m, {"prefix", "start", "end"}, 1);
    auto [b, e] = window(s, a[1], a[2]);
    const std::string_view w(s.data() + b, e - b);
    std::vector<Value> options = a[0]->is_tuple() ? a[0]->as_list().items : std::vector<Value>{*a[0]};
    for (const Value& o : options) {
      const std::string& p = as_string(o, m + " first arg must be str or a tuple of str;");
      if (m == "startswith" ? w.substr(0, p.size()) == p : (w.size() >= p.size() && w.substr(w.size() - p.size()) == p))
        return Value::boolean(true);
    }
    return Value::boolean(false);
  }
  if (m == "split" || m == "rsplit") {
    auto a = args.bind(m, {"sep", "maxsplit"});
    return split(s, a[0], a[1] ? as_index(*a[1], nullptr) : -1, m == "rsplit", mk);
  }
  if (m == "strip" || m == "lstrip" || m == "rstrip") {
    auto a = args.bind(m, {"chars"});
    const std::string* chars = a[0] && !a[0]->is_none() ? &as_string(*a[0], m) : nullptr;
    return str(uni::strip(s, m != "rstrip", m != "lstrip", chars));
  }
  if (m == "replace") {
    auto a = args.bind(m, {"old", "new", "count"}, 2);
    return str(replace_all(s, as_string(*a[0], m), as_string(*a[1], m), a[2] ? as_index(*a[2], nullptr) : -1, r));
  }
  if (m == "lower" || m == "casefold") return str(uni::lower(s));
  if (m == "isascii") return Value::boolean(uni::is_ascii(s));
  if (m == "upper") return str(uni::upper(s));
  if (m == "title") return str(py_title(s));
  if (m == "capitalize") return str(py_capitalize(s));
  if (m == "swapcase") {
    std::string out;
    for (size_t i = 0; i < s.size();) {
      const char32_t c = uni::next(s, i);
      if (uni::is_upper(c)) {
        uni::append_lower(out, c);
      } else {
        uni::append_upper(out, c);
      }
    }
    return str(out);
  }
  if (m == "find" || m == "rfind" || m == "index" || m == "rindex" || m == "count") {
    auto a = args.bind(m, {"sub", "start", "end"}, 1);
    const std::string& sub = as_string(*a[0], m);
    auto [b, e] = window(s, a[1], a[2]);
    const std::string_view w(s.data() + b, e - b);
    if (m == "count") {
      if (sub.empty()) return Value::integer(int64_t(uni::length(w)) + 1);
      int64_t n = 0;
      for (size_t p = w.find(sub); p != std::string_view::npos; p = w.find(sub, p + sub.size())) ++n;
      return Value::integer(n);
    }
    const size_t p = (m == "find" || m == "index") ? w.find(sub) : w.rfind(sub);
    if (p == std::string_view::npos) {
      if (m == "index" || m == "rindex") raise("ValueError", "substring not found");
      return Value::integer(-1);
    }
    return Value::integer(int64_t(uni::length(std::string_view(s.data(), b + p))));
  }
  if (m == "join") {
    auto a = args.bind(m, {"iterable"}, 1);
    std::string out;
    size_t i = 0;
    for (const Value& x : py_iterate(*a[0])) {
      if (!x.is_str())
        raise("TypeError", "sequence item " + std::to_string(i) + ": expected str instance, " + type_name(x) + " found");
      if (i++) out += s;
      out += x.as_str();
      r.check_size(out.size());
    }
    return str(out);
  }
  if (m == "splitlines") {
    auto a = args.bind(m, {"keepends"});
    const bool keep = a[0] && a[0]->truthy();
    std::vector<Value> lines;
    const auto cps = uni::decode(s);
    size_t b = 0;
    for (size_t i = 0; i < cps.size(); ++i) {
      if (!uni::is_line_break(cps[i])) continue;
      size_t e = i + 1;
      if (cps[i] == '\r' && i + 1 < cps.size() && cps[i + 1] == '\n') e = i + 2;
      lines.push_back(str(uni::encode(cps, b, keep ? e : i)));
      b = e;
      i = e - 1;
    }
    if (b < cps.size()) lines.push_back(str(uni::encode(cps, b, cps.size())));
    return Value::list(std::move(lines));
  }
  if (m == "isdigit" || m == "isdecimal" || m == "isnumeric" || m == "isalpha" || m == "isalnum" || m == "isspace" ||
      m == "isupper" || m == "islower") {
    args.bind(m, {});
    if (s.empty()) return Value::boolean(false);
    bool any_cased = false;
    for (size_t i = 0; i < s.size();) {
      const char32_t c = uni::next(s, i);
      bool ok;
      if (m == "isalpha") {
        ok = uni::is_alpha(c);
      } else if (m == "isalnum") {
        ok = uni::is_alnum(c);
      } else if (m == "isspace") {
        ok = uni::is_space(c);
      } else if (m == "isupper" || m == "islower") {
        any_cased |= uni::is_upper(c) || uni::is_lower(c);
        ok = m == "isupper" ? !uni::is_lower(c) : !uni::is_upper(c);
      } else {
        ok = uni::is_digit(c);
      }
      if (!ok) return Value::boolean(false);
    }
    return Value::boolean(m == "isupper" || m == "islower" ? any_cased : true);
  }
  if (m == "zfill" || m == "ljust" || m == "rjust" || m == "center") {
    auto a = args.bind(m, {"width", "fillchar"}, 1);
    const int64_t width = as_index(*a[0], nullptr);
    r.check_size(size_t(std::max<int64_t>(width, 0)));
    std::string fill = " ";
    if (a[1]) {
      fill = as_string(*a[1], m);
      if (uni::length(fill) != 1) raise("TypeError", "The fill character must be exactly one character long");
    }
    const int64_t len = int64_t(uni::length(s));
    if (width <= len) return self;
    const int64_t pad = width - len;
    auto rep = [&](int64_t n) {
      std::string p;
      for (int64_t i = 0; i < n; ++i) p += m == "zfill" ? "0" : fill;
      return p;
    };
    if (m == "ljust") return str(s + rep(pad));
    if (m == "rjust") return str(rep(pad) + s);
    if (m == "zfill") {
      if (!s.empty() && (s[0] == '+' || s[0] == '-')) return str(s.substr(0, 1) + rep(pad) + s.substr(1));
      return str(rep(pad) + s);
    }
    const int64_t left = pad / 2 + (pad & width & 1);  // CPython's centering
    return str(rep(left) + s + rep(pad - left));
  }
  if (m == "removeprefix" || m == "removesuffix") {
    auto a = args.bind(m, {"affix"}, 1);
    const std::string& x = as_string(*a[0], m);
    if (m == "removeprefix" && s.compare(0, x.size(), x) == 0) return str(s.substr(x.size()));
    if (m == "removesuffix" && !x.empty() && s.size() >= x.size() && s.compare(s.size() - x.size(), x.size(), x) == 0)
      return str(s.substr(0, s.size() - x.size()));
    return self;
  }
  if (m == "partition" || m == "rpartition") {
    auto a = args.bind(m, {"sep"}, 1);
    const std::string& sep = as_string(*a[0], m);
    if (sep.empty()) raise("ValueError", "empty separator");
    const size_t p = m == "partition" ? s.find(sep) : s.rfind(sep);
    if (p == std::string::npos)
      return m == "partition" ? Value::list({str(s), str(""), str("")}, true) : Value::list({str(""), str(""), str(s)}, true);
    return Value::list({str(s.substr(0, p)), str(sep), str(s.substr(p + sep.size()))}, true);
  }
  if (m == "format") {
    std::string out = brace_format(s, args.pos, args.kw);
    r.check_size(out.size());
    return str(out);
  }
  raise("TypeError", "str." + m + "() is not supported by gdnserve's template engine");
}

// ---- dict / list / loop methods --------------------------------------------------------------

Value dict_method(const Value& self, const std::string& m, CallArgs& args) {
  const DictObj& d = self.as_dict();
  if (m == "items" || m == "keys" || m == "values") {
    args.bind(m, {});
    std::vector<Value> out;
    for (const auto& [k, v] : d.entries)
      out.push_back(m == "items" ? Value::list({k, v}, true) : m == "keys" ? k : v);
    return Value::list(std::move(out));
  }
  if (m == "get") {
    auto a = args.bind(m, {"key", "default"}, 1);
    if (const Value* v = d.find(*a[0])) return *v;
    return a[1] ? *a[1] : Value::none();
  }
  if (m == "copy") return self;  // values are immutable: sharing is a faithful copy
  raise("TypeError", "dict." + m + "() is not supported by gdnserve's template engine");
}

Value list_method(const Value& self, const std::string& m, CallArgs& args) {
  const auto& items = self.as_list().items;
  if (m == "count") {
    auto a = args.bind(m, {"value"}, 1);
    return Value::integer(std::count_if(items.begin(), items.end(), [&](const Value& x) { return py_equal(x, *a[0]); }));
  }
  if (m == "index") {
    auto a = args.bind(m, {"value"}, 1);
    for (size_t i = 0; i < items.size(); ++i)
      if (py_equal(items[i], *a[0])) return Value::integer(int64_t(i));
    raise("ValueError", py_repr(*a[0]) + " is not in list");
  }
  if (m == "copy") return self;
  raise("TypeError", "list." + m + "() is not supported by gdnserve's template engine");
}

Value loop_method(const Value& self, const std::string& m, CallArgs& args) {
  auto& l = static_cast<LoopObj&>(*self.object());
  if (!args.kw.empty()) raise("TypeError", "loop." + m + "() takes no keyword arguments");
  if (m == "cycle") {
    if (args.pos.empty()) raise("TypeError", "no items for cycling given");
    return args.pos[l.index0 % args.pos.size()];
  }
  // changed(*values): true when the values differ from the previous call's
  const Value now = Value::list(args.pos, true);
  if (l.last_changed && py_equal(*l.last_changed, now)) return Value::boolean(false);
  l.last_changed = std::make_shared<Value>(now);
  return Value::boolean(true);
}

struct BoundMethod final : CallableObj {
  BoundMethod(Value s, std::string n) : self(std::move(s)), name(std::move(n)) {}
  Value call(Renderer& r, CallArgs& args) override { return call_method(r, self, name, args); }
  std::string repr() const override { return "<built-in method " + name + " of " + type_name(self) + " object>"; }
  Value self;
  std::string name;
};

bool listed(const std::string& name, std::initializer_list<const char*> names) {
  return std::any_of(names.begin(), names.end(), [&](const char* n) { return name == n; });
}

}  // namespace

std::optional<Value> builtin_attribute(const Value& obj, const std::string& name) {
  auto bound = [&] { return Value::callable(std::make_shared<BoundMethod>(obj, name)); };
  auto unsafe = [&](const char* type) {
    return Value::unsafe("access to attribute '" + name + "' of '" + type + "' object is unsafe.");
  };
  switch (obj.kind()) {
    case Kind::Str:
      if (listed(name, {"capitalize", "casefold", "center", "count", "encode", "endswith", "expandtabs", "find", "format",
                        "format_map", "index", "isalnum", "isalpha", "isascii", "isdecimal", "isdigit", "isidentifier",
                        "islower", "isnumeric", "isprintable", "isspace", "istitle", "isupper", "join", "ljust", "lower",
                        "lstrip", "maketrans", "partition", "removeprefix", "removesuffix", "replace", "rfind", "rindex",
                        "rjust", "rpartition", "rsplit", "rstrip", "split", "splitlines", "startswith", "strip",
                        "swapcase", "title", "translate", "upper", "zfill"}))
        return bound();
      return std::nullopt;
    case Kind::Dict:
      if (listed(name, {"items", "keys", "values", "get", "copy"})) return bound();
      if (listed(name, {"pop", "popitem", "setdefault", "update", "clear", "fromkeys"})) return unsafe("dict");
      return std::nullopt;
    case Kind::List:
      if (listed(name, {"count", "index"}) || (name == "copy" && !obj.is_tuple())) return bound();
      if (!obj.is_tuple() && listed(name, {"append", "clear", "extend", "insert", "pop", "remove", "reverse", "sort"}))
        return unsafe("list");
      return std::nullopt;
    case Kind::Loop:
      if (name == "cycle" || name == "changed") return bound();
      return std::nullopt;
    default: return std::nullopt;
  }
}

Value call_method(Renderer& r, const Value& self, const std::string& name, CallArgs& args) {
  size_t cost = walk_cost(self);  // str/list/dict methods walk their receiver and arguments
  for (const Value& a : args.pos) cost += walk_cost(a);
  r.charge(cost);
  switch (self.kind()) {
    case Kind::Str: return str_method(r, self, name, args);
    case Kind::Dict: return dict_method(self, name, args);
    case Kind::List: return list_method(self, name, args);
    case Kind::Loop: return loop_method(self, name, args);
    default: raise("TypeError", "'" + type_name(self) + "' object has no method " + name);
  }
}

}  // namespace gdn::tpl
