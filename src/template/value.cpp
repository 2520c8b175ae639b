#include "template/value.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "template/unicode.h"

namespace gdn::tpl {

void raise(std::string type, std::string message) { throw RenderError{std::move(type), std::move(message)}; }

// ---- construction ----------------------------------------------------------------------------

namespace {
int max_depth(const std::vector<Value>& items) {
  int d = 0;
  for (const Value& v : items) d = std::max(d, v.depth());
  if (d + 1 > kMaxDepth) raise("RecursionError", "maximum nesting depth of containers exceeded");
  return d + 1;
}
}  // namespace

Value Value::undefined(std::string message) {
  Value v;
  if (!message.empty()) v.obj_ = std::make_shared<StrObj>(std::move(message));
  return v;
}

Value Value::unsafe(std::string message) {
  Value v = undefined(std::move(message));
  v.unsafe_ = true;
  return v;
}

Value Value::none() {
  Value v;
  v.kind_ = Kind::None;
  return v;
}

Value Value::boolean(bool b) {
  Value v;
  v.kind_ = Kind::Bool;
  v.b_ = b;
  return v;
}

Value Value::integer(int64_t i) {
  Value v;
  v.kind_ = Kind::Int;
  v.i_ = i;
  return v;
}

Value Value::number(double f) {
  Value v;
  v.kind_ = Kind::Float;
  v.f_ = f;
  return v;
}

Value Value::str(std::string s, bool markup) {
  Value v;
  v.kind_ = Kind::Str;
  v.markup_ = markup;
  v.obj_ = std::make_shared<StrObj>(std::move(s));
  return v;
}

Value Value::list(std::vector<Value> items, bool tuple) {
  auto l = std::make_shared<ListObj>();
  l->depth = max_depth(items);
  l->items = std::move(items);
  l->tuple = tuple;
  Value v;
  v.kind_ = Kind::List;
  v.obj_ = std::move(l);
  return v;
}

Value Value::dict(std::vector<std::pair<Value, Value>> entries) {
  auto d = std::make_shared<DictObj>();
  int depth = 0;
  for (auto& [k, val] : entries) {
    depth = std::max({depth, k.depth(), val.depth()});
    d->set(std::move(k), std::move(val));
  }
  if (depth + 1 > kMaxDepth) raise("RecursionError", "maximum nesting depth of containers exceeded");
  d->depth = depth + 1;
  Value v;
  v.kind_ = Kind::Dict;
  v.obj_ = std::move(d);
  return v;
}

Value Value::iter(std::vector<Value> items, std::string type_name) {
  auto it = std::make_shared<IterObj>();
  it->depth = max_depth(items);
  it->items = std::move(items);
  it->type_name = std::move(type_name);
  Value v;
  v.kind_ = Kind::Iter;
  v.obj_ = std::move(it);
  return v;
}

Value Value::ns(Namespace* n) {
  Value v;
  v.kind_ = Kind::Namespace;
  v.ns_ = n;
  return v;
}

Value Value::callable(std::shared_ptr<CallableObj> c) { return object(Kind::Callable, std::move(c)); }

Value Value::object(Kind k, std::shared_ptr<Obj> o) {
  Value v;
  v.kind_ = k;
  v.obj_ = std::move(o);
  return v;
}

std::string Value::undefined_message() const {
  if (obj_) return static_cast<const StrObj&>(*obj_).s;
  return "None is undefined";
}

int Value::depth() const {
  switch (kind_) {
    case Kind::List: return as_list().depth;
    case Kind::Dict: return as_dict().depth;
    case Kind::Iter: return as_iter().depth;
    default: return 1;
  }
}

bool Value::truthy() const {
  switch (kind_) {
    case Kind::Undefined:
    case Kind::None: return false;
    case Kind::Bool: return b_;
    case Kind::Int: return i_ != 0;
    case Kind::Float: return f_ != 0.0;
    case Kind::Str: return !as_str().empty();
    case Kind::List: return !as_list().items.empty();
    case Kind::Dict: return !as_dict().entries.empty();
    default: return true;  // generators, namespaces, callables, loop contexts
  }
}

bool Value::same(const Value& o) const {
  if (kind_ != o.kind_) return false;
  switch (kind_) {
    case Kind::Undefined:
    case Kind::None: return true;
    case Kind::Bool: return b_ == o.b_;
    case Kind::Int: return i_ == o.i_;  // small ints are interned in CPython; good enough
    case Kind::Float: return f_ == o.f_;
    case Kind::Namespace: return ns_ == o.ns_;
    default: return obj_ == o.obj_;
  }
}

// ---- dicts and namespaces --------------------------------------------------------------------

const Value* DictObj::find(const Value& key) const {
  if (!index_.empty()) {
    if (!is_hashable(key)) return nullptr;
    auto it = index_.find(hash_key(key));
    return it == index_.end() ? nullptr : &entries[it->second].second;
  }
  for (const auto& [k, v] : entries)
    if (py_equal(k, key)) return &v;
  return nullptr;
}

void DictObj::set(Value key, Value value) {
  if (!is_hashable(key)) raise("TypeError", "unhashable type: '" + type_name(key) + "'");
  for (auto& [k, v] : entries)
    if (index_.empty() && py_equal(k, key)) {
      v = std::move(value);
      return;
    }
  std::string h = hash_key(key);
  if (!index_.empty()) {
    auto it = index_.find(h);
    if (it != index_.end()) {
      entries[it->second].second = std::move(value);
      return;
    }
  }
  entries.emplace_back(std::move(key), std::move(value));
  if (entries.size() == 9) {  // switch to hashed lookups once linear scans get long
    for (size_t i = 0; i < entries.size(); ++i) index_.emplace(hash_key(entries[i].first), i);
  } else if (!index_.empty()) {
    index_.emplace(std::move(h), entries.size() - 1);
  }
}

Value* Namespace::find(const std::string& name) {
  auto it = index_.find(name);
  return it == index_.end() ? nullptr : &attrs[it->second].second;
}

void Namespace::set(const std::string& name, Value v) {
  if (Value* slot = find(name)) {
    *slot = std::move(v);
    return;
  }
  index_.emplace(name, attrs.size());
  attrs.emplace_back(name, std::move(v));
}

// ---- Python semantics ------------------------------------------------------------------------

std::string type_name(const Value& v) {
  switch (v.kind()) {
    case Kind::Undefined: return "Undefined";
    case Kind::None: return "NoneType";
    case Kind::Bool: return "bool";
    case Kind::Int: return "int";
    case Kind::Float: return "float";
    case Kind::Str: return v.is_markup() ? "Markup" : "str";
    case Kind::List: return v.as_list().tuple ? "tuple" : "list";
    case Kind::Dict: return "dict";
    case Kind::Iter: return v.as_iter().type_name;
    case Kind::Namespace: return "Namespace";
    case Kind::Callable: return "function";
    case Kind::Loop: return "LoopContext";
  }
  return "object";
}

std::string object_type_repr(const Value& v) {
  if (v.is_none()) return "None";
  switch (v.kind()) {
    case Kind::Undefined: return "jinja2.runtime.Undefined object";
    case Kind::Namespace: return "jinja2.utils.Namespace object";
    case Kind::Loop: return "jinja2.runtime.LoopContext object";
    case Kind::Str:
      if (v.is_markup()) return "markupsafe.Markup object";
      break;
    default: break;
  }
  return type_name(v) + " object";
}

namespace {
// int64 vs double compared exactly, as Python does (long double holds every int64 exactly).
int cmp_num(const Value& a, const Value& b) {
  if (a.kind() != Kind::Float && b.kind() != Kind::Float) {
    const int64_t x = a.as_int(), y = b.as_int();
    return x < y ? -1 : x > y ? 1 : 0;
  }
  const long double x = a.kind() == Kind::Float ? (long double)a.as_float() : (long double)a.as_int();
  const long double y = b.kind() == Kind::Float ? (long double)b.as_float() : (long double)b.as_int();
  if (std::isnan(x) || std::isnan(y)) return 2;  // unordered
  return x < y ? -1 : x > y ? 1 : 0;
}
}  // namespace

bool py_equal(const Value& a, const Value& b) {
  if (a.is_number() && b.is_number()) return cmp_num(a, b) == 0;
  if (a.kind() != b.kind()) return false;
  switch (a.kind()) {
    case Kind::Undefined:
    case Kind::None: return true;
    case Kind::Str: return a.as_str() == b.as_str();
    case Kind::List: {
      const ListObj &x = a.as_list(), &y = b.as_list();
      if (x.tuple != y.tuple || x.items.size() != y.items.size()) return false;
      for (size_t i = 0; i < x.items.size(); ++i)
        if (!x.items[i].same(y.items[i]) && !py_equal(x.items[i], y.items[i])) return false;
      return true;
    }
    case Kind::Dict: {
      const DictObj &x = a.as_dict(), &y = b.as_dict();
      if (x.entries.size() != y.entries.size()) return false;
      for (const auto& [k, v] : x.entries) {
        const Value* w = y.find(k);
        if (!w || (!v.same(*w) && !py_equal(v, *w))) return false;
      }
      return true;
    }
    default: return a.same(b);
  }
}

int py_compare(const Value& a, const Value& b, const char* op) {
  if (a.is_undefined()) raise("UndefinedError", a.undefined_message());
  if (b.is_undefined()) raise("UndefinedError", b.undefined_message());
  if (a.is_number() && b.is_number()) return cmp_num(a, b);
  if (a.is_str() && b.is_str()) {
    const int c = a.as_str().compare(b.as_str());  // UTF-8 byte order == code point order
    return c < 0 ? -1 : c > 0 ? 1 : 0;
  }
  if (a.is_list() && b.is_list() && a.as_list().tuple == b.as_list().tuple) {
    const auto &x = a.as_list().items, &y = b.as_list().items;
    for (size_t i = 0; i < x.size() && i < y.size(); ++i)
      if (!py_equal(x[i], y[i])) return py_compare(x[i], y[i], op);
    return x.size() < y.size() ? -1 : x.size() > y.size() ? 1 : 0;
  }
  raise("TypeError", std::string("'") + op + "' not supported between instances of '" + type_name(a) + "' and '" +
                         type_name(b) + "'");
}

bool is_hashable(const Value& v) {
  switch (v.kind()) {
    case Kind::None:
    case Kind::Bool:
    case Kind::Int:
    case Kind::Float:
    case Kind::Str: return true;
    case Kind::List:
      if (!v.as_list().tuple) return false;
      for (const Value& x : v.as_list().items)
        if (!is_hashable(x)) return false;
      return true;
    case Kind::Dict: return false;
    default: return true;  // identity-hashed objects
  }
}

std::string hash_key(const Value& v) {
  switch (v.kind()) {
    case Kind::Str: return std::string("s").append(v.as_str());
    case Kind::Bool:
    case Kind::Int: return std::string("i").append(std::to_string(v.as_int()));
    case Kind::Float: {
      const double f = v.as_float();
      if (std::isfinite(f) && f == std::trunc(f) && std::fabs(f) < 9.2e18) return std::string("i").append(std::to_string(int64_t(f)));
      char buf[64];
      std::snprintf(buf, sizeof buf, "f%a", f);
      return buf;
    }
    case Kind::None: return "n";
    case Kind::List: {
      std::string k = "t(";
      for (const Value& x : v.as_list().items) k += hash_key(x) + "\x1f";
      return k + ")";
    }
    case Kind::Namespace: {
      char buf[32];
      std::snprintf(buf, sizeof buf, "o%p", static_cast<void*>(v.as_ns()));
      return buf;
    }
    default: {
      char buf[32];
      std::snprintf(buf, sizeof buf, "o%p", static_cast<void*>(v.object().get()));
      return buf;
    }
  }
}

size_t py_len(const Value& v) {
  switch (v.kind()) {
    case Kind::Undefined: return 0;  // Jinja2's Undefined.__len__
    case Kind::Str: return uni::length(v.as_str());
    case Kind::List: return v.as_list().items.size();
    case Kind::Dict: return v.as_dict().entries.size();
    default: raise("TypeError", "object of type '" + type_name(v) + "' has no len()");
  }
}

bool py_contains(const Value& c, const Value& item) {
  switch (c.kind()) {
    case Kind::Undefined: return false;  // iterates as empty
    case Kind::Str:
      if (!item.is_str())
        raise("TypeError", "'in <string>' requires string as left operand, not " + type_name(item));
      return c.as_str().find(item.as_str()) != std::string::npos;
    case Kind::List:
      for (const Value& x : c.as_list().items)
        if (x.same(item) || py_equal(x, item)) return true;
      return false;
    case Kind::Dict:
      if (!is_hashable(item)) raise("TypeError", "unhashable type: '" + type_name(item) + "'");
      return c.as_dict().find(item) != nullptr;
    case Kind::Iter: {  // like Python, membership consumes the generator up to the match
      IterObj& it = c.as_iter();
      while (it.pos < it.items.size())
        if (py_equal(it.items[it.pos++], item)) return true;
      return false;
    }
    default: raise("TypeError", "argument of type '" + type_name(c) + "' is not iterable");
  }
}

size_t walk_cost(const Value& v) {
  switch (v.kind()) {
    case Kind::Str: return v.as_str().size();
    case Kind::List: return v.as_list().items.size() * sizeof(Value);
    case Kind::Dict: return v.as_dict().entries.size() * 2 * sizeof(Value);
    case Kind::Iter: return v.as_iter().items.size() * sizeof(Value);
    default: return 0;
  }
}

std::vector<Value> py_iterate(const Value& v) {
  switch (v.kind()) {
    case Kind::Undefined: return {};
    case Kind::Str: {
      std::vector<Value> out;
      const std::string& s = v.as_str();
      for (size_t i = 0; i < s.size();) {
        const size_t b = i;
        uni::next(s, i);
        out.push_back(Value::str(s.substr(b, i - b), v.is_markup()));
      }
      return out;
    }
    case Kind::List: return v.as_list().items;
    case Kind::Dict: {
      std::vector<Value> out;
      for (const auto& [k, _] : v.as_dict().entries) out.push_back(k);
      return out;
    }
    case Kind::Iter: {
      IterObj& it = v.as_iter();
      std::vector<Value> out(it.items.begin() + std::ptrdiff_t(it.pos), it.items.end());
      it.pos = it.items.size();
      return out;
    }
    default: raise("TypeError", std::string("'").append(type_name(v)).append("' object is not iterable"));
  }
}

}  // namespace gdn::tpl
