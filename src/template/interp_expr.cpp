// Expression evaluation: names, attribute/item access with Jinja2's sandboxed fallbacks,
// operators with Python semantics, calls, filters and tests.
#include <cmath>

#include "template/format.h"
#include "template/interp.h"
#include "template/unicode.h"

namespace gdn::tpl {

Renderer::Guard::Guard(Renderer& rr) : r(rr) {
  if (++r.depth_ > r.limits_.max_eval_depth) {
    --r.depth_;
    r.limit("template nesting too deep (more than " + std::to_string(r.limits_.max_eval_depth) + " levels of evaluation)");
  }
  if (++r.steps_ > r.limits_.max_steps) {
    --r.depth_;
    r.limit("template rendering took too many steps (limit " + std::to_string(r.limits_.max_steps) + ")");
  }
}

void Renderer::limit(const std::string& what) const { raise("LimitExceeded", what); }

void Renderer::charge(size_t bytes) {
  steps_ += bytes / 64;
  if (steps_ > limits_.max_steps)
    limit("template rendering took too many steps (limit " + std::to_string(limits_.max_steps) + ")");
}

void Renderer::check_size(size_t bytes) const {
  if (bytes > limits_.max_output_bytes)
    limit("template output exceeds the size limit of " + std::to_string(limits_.max_output_bytes) + " bytes");
}

Namespace* Renderer::new_namespace() {
  arena_.push_back(std::make_unique<Namespace>());
  return arena_.back().get();
}

Value Renderer::lookup(const std::string& name, Frame& f) {
  for (Frame* s = &f; s; s = s->parent)
    if (Value* v = s->find_local(name)) return *v;
  if (auto g = builtin_global(name)) return *g;
  return Value::undefined("'" + name + "' is undefined");
}

namespace {
bool is_python_dunder(const std::string& name) {
  static const char* const kDunders[] = {
      "__class__", "__dict__", "__doc__", "__init__", "__new__", "__module__", "__getattribute__", "__setattr__",
      "__delattr__", "__len__", "__getitem__", "__iter__", "__str__", "__repr__", "__hash__", "__eq__", "__ne__",
      "__lt__", "__le__", "__gt__", "__ge__", "__dir__", "__reduce__", "__reduce_ex__", "__format__", "__sizeof__",
      "__subclasshook__", "__init_subclass__", "__globals__", "__code__", "__func__", "__self__", "__builtins__",
      "__mro__", "__bases__", "__subclasses__", "__contains__", "__add__", "__mul__", "__mod__"};
  for (const char* d : kDunders)
    if (name == d) return true;
  return false;
}
}  // namespace

// jinja2 SandboxedEnvironment.getattr: the Python attribute first, then obj[name].
Value Renderer::getattr(const Value& obj, const std::string& name) {
  switch (obj.kind()) {
    case Kind::Undefined: raise(obj.is_unsafe() ? "SecurityError" : "UndefinedError", obj.undefined_message());
    case Kind::Namespace:
      if (Value* v = obj.as_ns()->find(name)) return *v;
      break;
    case Kind::Loop: {
      auto& l = static_cast<LoopObj&>(*obj.object());
      const size_t n = l.items.size(), i = l.index0;
      if (name == "index0") return Value::integer(int64_t(i));
      if (name == "index") return Value::integer(int64_t(i + 1));
      if (name == "revindex0") return Value::integer(int64_t(n - i - 1));
      if (name == "revindex") return Value::integer(int64_t(n - i));
      if (name == "first") return Value::boolean(i == 0);
      if (name == "last") return Value::boolean(i + 1 == n);
      if (name == "length") return Value::integer(int64_t(n));
      if (name == "depth0") return Value::integer(l.depth0);
      if (name == "depth") return Value::integer(l.depth0 + 1);
      if (name == "previtem")
        return i > 0 ? l.items[i - 1] : Value::undefined("there is no previous item");
      if (name == "nextitem")
        return i + 1 < n ? l.items[i + 1] : Value::undefined("there is no next item");
      if (auto m = builtin_attribute(obj, name)) return *m;  // cycle, changed
      break;
    }
    default:
      if (name.empty() || name[0] != '_') {
        if (auto m = builtin_attribute(obj, name)) return *m;
      } else if (is_python_dunder(name)) {  // exists on every Python object: the sandbox refuses it
        return Value::unsafe("access to attribute '" + name + "' of '" + type_name(obj) + "' object is unsafe.");
      }
      if (obj.is_dict())
        if (const Value* v = obj.as_dict().find(Value::str(name))) return *v;
      break;
  }
  return Value::undefined(uni::repr(object_type_repr(obj)) + " has no attribute " + uni::repr(name));
}

// jinja2 SandboxedEnvironment.getitem: obj[key] first, then the attribute for string keys.
Value Renderer::getitem(const Value& obj, const Value& key) {
  switch (obj.kind()) {
    case Kind::Undefined: raise(obj.is_unsafe() ? "SecurityError" : "UndefinedError", obj.undefined_message());
    case Kind::Dict:
      if (const Value* v = obj.as_dict().find(key)) return *v;
      break;
    case Kind::List:
    case Kind::Str:
      if (key.kind() == Kind::Int || key.kind() == Kind::Bool) {
        const bool is_str = obj.is_str();
        if (is_str) charge(obj.as_str().size());  // counting characters walks the string
        const int64_t n = int64_t(is_str ? uni::length(obj.as_str()) : obj.as_list().items.size());
        int64_t i = key.as_int();
        if (i < 0) i += n;
        if (i >= 0 && i < n) {
          if (!is_str) return obj.as_list().items[size_t(i)];
          if (uni::is_ascii(obj.as_str())) return Value::str(obj.as_str().substr(size_t(i), 1), obj.is_markup());
          const auto cps = uni::decode(obj.as_str());
          return Value::str(uni::encode(cps, size_t(i), size_t(i) + 1), obj.is_markup());
        }
      }
      break;
    default: break;
  }
  if (key.is_str()) {
    Value v = getattr(obj, key.as_str());
    if (!v.is_undefined() || v.is_unsafe()) return v;
  }
  if (key.is_str()) return Value::undefined(uni::repr(object_type_repr(obj)) + " has no attribute " + uni::repr(key.as_str()));
  return Value::undefined(object_type_repr(obj) + " has no element " + py_repr(key));
}

namespace {

[[noreturn]] void undefined_error(const Value& v) {
  raise(v.is_unsafe() ? "SecurityError" : "UndefinedError", v.undefined_message());
}

[[noreturn]] void unsupported(const std::string& op, const Value& a, const Value& b) {
  raise("TypeError", "unsupported operand type(s) for " + op + ": '" + type_name(a) + "' and '" + type_name(b) + "'");
}

bool is_intlike(const Value& v) { return v.kind() == Kind::Int || v.kind() == Kind::Bool; }

Value int_result(__int128 r) {
  if (r > INT64_MAX || r < INT64_MIN) raise("OverflowError", "integer result too large (gdnserve integers are 64-bit)");
  return Value::integer(int64_t(r));
}

double float_mod(double a, double b) {  // Python float %: the result takes the divisor's sign
  double m = std::fmod(a, b);
  if (m != 0 && ((m < 0) != (b < 0))) m += b;
  if (m == 0) m = std::copysign(0.0, b);
  return m;
}

double float_floordiv(double a, double b) {  // CPython's float_floor_div
  double mod = std::fmod(a, b);
  double div = (a - mod) / b;
  if (mod != 0 && ((b < 0) != (mod < 0))) div -= 1.0;
  if (div == 0) return std::copysign(0.0, a / b);
  double fl = std::floor(div);
  if (div - fl > 0.5) fl += 1.0;
  return fl;
}

}  // namespace

Value Renderer::eval_binary(const Expr& e, Frame& f) {
  const Value a = eval(*e.a, f);
  const Value b = eval(*e.b, f);
  const std::string& op = e.name;
  if (op == "~") {  // str_join: str() of both, Undefined is ""
    const std::string sa = a.is_str() ? std::string() : py_str(a), sb = b.is_str() ? std::string() : py_str(b);
    const std::string& x = a.is_str() ? a.as_str() : sa;
    const std::string& y = b.is_str() ? b.as_str() : sb;
    check_size(x.size() + y.size());
    charge(x.size() + y.size());
    std::string s;
    s.reserve(x.size() + y.size());
    s += x;
    s += y;
    return Value::str(std::move(s));
  }
  if (a.is_undefined()) undefined_error(a);
  if (b.is_undefined()) undefined_error(b);
  if (a.is_number() && b.is_number()) {
    const bool ints = is_intlike(a) && is_intlike(b);
    const __int128 x = a.as_int(), y = b.as_int();
    const double p = a.as_float(), q = b.as_float();
    if (op == "+") return ints ? int_result(x + y) : Value::number(p + q);
    if (op == "-") return ints ? int_result(x - y) : Value::number(p - q);
    if (op == "*") return ints ? int_result(x * y) : Value::number(p * q);
    if (op == "/") {
      if (q == 0) raise("ZeroDivisionError", "division by zero");
      return Value::number(ints ? double(a.as_int()) / double(b.as_int()) : p / q);
    }
    if (op == "//" || op == "%") {
      if (ints) {
        if (y == 0) raise("ZeroDivisionError", op == "//" ? "integer division or modulo by zero" : "integer modulo by zero");
        __int128 d = x / y, m = x % y;
        if (m != 0 && ((m < 0) != (y < 0))) --d, m += y;  // floor semantics
        return int_result(op == "//" ? d : m);
      }
      if (q == 0) raise("ZeroDivisionError", op == "//" ? "float floor division by zero" : "float modulo");
      return Value::number(op == "//" ? float_floordiv(p, q) : float_mod(p, q));
    }
    if (op == "**") {
      if (ints && y >= 0) {
        if (x == 0 || x == 1) return Value::integer(y == 0 ? 1 : int64_t(x));
        if (x == -1) return Value::integer(y % 2 ? -1 : 1);
        __int128 r = 1;  // |x| >= 2: overflows within 63 multiplications
        for (int64_t k = int64_t(y); k > 0; --k) {
          r *= x;
          if (r > INT64_MAX || r < INT64_MIN) raise("OverflowError", "integer result too large (gdnserve integers are 64-bit)");
        }
        return Value::integer(int64_t(r));
      }
      if (p == 0 && q < 0) raise("ZeroDivisionError", "0.0 cannot be raised to a negative power");
      return Value::number(std::pow(p, q));
    }
  }
  if (op == "+") {
    if (a.is_str() && b.is_str()) {
      // Markup + str escapes the plain operand (markupsafe), even with autoescape off.
      const bool markup = a.is_markup() || b.is_markup();
      std::string s = markup && !a.is_markup() ? html_escape(a.as_str()) : a.as_str();
      s += markup && !b.is_markup() ? html_escape(b.as_str()) : b.as_str();
      check_size(s.size());
      charge(s.size());
      return Value::str(std::move(s), markup);
    }
    if (a.is_list() && b.is_list() && a.is_tuple() == b.is_tuple()) {
      std::vector<Value> items = a.as_list().items;
      items.insert(items.end(), b.as_list().items.begin(), b.as_list().items.end());
      check_size(items.size() * sizeof(Value));
      charge(items.size() * sizeof(Value));
      return Value::list(std::move(items), a.is_tuple());
    }
    if (a.is_str() && !b.is_str()) raise("TypeError", "can only concatenate str (not \"" + type_name(b) + "\") to str");
    if (a.is_list() && !a.is_tuple() && !b.is_list())
      raise("TypeError", "can only concatenate list (not \"" + type_name(b) + "\") to list");
  }
  if (op == "*" && (is_intlike(a) || is_intlike(b)) && (a.is_str() || b.is_str() || a.is_list() || b.is_list())) {
    const Value& seq = is_intlike(a) ? b : a;
    const int64_t n = std::max<int64_t>(0, is_intlike(a) ? a.as_int() : b.as_int());
    const size_t unit = seq.is_str() ? seq.as_str().size() : seq.as_list().items.size() * sizeof(Value);
    if (unit && uint64_t(n) > limits_.max_output_bytes / unit + 1) check_size(limits_.max_output_bytes + 1);
    check_size(unit * size_t(n));
    charge(unit * size_t(n));
    if (seq.is_str()) {
      std::string s;
      s.reserve(seq.as_str().size() * size_t(n));
      for (int64_t i = 0; i < n; ++i) s += seq.as_str();
      return Value::str(std::move(s), seq.is_markup());
    }
    std::vector<Value> items;
    for (int64_t i = 0; i < n; ++i) items.insert(items.end(), seq.as_list().items.begin(), seq.as_list().items.end());
    return Value::list(std::move(items), seq.is_tuple());
  }
  if (op == "%" && a.is_str()) {
    std::string s = percent_format(a.as_str(), b, a.is_markup());
    check_size(s.size());
    return Value::str(std::move(s), a.is_markup());
  }
  unsupported(op, a, b);
}

Value Renderer::eval_compare(const Expr& e, Frame& f) {
  Value left = eval(*e.a, f);
  for (size_t i = 0; i < e.ops.size(); ++i) {
    Value right = eval(*e.items[i], f);
    charge(walk_cost(left) + walk_cost(right));  // `in` and == on containers walk them
    const std::string& op = e.ops[i];
    bool ok;
    if (op == "==") {
      ok = py_equal(left, right);
    } else if (op == "!=") {
      ok = !py_equal(left, right);
    } else if (op == "in" || op == "notin") {
      ok = py_contains(right, left) == (op == "in");
    } else {
      const int c = py_compare(left, right, op.c_str());
      if (c == 2) {
        ok = false;  // NaN
      } else if (op == "<") {
        ok = c < 0;
      } else if (op == "<=") {
        ok = c <= 0;
      } else if (op == ">") {
        ok = c > 0;
      } else {
        ok = c >= 0;
      }
    }
    if (!ok) return Value::boolean(false);
    left = std::move(right);
  }
  return Value::boolean(true);
}

void Renderer::eval_args(const Expr& e, Frame& f, CallArgs& args) {
  for (const auto& a : e.items) args.pos.push_back(eval(*a, f));
  for (const auto& k : e.kwargs) {
    for (const auto& [name, _] : args.kw)
      if (name == k.name) raise("TypeError", "got multiple values for keyword argument '" + k.name + "'");
    args.kw.emplace_back(k.name, eval(*k.value, f));
  }
}

Value Renderer::call(const Value& callee, CallArgs& args) {
  switch (callee.kind()) {
    case Kind::Callable: return callee.as_callable().call(*this, args);
    case Kind::Undefined: undefined_error(callee);
    case Kind::Loop: {
      auto& l = static_cast<LoopObj&>(*callee.object());
      if (!l.stmt || !l.stmt->recursive)
        raise("TypeError", "Tried to call non recursive loop.  Maybe you forgot the 'recursive' modifier.");
      if (!l.active) raise("RuntimeError", "the loop has finished");
      if (args.pos.size() != 1 || !args.kw.empty()) raise("TypeError", "loop() takes exactly one argument");
      std::string out;
      run_loop(*l.stmt, *l.frame, args.pos[0], l.depth0 + 1, out);
      return Value::str(std::move(out));
    }
    default: raise("TypeError", "'" + type_name(callee) + "' object is not callable");
  }
}

Value Renderer::eval_call(const Expr& e, Frame& f) {
  const Value callee = eval(*e.a, f);
  CallArgs args;
  eval_args(e, f, args);
  return call(callee, args);
}

Value Renderer::eval_filter(const Expr& e, const Value& input, Frame& f) {
  CallArgs args;
  eval_args(e, f, args);
  if (!is_jinja_filter(e.name)) raise("TemplateRuntimeError", "No filter named '" + e.name + "' found.");
  charge(walk_cost(input));  // most filters walk their input once
  Value v = call_filter(*this, e.name, input, args);
  if (v.is_str()) charge(v.as_str().size());
  return v;
}

Value Renderer::eval(const Expr& e, Frame& f) {
  Guard guard(*this);
  line_ = e.line;
  switch (e.kind) {
    case EK::Const: return e.value;
    case EK::Name: return lookup(e.name, f);
    case EK::List:
    case EK::Tuple: {
      std::vector<Value> items;
      items.reserve(e.items.size());
      for (const auto& x : e.items) items.push_back(eval(*x, f));
      return Value::list(std::move(items), e.kind == EK::Tuple);
    }
    case EK::Dict: {
      std::vector<std::pair<Value, Value>> entries;
      for (size_t i = 0; i + 1 < e.items.size(); i += 2) {
        Value k = eval(*e.items[i], f);
        entries.emplace_back(std::move(k), eval(*e.items[i + 1], f));
      }
      return Value::dict(std::move(entries));
    }
    case EK::Attr: return getattr(eval(*e.a, f), e.name);
    case EK::Item: {
      const Value obj = eval(*e.a, f);
      return getitem(obj, eval(*e.b, f));
    }
    case EK::Slice: {
      const Value obj = eval(*e.a, f);
      Value parts[3];
      for (int i = 0; i < 3; ++i) parts[i] = e.items[size_t(i)] ? eval(*e.items[size_t(i)], f) : Value::none();
      // Jinja2 compiles slices to a plain Python subscript (no sandbox getitem fallback).
      if (obj.is_undefined()) undefined_error(obj);
      if (obj.is_dict()) raise("TypeError", "unhashable type: 'slice'");
      if (!obj.is_str() && !obj.is_list()) raise("TypeError", "'" + type_name(obj) + "' object is not subscriptable");
      charge(walk_cost(obj));
      return py_slice(obj, parts[0], parts[1], parts[2]);
    }
    case EK::Call: return eval_call(e, f);
    case EK::Filter: return eval_filter(e, e.a ? eval(*e.a, f) : Value(), f);
    case EK::Test: {
      const Value v = eval(*e.a, f);
      CallArgs args;
      eval_args(e, f, args);
      if (!is_jinja_test(e.name)) raise("TemplateRuntimeError", "No test named '" + e.name + "' found.");
      for (const Value& a : args.pos) charge(walk_cost(a));  // `is in`
      return Value::boolean(call_test(*this, e.name, v, args) != e.negated);
    }
    case EK::Neg:
    case EK::Pos: {
      const Value v = eval(*e.a, f);
      if (v.is_undefined()) undefined_error(v);
      if (!v.is_number()) raise("TypeError", std::string("bad operand type for unary ") + (e.kind == EK::Neg ? "-" : "+") + ": '" + type_name(v) + "'");
      if (e.kind == EK::Pos) return v.kind() == Kind::Bool ? Value::integer(v.as_int()) : v;
      if (v.kind() == Kind::Float) return Value::number(-v.as_float());
      return int_result(-__int128(v.as_int()));
    }
    case EK::Not: return Value::boolean(!eval(*e.a, f).truthy());
    case EK::And: {
      Value a = eval(*e.a, f);
      return a.truthy() ? eval(*e.b, f) : a;
    }
    case EK::Or: {
      Value a = eval(*e.a, f);
      return a.truthy() ? a : eval(*e.b, f);
    }
    case EK::Binary: return eval_binary(e, f);
    case EK::Compare: return eval_compare(e, f);
    case EK::CondExpr:
      if (eval(*e.b, f).truthy()) return eval(*e.a, f);
      return e.c ? eval(*e.c, f) : Value::undefined("the inline if-expression on line " + std::to_string(e.line) + " evaluated to false and no else section was defined.");
  }
  return Value();
}

}  // namespace gdn::tpl
