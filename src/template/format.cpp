#include "template/format.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>

#include "template/unicode.h"

namespace gdn::tpl {

std::string float_repr(double f) {
  if (std::isnan(f)) return "nan";
  if (std::isinf(f)) return f > 0 ? "inf" : "-inf";
  if (f == 0) return std::signbit(f) ? "-0.0" : "0.0";
  // Shortest round-trip digits (what Python's repr uses), then Python's layout: fixed notation
  // when the decimal exponent is in [-4, 16), scientific with a two-digit exponent otherwise.
  char buf[64];
  auto res = std::to_chars(buf, buf + sizeof buf, f, std::chars_format::scientific);
  std::string sci(buf, res.ptr);
  std::string sign;
  if (sci[0] == '-') {
    sign = "-";
    sci.erase(0, 1);
  }
  const size_t e = sci.find('e');
  std::string digits = sci.substr(0, e);
  digits.erase(std::remove(digits.begin(), digits.end(), '.'), digits.end());
  const int exp10 = std::stoi(sci.substr(e + 1));
  const int decpt = exp10 + 1;  // value = 0.DIGITS × 10^decpt
  const int n = int(digits.size());
  std::string out;
  if (decpt > -4 && decpt <= 16) {
    if (decpt <= 0) {
      out = "0." + std::string(size_t(-decpt), '0') + digits;
    } else if (decpt >= n) {
      out = digits + std::string(size_t(decpt - n), '0') + ".0";
    } else {
      out = digits.substr(0, size_t(decpt)) + "." + digits.substr(size_t(decpt));
    }
  } else {
    out = digits.substr(0, 1);
    if (n > 1) out += "." + digits.substr(1);
    const int x = decpt - 1;
    char eb[16];
    std::snprintf(eb, sizeof eb, "e%c%02d", x < 0 ? '-' : '+', std::abs(x));
    out += eb;
  }
  return sign + out;
}

namespace {

struct ReprGuard {  // bounds recursion through namespaces, the only values that can form cycles
  explicit ReprGuard(int& d) : depth(d) {
    if (++depth > 2 * kMaxDepth) {
      --depth;
      raise("RecursionError", "maximum recursion depth exceeded while getting the repr of an object");
    }
  }
  ~ReprGuard() { --depth; }
  int& depth;
};

void repr_into(std::string& out, const Value& v, int& depth, std::vector<const Namespace*>& active);

void repr_namespace(std::string& out, const Value& v, int& depth, std::vector<const Namespace*>& active) {
  const Namespace* ns = v.as_ns();
  out += "<Namespace ";
  if (std::find(active.begin(), active.end(), ns) != active.end()) {
    out += "{...}>";  // Python's reprlib guard on the attribute dict
    return;
  }
  active.push_back(ns);
  out += '{';
  bool first = true;
  for (const auto& [k, x] : ns->attrs) {
    if (!first) out += ", ";
    first = false;
    out += uni::repr(k) + ": ";
    repr_into(out, x, depth, active);
  }
  out += "}>";
  active.pop_back();
}

void repr_into(std::string& out, const Value& v, int& depth, std::vector<const Namespace*>& active) {
  ReprGuard guard(depth);
  switch (v.kind()) {
    case Kind::Undefined: out += "Undefined"; return;
    case Kind::Str:
      if (v.is_markup()) {
        out += "Markup(" + uni::repr(v.as_str()) + ")";
      } else {
        out += uni::repr(v.as_str());
      }
      return;
    case Kind::List: {
      const ListObj& l = v.as_list();
      out += l.tuple ? '(' : '[';
      for (size_t i = 0; i < l.items.size(); ++i) {
        if (i) out += ", ";
        repr_into(out, l.items[i], depth, active);
      }
      if (l.tuple && l.items.size() == 1) out += ',';
      out += l.tuple ? ')' : ']';
      return;
    }
    case Kind::Dict: {
      out += '{';
      bool first = true;
      for (const auto& [k, x] : v.as_dict().entries) {
        if (!first) out += ", ";
        first = false;
        repr_into(out, k, depth, active);
        out += ": ";
        repr_into(out, x, depth, active);
      }
      out += '}';
      return;
    }
    case Kind::Namespace: repr_namespace(out, v, depth, active); return;
    default: out += py_str(v); return;
  }
}

}  // namespace

std::string py_str(const Value& v) {
  switch (v.kind()) {
    case Kind::Undefined: return "";
    case Kind::None: return "None";
    case Kind::Bool: return v.as_bool() ? "True" : "False";
    case Kind::Int: return std::to_string(v.as_int());
    case Kind::Float: return float_repr(v.as_float());
    case Kind::Str: return v.as_str();
    case Kind::List:
    case Kind::Dict:
    case Kind::Namespace: return py_repr(v);
    case Kind::Iter: return "<" + v.as_iter().type_name + " object>";
    case Kind::Callable:
    case Kind::Loop: return v.object()->repr();
  }
  return "";
}

std::string py_repr(const Value& v) {
  std::string out;
  int depth = 0;
  std::vector<const Namespace*> active;
  repr_into(out, v, depth, active);
  return out;
}

// ---- json.dumps ------------------------------------------------------------------------------

namespace {

void json_string(std::string& out, const std::string& s, bool ensure_ascii) {
  static const char* hex = "0123456789abcdef";
  auto u4 = [&](unsigned c) {
    out += "\\u";
    for (int k = 3; k >= 0; --k) out += hex[(c >> (4 * k)) & 0xF];
  };
  out += '"';
  for (size_t i = 0; i < s.size();) {
    const char32_t c = uni::next(s, i);
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      case '\b': out += "\\b"; break;
      case '\f': out += "\\f"; break;
      default:
        if (c < 0x20 || (ensure_ascii && c >= 0x7F)) {
          if (c >= 0x10000) {  // UTF-16 surrogate pair, as Python writes it
            const unsigned v = unsigned(c) - 0x10000;
            u4(0xD800 | (v >> 10));
            u4(0xDC00 | (v & 0x3FF));
          } else {
            u4(unsigned(c));
          }
        } else {
          uni::append(out, c);
        }
    }
  }
  out += '"';
}

std::string json_number(const Value& v) {
  if (v.kind() != Kind::Float) return std::to_string(v.as_int());
  const double f = v.as_float();
  if (std::isnan(f)) return "NaN";
  if (std::isinf(f)) return f > 0 ? "Infinity" : "-Infinity";
  return float_repr(f);
}

std::string json_key(const Value& k) {
  switch (k.kind()) {
    case Kind::Str: return k.as_str();
    case Kind::Bool: return k.as_bool() ? "true" : "false";
    case Kind::None: return "null";
    case Kind::Int:
    case Kind::Float: return json_number(k);
    default:
      raise("TypeError", "keys must be str, int, float, bool or None, not " + type_name(k));
  }
}

void dump(std::string& out, const Value& v, const JsonOptions& o, int level) {
  if (level > 2 * kMaxDepth) raise("RecursionError", "maximum recursion depth exceeded while encoding a JSON object");
  const std::string item_sep = o.item_sep ? *o.item_sep : (o.indent ? "," : ", ");
  const std::string key_sep = o.key_sep ? *o.key_sep : ": ";
  auto newline = [&](int lvl) {
    if (!o.indent) return;
    out += '\n';
    for (int i = 0; i < lvl; ++i) out += *o.indent;
  };
  switch (v.kind()) {
    case Kind::None: out += "null"; return;
    case Kind::Bool: out += v.as_bool() ? "true" : "false"; return;
    case Kind::Int:
    case Kind::Float: out += json_number(v); return;
    case Kind::Str: json_string(out, v.as_str(), o.ensure_ascii); return;
    case Kind::List: {
      const auto& items = v.as_list().items;
      if (items.empty()) {
        out += "[]";
        return;
      }
      out += '[';
      newline(level + 1);
      for (size_t i = 0; i < items.size(); ++i) {
        if (i) {
          out += item_sep;
          newline(level + 1);
        }
        dump(out, items[i], o, level + 1);
      }
      newline(level);
      out += ']';
      return;
    }
    case Kind::Dict: {
      std::vector<const std::pair<Value, Value>*> entries;
      for (const auto& e : v.as_dict().entries) entries.push_back(&e);
      if (entries.empty()) {
        out += "{}";
        return;
      }
      if (o.sort_keys)
        std::stable_sort(entries.begin(), entries.end(),
                         [](auto* a, auto* b) { return py_compare(a->first, b->first, "<") < 0; });
      out += '{';
      newline(level + 1);
      bool first = true;
      for (const auto* e : entries) {
        if (!first) {
          out += item_sep;
          newline(level + 1);
        }
        first = false;
        json_string(out, json_key(e->first), o.ensure_ascii);
        out += key_sep;
        dump(out, e->second, o, level + 1);
      }
      newline(level);
      out += '}';
      return;
    }
    default: raise("TypeError", "Object of type " + type_name(v) + " is not JSON serializable");
  }
}

}  // namespace

std::string json_dumps(const Value& v, const JsonOptions& opt) {
  std::string out;
  dump(out, v, opt, 0);
  return out;
}

// ---- % and str.format ------------------------------------------------------------------------

std::string html_escape(const std::string& s) {
  std::string out;
  out.reserve(s.size());
  for (char c : s) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&#34;"; break;
      case '\'': out += "&#39;"; break;
      default: out += c;
    }
  }
  return out;
}

namespace {

int64_t to_int_for_format(const Value& v, char conv) {
  if (v.kind() == Kind::Float) {
    if (!std::isfinite(v.as_float())) raise("OverflowError", "cannot convert float infinity to integer");
    return int64_t(v.as_float());
  }
  if (v.kind() == Kind::Int || v.kind() == Kind::Bool) return v.as_int();
  raise("TypeError", std::string("%") + conv + " format: a real number is required, not " + type_name(v));
}

std::string format_one(const std::string& flags, int width, int prec, char conv, const Value& arg, bool escape) {
  std::string spec = "%" + flags + (width >= 0 ? std::to_string(width) : "") + (prec >= 0 ? "." + std::to_string(prec) : "");
  char buf[512];
  switch (conv) {
    case 's':
    case 'r':
    case 'a': {
      std::string s = conv == 's' ? py_str(arg) : py_repr(arg);
      if (escape && !(arg.is_str() && arg.is_markup())) s = html_escape(s);
      if (prec >= 0) {
        const auto cps = uni::decode(s);
        s = uni::encode(cps, 0, size_t(prec));
      }
      const size_t len = uni::length(s);
      if (width > 0 && size_t(width) > len) {
        const std::string pad(size_t(width) - len, ' ');
        s = flags.find('-') != std::string::npos ? s + pad : pad + s;
      }
      return s;
    }
    case 'd':
    case 'i':
    case 'u':
      std::snprintf(buf, sizeof buf, (spec + "lld").c_str(), (long long)to_int_for_format(arg, conv));
      return buf;
    case 'x':
    case 'X':
    case 'o': {
      const int64_t i = to_int_for_format(arg, conv);
      std::snprintf(buf, sizeof buf, (spec + "ll" + conv).c_str(), (unsigned long long)(i < 0 ? -i : i));
      std::string s = buf;
      if (i < 0) s.insert(s.find_first_not_of(' ') == std::string::npos ? 0 : s.find_first_not_of(' '), "-");
      return s;
    }
    case 'c': {
      if (arg.is_str()) return arg.as_str();
      std::string s;
      uni::append(s, char32_t(to_int_for_format(arg, conv)));
      return s;
    }
    case 'e':
    case 'E':
    case 'f':
    case 'F':
    case 'g':
    case 'G': {
      if (!arg.is_number()) raise("TypeError", "must be real number, not " + type_name(arg));
      std::snprintf(buf, sizeof buf, (spec + conv).c_str(), arg.as_float());
      return buf;
    }
    default: raise("ValueError", std::string("unsupported format character '") + conv + "'");
  }
}

}  // namespace

std::string percent_format(const std::string& fmt, const Value& args, bool escape_args) {
  std::vector<Value> positional;
  const DictObj* mapping = nullptr;
  if (args.is_tuple()) {
    positional = args.as_list().items;
  } else if (args.is_dict()) {
    mapping = &args.as_dict();
    positional = {args};
  } else {
    positional = {args};
  }
  size_t next_arg = 0;
  std::string out;
  for (size_t i = 0; i < fmt.size(); ++i) {
    if (fmt[i] != '%') {
      out += fmt[i];
      continue;
    }
    if (++i >= fmt.size()) raise("ValueError", "incomplete format");
    const Value* named = nullptr;
    if (fmt[i] == '(') {
      const size_t close = fmt.find(')', i);
      if (close == std::string::npos) raise("ValueError", "incomplete format key");
      if (!mapping) raise("TypeError", "format requires a mapping");
      named = mapping->find(Value::str(fmt.substr(i + 1, close - i - 1)));
      if (!named) raise("KeyError", uni::repr(fmt.substr(i + 1, close - i - 1)));
      i = close + 1;
    }
    std::string flags;
    while (i < fmt.size() && std::string("-+ #0").find(fmt[i]) != std::string::npos) flags += fmt[i++];
    int width = -1, prec = -1;
    while (i < fmt.size() && std::isdigit(static_cast<unsigned char>(fmt[i])))
      width = std::min((width < 0 ? 0 : width) * 10 + (fmt[i++] - '0'), 4096);
    if (i < fmt.size() && fmt[i] == '.') {
      prec = 0;
      ++i;
      while (i < fmt.size() && std::isdigit(static_cast<unsigned char>(fmt[i]))) prec = std::min(prec * 10 + (fmt[i++] - '0'), 400);
    }
    if (i >= fmt.size()) raise("ValueError", "incomplete format");
    const char conv = fmt[i];
    if (conv == '%') {
      out += '%';
      continue;
    }
    const Value* arg = named;
    if (!arg) {
      if (next_arg >= positional.size()) raise("TypeError", "not enough arguments for format string");
      arg = &positional[next_arg++];
    }
    out += format_one(flags, width, prec, conv, *arg, escape_args);
  }
  if (!mapping && next_arg < positional.size())
    raise("TypeError", "not all arguments converted during string formatting");
  return out;
}

std::string brace_format(const std::string& fmt, const std::vector<Value>& args,
                         const std::vector<std::pair<std::string, Value>>& kwargs) {
  std::string out;
  size_t auto_index = 0;
  for (size_t i = 0; i < fmt.size(); ++i) {
    const char c = fmt[i];
    if (c == '}') {
      if (i + 1 < fmt.size() && fmt[i + 1] == '}') {
        out += '}';
        ++i;
        continue;
      }
      raise("ValueError", "Single '}' encountered in format string");
    }
    if (c != '{') {
      out += c;
      continue;
    }
    if (i + 1 < fmt.size() && fmt[i + 1] == '{') {
      out += '{';
      ++i;
      continue;
    }
    const size_t close = fmt.find('}', i);
    if (close == std::string::npos) raise("ValueError", "Single '{' encountered in format string");
    std::string field = fmt.substr(i + 1, close - i - 1);
    i = close;
    char conversion = 's';
    if (const size_t bang = field.find('!'); bang != std::string::npos) {
      conversion = bang + 1 < field.size() ? field[bang + 1] : 's';
      field.resize(bang);
    }
    if (field.find(':') != std::string::npos) raise("ValueError", "format specifications are not supported");
    const Value* v = nullptr;
    if (field.empty() || std::all_of(field.begin(), field.end(), [](char ch) { return ch >= '0' && ch <= '9'; })) {
      const size_t idx = field.empty() ? auto_index++ : size_t(std::stoul(field.substr(0, 9)));
      if (idx >= args.size()) raise("IndexError", "Replacement index " + std::to_string(idx) + " out of range for positional args tuple");
      v = &args[idx];
    } else {
      for (const auto& [k, x] : kwargs)
        if (k == field) v = &x;
      if (!v) raise("KeyError", uni::repr(field));
    }
    out += conversion == 'r' ? py_repr(*v) : py_str(*v);
  }
  return out;
}

}  // namespace gdn::tpl
