// Jinja2's built-in tests (`x is defined`, `x is mapping`, ...).
#include <cmath>

#include "template/builtins.h"
#include "template/format.h"
#include "template/unicode.h"

namespace gdn::tpl {

namespace {

constexpr const char* kJinjaTests[] = {
    "!=",      "<",      "<=",          ">",     ">=",     "==",       "boolean", "callable", "defined", "divisibleby",
    "eq",      "equalto", "escaped",    "even",  "false",  "filter",   "float",   "ge",       "greaterthan", "gt",
    "in",      "integer", "iterable",   "le",    "lessthan", "lower",  "lt",      "mapping",  "ne",      "none",
    "number",  "odd",    "sameas",      "sequence", "string", "test",  "true",    "undefined", "upper"};

Value py_mod(const Value& a, const Value& b) {
  if (a.is_undefined()) raise("UndefinedError", a.undefined_message());
  if (!a.is_number() || !b.is_number())
    raise("TypeError", "unsupported operand type(s) for %: '" + type_name(a) + "' and '" + type_name(b) + "'");
  if (a.kind() != Kind::Float && b.kind() != Kind::Float) {
    const int64_t x = a.as_int(), y = b.as_int();
    if (y == 0) raise("ZeroDivisionError", "integer modulo by zero");
    if (y == -1) return Value::integer(0);
    int64_t m = x % y;
    if (m != 0 && ((m < 0) != (y < 0))) m += y;
    return Value::integer(m);
  }
  const double x = a.as_float(), y = b.as_float();
  if (y == 0) raise("ZeroDivisionError", "float modulo");
  double m = std::fmod(x, y);
  if (m != 0 && ((m < 0) != (y < 0))) m += y;
  return Value::number(m);
}

bool cased_all(const std::string& s, bool upper) {  // str.isupper() / str.islower()
  bool any = false;
  for (size_t i = 0; i < s.size();) {
    const char32_t c = uni::next(s, i);
    if (upper ? uni::is_lower(c) : uni::is_upper(c)) return false;
    any |= uni::is_upper(c) || uni::is_lower(c);
  }
  return any;
}

}  // namespace

bool is_jinja_test(std::string_view name) {
  for (const char* t : kJinjaTests)
    if (name == t) return true;
  return false;
}

bool call_test(Renderer&, const std::string& name, const Value& v, CallArgs& args) {
  const Kind k = v.kind();
  auto no_args = [&] { args.bind("test_" + name, {}); };
  auto other = [&](const char* param) { return *args.bind("test_" + name, {param}, 1)[0]; };
  if (name == "defined") return no_args(), k != Kind::Undefined;
  if (name == "undefined") return no_args(), k == Kind::Undefined;
  if (name == "none") return no_args(), k == Kind::None;
  if (name == "boolean") return no_args(), k == Kind::Bool;
  if (name == "true") return no_args(), k == Kind::Bool && v.as_bool();
  if (name == "false") return no_args(), k == Kind::Bool && !v.as_bool();
  if (name == "integer") return no_args(), k == Kind::Int;
  if (name == "float") return no_args(), k == Kind::Float;
  if (name == "number") return no_args(), v.is_number();
  if (name == "string") return no_args(), k == Kind::Str;
  if (name == "mapping") return no_args(), k == Kind::Dict;
  if (name == "escaped") return no_args(), k == Kind::Str && v.is_markup();
  // Undefined has __len__ and __getitem__ (so it is a "sequence") and __iter__ and __call__.
  if (name == "sequence") return no_args(), k == Kind::Str || k == Kind::List || k == Kind::Dict || k == Kind::Undefined;
  if (name == "iterable")
    return no_args(), k == Kind::Str || k == Kind::List || k == Kind::Dict || k == Kind::Undefined || k == Kind::Iter || k == Kind::Loop;
  if (name == "callable") return no_args(), k == Kind::Callable || k == Kind::Undefined || k == Kind::Loop;
  if (name == "odd" || name == "even") {
    no_args();
    const Value m = py_mod(v, Value::integer(2));
    return py_equal(m, Value::integer(name == "odd" ? 1 : 0));
  }
  if (name == "divisibleby") return py_equal(py_mod(v, other("num")), Value::integer(0));
  if (name == "lower" || name == "upper") return no_args(), cased_all(py_str(v), name == "upper");
  if (name == "filter") return no_args(), k == Kind::Str && is_jinja_filter(v.as_str());
  if (name == "test") return no_args(), k == Kind::Str && is_jinja_test(v.as_str());
  if (name == "sameas") return v.same(other("other"));
  if (name == "in") return py_contains(other("seq"), v);
  if (name == "==" || name == "eq" || name == "equalto") return py_equal(v, other("other"));
  if (name == "!=" || name == "ne") return !py_equal(v, other("other"));
  const char* op = name == "<" || name == "lt" || name == "lessthan"      ? "<"
                   : name == "<=" || name == "le"                         ? "<="
                   : name == ">" || name == "gt" || name == "greaterthan" ? ">"
                                                                          : ">=";
  const int c = py_compare(v, other("other"), op);
  if (c == 2) return false;
  if (op[0] == '<') return op[1] ? c <= 0 : c < 0;
  return op[1] ? c >= 0 : c > 0;
}

}  // namespace gdn::tpl
