// Global functions (range, dict, namespace, raise_exception, strftime_now, joiner) and Python
// slicing.
#include <algorithm>
#include <ctime>

#include "template/builtins.h"
#include "template/format.h"
#include "template/interp.h"
#include "template/unicode.h"

namespace gdn::tpl {

namespace {

int64_t as_index(const Value& v) {
  if (v.kind() != Kind::Int && v.kind() != Kind::Bool)
    raise("TypeError", std::string("'").append(type_name(v)).append("' object cannot be interpreted as an integer"));
  return v.as_int();
}

}  // namespace

// ---- globals ---------------------------------------------------------------------------------

namespace {

using GlobalFn = Value (*)(Renderer&, CallArgs&);

struct BuiltinFn final : CallableObj {
  BuiltinFn(std::string n, GlobalFn f) : name(std::move(n)), fn(f) {}
  Value call(Renderer& r, CallArgs& args) override { return fn(r, args); }
  std::string repr() const override { return "<function " + name + ">"; }
  std::string name;
  GlobalFn fn;
};

// Pairs from a mapping or an iterable of 2-item iterables (dict()/namespace() positional).
void add_pairs(std::vector<std::pair<Value, Value>>& out, const Value& src) {
  if (src.is_dict()) {
    out.insert(out.end(), src.as_dict().entries.begin(), src.as_dict().entries.end());
    return;
  }
  for (const Value& item : py_iterate(src)) {
    const auto kv = py_iterate(item);
    if (kv.size() != 2) raise("ValueError", "dictionary update sequence element has length " + std::to_string(kv.size()) + "; 2 is required");
    out.emplace_back(kv[0], kv[1]);
  }
}

Value g_range(Renderer& r, CallArgs& a) {
  if (!a.kw.empty()) raise("TypeError", "range() takes no keyword arguments");
  if (a.pos.empty() || a.pos.size() > 3) raise("TypeError", "range expected 1 to 3 arguments, got " + std::to_string(a.pos.size()));
  int64_t start = 0, stop, step = 1;
  if (a.pos.size() == 1) {
    stop = as_index(a.pos[0]);
  } else {
    start = as_index(a.pos[0]);
    stop = as_index(a.pos[1]);
    if (a.pos.size() == 3) step = as_index(a.pos[2]);
  }
  if (step == 0) raise("ValueError", "range() arg 3 must not be zero");
  const __int128 span = step > 0 ? __int128(stop) - start : __int128(start) - stop;
  const __int128 n = span <= 0 ? 0 : (span + (step > 0 ? step : -__int128(step)) - 1) / (step > 0 ? step : -__int128(step));
  if (n > 100000) raise("OverflowError", "Range too big. The sandbox blocks ranges larger than MAX_RANGE (100000).");
  std::vector<Value> items;
  for (__int128 i = 0; i < n; ++i) items.push_back(Value::integer(int64_t(start + i * step)));
  r.charge(items.size() * sizeof(Value));
  return Value::list(std::move(items));
}

Value g_dict(Renderer&, CallArgs& a) {
  if (a.pos.size() > 1) raise("TypeError", "dict expected at most 1 argument, got " + std::to_string(a.pos.size()));
  std::vector<std::pair<Value, Value>> entries;
  if (!a.pos.empty()) add_pairs(entries, a.pos[0]);
  for (const auto& [k, v] : a.kw) entries.emplace_back(Value::str(k), v);
  return Value::dict(std::move(entries));
}

Value g_namespace(Renderer& r, CallArgs& a) {
  if (a.pos.size() > 1) raise("TypeError", "namespace expected at most 1 argument, got " + std::to_string(a.pos.size()));
  std::vector<std::pair<Value, Value>> entries;
  if (!a.pos.empty()) add_pairs(entries, a.pos[0]);
  for (const auto& [k, v] : a.kw) entries.emplace_back(Value::str(k), v);
  Namespace* ns = r.new_namespace();
  for (auto& [k, v] : entries) {
    if (!k.is_str()) raise("TypeError", "namespace attribute names must be strings");
    ns->set(k.as_str(), v);
  }
  return Value::ns(ns);
}

Value g_raise_exception(Renderer&, CallArgs& a) {
  auto args = a.bind("raise_exception", {"message"}, 1);
  raise("TemplateError", py_str(*args[0]));
}

Value g_strftime_now(Renderer&, CallArgs& a) {
  auto args = a.bind("strftime_now", {"format"}, 1);
  if (!args[0]->is_str()) raise("TypeError", "strftime() argument 1 must be str, not " + type_name(*args[0]));
  const std::string& fmt = args[0]->as_str();
  const std::time_t t = std::time(nullptr);
  std::tm tm{};
  localtime_r(&t, &tm);
  char buf[512];
  const size_t n = fmt.empty() ? 0 : std::strftime(buf, sizeof buf, fmt.c_str(), &tm);
  if (n == 0 && !fmt.empty()) raise("ValueError", "strftime format too long or invalid");
  return Value::str(std::string(buf, n));
}

struct Joiner final : CallableObj {
  explicit Joiner(std::string s) : sep(std::move(s)) {}
  Value call(Renderer&, CallArgs&) override {
    if (!used) {
      used = true;
      return Value::str("");
    }
    return Value::str(sep);
  }
  std::string repr() const override { return "<jinja2.utils.Joiner object>"; }
  std::string sep;
  bool used = false;
};

Value g_joiner(Renderer&, CallArgs& a) {
  auto args = a.bind("joiner", {"sep"});
  return Value::callable(std::make_shared<Joiner>(args[0] ? py_str(*args[0]) : ", "));
}

Value g_unsupported(Renderer&, CallArgs&) { raise("TypeError", "cycler() and lipsum() are not supported by gdnserve"); }

}  // namespace

std::optional<Value> builtin_global(const std::string& name) {
  static const std::pair<const char*, GlobalFn> table[] = {
      {"range", g_range},     {"dict", g_dict},       {"namespace", g_namespace},  {"raise_exception", g_raise_exception},
      {"strftime_now", g_strftime_now}, {"joiner", g_joiner}, {"cycler", g_unsupported}, {"lipsum", g_unsupported}};
  for (const auto& [n, fn] : table)
    if (name == n) return Value::callable(std::make_shared<BuiltinFn>(n, fn));
  return std::nullopt;
}

// ---- slicing ---------------------------------------------------------------------------------

Value py_slice(const Value& obj, const Value& start_v, const Value& stop_v, const Value& step_v) {
  auto idx = [](const Value& v, int64_t& out) {
    if (v.is_none()) return;
    if (v.kind() != Kind::Int && v.kind() != Kind::Bool)
      raise("TypeError", "slice indices must be integers or None or have an __index__ method");
    out = v.as_int();
  };
  int64_t step = 1;
  idx(step_v, step);
  if (step == 0) raise("ValueError", "slice step cannot be zero");
  std::vector<char32_t> cps;
  if (obj.is_str()) cps = uni::decode(obj.as_str());
  const int64_t n = obj.is_str() ? int64_t(cps.size()) : int64_t(obj.as_list().items.size());
  const int64_t lower = step > 0 ? 0 : -1, upper = step > 0 ? n : n - 1;
  auto resolve = [&](const Value& v, int64_t dflt) {
    int64_t i = dflt;
    idx(v, i);
    if (!v.is_none()) {
      if (i < 0) i += n;
      i = std::clamp(i, lower, upper);
    }
    return i;
  };
  const int64_t start = resolve(start_v, step > 0 ? lower : upper), stop = resolve(stop_v, step > 0 ? upper : lower);
  if (obj.is_str()) {
    std::string s;
    for (int64_t i = start; step > 0 ? i < stop : i > stop; i += step) uni::append(s, cps[size_t(i)]);
    return Value::str(std::move(s), obj.is_markup());
  }
  std::vector<Value> items;
  for (int64_t i = start; step > 0 ? i < stop : i > stop; i += step) items.push_back(obj.as_list().items[size_t(i)]);
  return Value::list(std::move(items), obj.is_tuple());
}

}  // namespace gdn::tpl
