// The runtime value of the template engine: a Python object as Jinja2 sees it.
//
// Kinds map onto the Python types that reach a chat template through transformers: JSON null,
// booleans, numbers, strings, arrays and objects become None, bool, int/float, str, list and
// dict; the template itself creates tuples, namespaces, macros, loop contexts and generators
// (the lazy results of |select, |map, |items ... which Jinja2 returns as one-shot iterators:
// always truthy, no len(), consumed by the first loop — reproduced because templates observe it).
//
// Ownership. Strings, lists, dicts, iterators and callables are reference-counted and immutable
// once built (the sandbox forbids list.append & co.), so they can only point at values older
// than themselves: no reference cycle is possible. The one mutable object, the namespace, can
// point at itself (`{% set ns.me = ns %}`); namespaces therefore live in a per-render arena and
// values hold plain pointers to them. Containers record their nesting depth, which is capped, so
// destruction, repr, tojson and comparisons never recurse without bound.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

namespace gdn::tpl {

class Value;
class Renderer;
struct CallArgs;

// Any error raised while rendering, with the Python exception class Jinja2 would raise
// ("TypeError", "UndefinedError", "SecurityError", "TemplateError" for raise_exception, ...).
struct RenderError {
  std::string type;
  std::string message;
};
[[noreturn]] void raise(std::string type, std::string message);

enum class Kind : uint8_t { Undefined, None, Bool, Int, Float, Str, List, Dict, Iter, Namespace, Callable, Loop };

struct Obj {
  virtual ~Obj() = default;
  virtual std::string repr() const { return "<object>"; }
};

struct StrObj;
struct ListObj;
struct DictObj;
struct IterObj;
struct Namespace;
struct CallableObj;

class Value {
 public:
  Value() = default;  // Undefined
  static Value undefined(std::string message = {});
  static Value unsafe(std::string message);  // sandbox-blocked attribute: calling it is a SecurityError
  static Value none();
  static Value boolean(bool b);
  static Value integer(int64_t i);
  static Value number(double f);
  static Value str(std::string s, bool markup = false);
  static Value list(std::vector<Value> items, bool tuple = false);
  static Value dict(std::vector<std::pair<Value, Value>> entries);
  static Value iter(std::vector<Value> items, std::string type_name = "generator");
  static Value ns(Namespace* n);
  static Value callable(std::shared_ptr<CallableObj> c);
  static Value object(Kind k, std::shared_ptr<Obj> o);  // Loop

  Kind kind() const { return kind_; }
  bool is_undefined() const { return kind_ == Kind::Undefined; }
  bool is_none() const { return kind_ == Kind::None; }
  bool is_str() const { return kind_ == Kind::Str; }
  bool is_list() const { return kind_ == Kind::List; }  // list or tuple
  bool is_tuple() const;
  bool is_dict() const { return kind_ == Kind::Dict; }
  bool is_number() const { return kind_ == Kind::Bool || kind_ == Kind::Int || kind_ == Kind::Float; }
  bool is_markup() const { return markup_; }
  bool is_unsafe() const { return unsafe_; }

  bool as_bool() const { return b_; }
  int64_t as_int() const { return kind_ == Kind::Bool ? int64_t(b_) : i_; }  // Bool or Int
  double as_float() const { return kind_ == Kind::Float ? f_ : double(as_int()); }
  const std::string& as_str() const;
  const ListObj& as_list() const;
  const DictObj& as_dict() const;
  IterObj& as_iter() const;
  Namespace* as_ns() const { return ns_; }
  CallableObj& as_callable() const;
  const std::shared_ptr<Obj>& object() const { return obj_; }
  // Undefined: the UndefinedError (or SecurityError) message an operation on it raises.
  std::string undefined_message() const;

  int depth() const;       // container nesting depth (1 for scalars)
  bool truthy() const;     // Python truthiness; Undefined is false, generators are always true
  bool same(const Value& o) const;  // Python `is`

 private:
  Kind kind_ = Kind::Undefined;
  bool markup_ = false;
  bool unsafe_ = false;
  union {
    int64_t i_ = 0;
    bool b_;
    double f_;
    Namespace* ns_;
  };
  std::shared_ptr<Obj> obj_;  // Str, List, Dict, Iter, Callable, Loop; the message of an Undefined
};

struct StrObj final : Obj {
  explicit StrObj(std::string v) : s(std::move(v)) {}
  std::string s;
};

struct ListObj final : Obj {
  std::vector<Value> items;
  bool tuple = false;
  int depth = 1;
};

struct DictObj final : Obj {
  std::vector<std::pair<Value, Value>> entries;  // insertion order, like a Python dict
  int depth = 1;
  const Value* find(const Value& key) const;     // nullptr when absent
  void set(Value key, Value value);              // only while building
 private:
  std::unordered_map<std::string, size_t> index_;  // built once the dict grows past a few keys
};

// A one-shot iterator (Python generator). Items are computed eagerly by the filter that made it.
struct IterObj final : Obj {
  std::vector<Value> items;
  size_t pos = 0;
  std::string type_name = "generator";
  int depth = 1;
};

struct Namespace {
  std::vector<std::pair<std::string, Value>> attrs;  // in assignment order (repr shows them so)
  Value* find(const std::string& name);
  void set(const std::string& name, Value v);

 private:
  std::unordered_map<std::string, size_t> index_;
};

struct CallableObj : Obj {
  virtual Value call(Renderer& r, CallArgs& args) = 0;
};

inline const std::string& Value::as_str() const { return static_cast<const StrObj&>(*obj_).s; }
inline const ListObj& Value::as_list() const { return static_cast<const ListObj&>(*obj_); }
inline const DictObj& Value::as_dict() const { return static_cast<const DictObj&>(*obj_); }
inline IterObj& Value::as_iter() const { return static_cast<IterObj&>(*obj_); }
inline CallableObj& Value::as_callable() const { return static_cast<CallableObj&>(*obj_); }
inline bool Value::is_tuple() const { return kind_ == Kind::List && as_list().tuple; }

constexpr int kMaxDepth = 256;  // nesting cap for containers and recursive value operations

// Python semantics used across the interpreter.
std::string type_name(const Value& v);       // "int", "str", "list", "NoneType", "Undefined", ...
std::string object_type_repr(const Value& v);  // Jinja2's "dict object" / "None" in messages
bool py_equal(const Value& a, const Value& b);
int py_compare(const Value& a, const Value& b, const char* op);  // <0, 0, >0; TypeError if unordered
bool is_hashable(const Value& v);
std::string hash_key(const Value& v);  // equal values (1 == 1.0 == True) give equal keys
size_t py_len(const Value& v);         // TypeError when the value has no len()
bool py_contains(const Value& container, const Value& item);  // Python `item in container`
// Python iteration: list/tuple items, str characters, dict keys, remaining generator items.
std::vector<Value> py_iterate(const Value& v);
// Rough bytes touched by walking `v` once (top level only): what O(n) operations are charged.
size_t walk_cost(const Value& v);

}  // namespace gdn::tpl
