// Jinja2's built-in filters over sequences and mappings. Those that return generators in
// Jinja2 (map, select, reject, selectattr, rejectattr, unique, items, batch, slice, reverse of
// a list) return one-shot iterators here too, so truthiness and |length behave the same.
#include <algorithm>
#include <unordered_set>

#include "template/builtins.h"
#include "template/format.h"
#include "template/interp.h"
#include "template/unicode.h"

namespace gdn::tpl {

Value get_attribute_path(Renderer& r, const Value& item, const Value& attribute, const std::optional<Value>& dflt) {
  std::vector<Value> parts;
  if (attribute.is_str()) {
    const std::string& a = attribute.as_str();
    size_t start = 0;
    while (true) {
      const size_t dot = a.find('.', start);
      std::string p = a.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
      const bool digits = !p.empty() && std::all_of(p.begin(), p.end(), [](char c) { return c >= '0' && c <= '9'; });
      parts.push_back(digits && p.size() < 18 ? Value::integer(std::stoll(p)) : Value::str(p));
      if (dot == std::string::npos) break;
      start = dot + 1;
    }
  } else {
    parts.push_back(attribute);
  }
  Value v = item;
  for (const Value& p : parts) {
    v = r.getitem(v, p);
    if (dflt && !dflt->is_none() && v.is_undefined()) v = *dflt;
  }
  return v;
}

namespace {

Value lower_if_str(const Value& v, bool case_sensitive) {
  return !case_sensitive && v.is_str() ? Value::str(uni::lower(v.as_str())) : v;
}

// Sort key of |sort, |unique, |min, |max: optional attribute path(s), lower-cased strings.
Value sort_key(Renderer& r, const Value& item, const std::optional<Value>& attribute, bool case_sensitive) {
  if (!attribute || attribute->is_none()) return lower_if_str(item, case_sensitive);
  if (attribute->is_str() && attribute->as_str().find(',') != std::string::npos) {  // "a,b": several keys
    std::vector<Value> keys;
    const std::string& a = attribute->as_str();
    size_t start = 0;
    while (true) {
      const size_t comma = a.find(',', start);
      const Value part = Value::str(a.substr(start, comma == std::string::npos ? std::string::npos : comma - start));
      keys.push_back(lower_if_str(get_attribute_path(r, item, part, std::nullopt), case_sensitive));
      if (comma == std::string::npos) break;
      start = comma + 1;
    }
    return Value::list(std::move(keys));
  }
  return lower_if_str(get_attribute_path(r, item, *attribute, std::nullopt), case_sensitive);
}

// select/reject/selectattr/rejectattr: `args` are (attr?, test name?, test args...).
Value select_filter(Renderer& r, const Value& in, CallArgs& args, bool select, bool by_attr) {
  size_t off = 0;
  Value attr;
  if (by_attr) {
    if (args.pos.empty()) raise("FilterArgumentError", "Missing parameter for attribute name");
    attr = args.pos[0];
    off = 1;
  }
  const bool has_test = args.pos.size() > off;
  const std::string test = has_test ? py_str(args.pos[off]) : "";
  if (has_test && !is_jinja_test(test)) raise("TemplateRuntimeError", "No test named '" + test + "'.");
  CallArgs test_args;
  if (has_test) test_args.pos.assign(args.pos.begin() + std::ptrdiff_t(off + 1), args.pos.end());
  test_args.kw = args.kw;
  std::vector<Value> out;
  for (const Value& item : py_iterate(in)) {
    r.charge(64 + walk_cost(item));
    const Value x = by_attr ? get_attribute_path(r, item, attr, std::nullopt) : item;
    CallArgs a = test_args;
    const bool ok = has_test ? call_test(r, test, x, a) : x.truthy();
    if (ok == select) out.push_back(item);
  }
  return Value::iter(std::move(out));
}

Value map_filter(Renderer& r, const Value& in, CallArgs& args) {
  std::vector<Value> out;
  const auto attr = std::find_if(args.kw.begin(), args.kw.end(), [](const auto& kv) { return kv.first == "attribute"; });
  if (args.pos.empty() && attr != args.kw.end()) {
    std::optional<Value> dflt;
    for (const auto& [k, v] : args.kw) {
      if (k == "default") {
        dflt = v;
      } else if (k != "attribute") {
        raise("FilterArgumentError", "Unexpected keyword argument '" + k + "'");
      }
    }
    for (const Value& item : py_iterate(in)) out.push_back(get_attribute_path(r, item, attr->second, dflt));
    return Value::iter(std::move(out));
  }
  if (args.pos.empty()) raise("FilterArgumentError", "map requires a filter argument");
  const std::string filter = py_str(args.pos[0]);
  if (!is_jinja_filter(filter)) raise("TemplateRuntimeError", "No filter named '" + filter + "'.");
  for (const Value& item : py_iterate(in)) {
    r.charge(64 + walk_cost(item));
    CallArgs a;
    a.pos.assign(args.pos.begin() + 1, args.pos.end());
    a.kw = args.kw;
    out.push_back(call_filter(r, filter, item, a));
  }
  return Value::iter(std::move(out));
}

Value sort_filter(Renderer& r, const Value& in, CallArgs& args) {
  auto a = args.bind("do_sort", {"reverse", "case_sensitive", "attribute"});
  const bool reverse = a[0] && a[0]->truthy(), cs = a[1] && a[1]->truthy();
  std::vector<std::pair<Value, Value>> keyed;
  for (const Value& item : py_iterate(in)) keyed.emplace_back(sort_key(r, item, a[2], cs), item);
  r.charge(keyed.size() * 64);
  std::stable_sort(keyed.begin(), keyed.end(), [&](const auto& x, const auto& y) {
    return reverse ? py_compare(y.first, x.first, "<") == -1 : py_compare(x.first, y.first, "<") == -1;
  });
  std::vector<Value> out;
  for (auto& [k, v] : keyed) out.push_back(std::move(v));
  return Value::list(std::move(out));
}

Value minmax_filter(Renderer& r, const Value& in, CallArgs& args, bool want_max) {
  auto a = args.bind(want_max ? "do_max" : "do_min", {"case_sensitive", "attribute"});
  const bool cs = a[0] && a[0]->truthy();
  std::optional<Value> best, best_key;
  for (const Value& item : py_iterate(in)) {
    Value k = sort_key(r, item, a[1], cs);
    if (!best || py_compare(k, *best_key, want_max ? ">" : "<") == (want_max ? 1 : -1)) {
      best = item;
      best_key = std::move(k);
    }
  }
  return best ? *best : Value::undefined("No aggregated item, sequence was empty.");
}

Value sum_filter(Renderer& r, const Value& in, CallArgs& args) {
  auto a = args.bind("do_sum", {"attribute", "start"});
  Value total = a[1] ? *a[1] : Value::integer(0);
  for (const Value& item : py_iterate(in)) {
    const Value x = a[0] && !a[0]->is_none() ? get_attribute_path(r, item, *a[0], std::nullopt) : item;
    if (!total.is_number() || !x.is_number())
      raise("TypeError", "unsupported operand type(s) for +: '" + type_name(total) + "' and '" + type_name(x) + "'");
    if (total.kind() == Kind::Float || x.kind() == Kind::Float) {
      total = Value::number(total.as_float() + x.as_float());
    } else {
      const __int128 s = __int128(total.as_int()) + x.as_int();
      if (s > INT64_MAX || s < INT64_MIN) raise("OverflowError", "integer result too large (gdnserve integers are 64-bit)");
      total = Value::integer(int64_t(s));
    }
  }
  return total;
}

Value dictsort_filter(const Value& in, CallArgs& args) {
  auto a = args.bind("do_dictsort", {"case_sensitive", "by", "reverse"});
  const bool cs = a[0] && a[0]->truthy(), reverse = a[2] && a[2]->truthy();
  const std::string by = a[1] ? py_str(*a[1]) : "key";
  if (by != "key" && by != "value") raise("FilterArgumentError", "You can only sort by either \"key\" or \"value\"");
  if (!in.is_dict()) raise("AttributeError", "'" + type_name(in) + "' object has no attribute 'items'");
  std::vector<Value> items;
  for (const auto& [k, v] : in.as_dict().entries) items.push_back(Value::list({k, v}, true));
  const size_t pos = by == "key" ? 0 : 1;
  std::stable_sort(items.begin(), items.end(), [&](const Value& x, const Value& y) {
    const Value kx = lower_if_str(x.as_list().items[pos], cs), ky = lower_if_str(y.as_list().items[pos], cs);
    return reverse ? py_compare(ky, kx, "<") == -1 : py_compare(kx, ky, "<") == -1;
  });
  return Value::list(std::move(items));
}

Value unique_filter(Renderer& r, const Value& in, CallArgs& args) {
  auto a = args.bind("do_unique", {"case_sensitive", "attribute"});
  const bool cs = a[0] && a[0]->truthy();
  std::unordered_set<std::string> seen;
  std::vector<Value> out;
  for (const Value& item : py_iterate(in)) {
    const Value k = sort_key(r, item, a[1], cs);
    if (!is_hashable(k)) raise("TypeError", "unhashable type: '" + type_name(k) + "'");
    r.charge(64 + walk_cost(k));
    if (seen.insert(hash_key(k)).second) out.push_back(item);
  }
  return Value::iter(std::move(out));
}

Value batch_filter(Renderer& r, const Value& in, CallArgs& args) {
  auto a = args.bind("do_batch", {"linecount", "fill_with"}, 1);
  const int64_t n = a[0]->as_int();
  std::vector<Value> out, tmp;
  for (const Value& item : py_iterate(in)) {
    if (int64_t(tmp.size()) == n) {
      out.push_back(Value::list(std::move(tmp)));
      tmp.clear();
      r.charge(1024);
    }
    tmp.push_back(item);
  }
  if (!tmp.empty()) {
    if (a[1] && !a[1]->is_none())
      while (int64_t(tmp.size()) < n) {
        tmp.push_back(*a[1]);
        r.charge(64);
      }
    out.push_back(Value::list(std::move(tmp)));
  }
  return Value::iter(std::move(out));
}

Value slice_filter(Renderer& r, const Value& in, CallArgs& args) {
  auto a = args.bind("do_slice", {"slices", "fill_with"}, 1);
  const std::vector<Value> seq = py_iterate(in);
  const int64_t slices = a[0]->as_int();
  if (slices <= 0) raise("ZeroDivisionError", "integer division or modulo by zero");
  const int64_t len = int64_t(seq.size()), per = len / slices, extra = len % slices;
  std::vector<Value> out;
  int64_t offset = 0;
  for (int64_t k = 0; k < slices; ++k) {
    r.charge(1024);  // a list per slice: cost it like the allocation it is
    const int64_t start = offset + k * per;
    if (k < extra) ++offset;
    const int64_t end = offset + (k + 1) * per;
    std::vector<Value> part(seq.begin() + start, seq.begin() + end);
    if (a[1] && !a[1]->is_none() && k >= extra) part.push_back(*a[1]);
    out.push_back(Value::list(std::move(part)));
  }
  return Value::iter(std::move(out));
}

Value join_filter(Renderer& r, const Value& in, CallArgs& args) {
  auto a = args.bind("do_join", {"d", "attribute"});
  const std::string sep = a[0] ? py_str(*a[0]) : "";
  std::string out;
  bool first = true;
  for (const Value& item : py_iterate(in)) {
    if (!first) out += sep;
    first = false;
    out += py_str(a[1] && !a[1]->is_none() ? get_attribute_path(r, item, *a[1], std::nullopt) : item);
    r.check_size(out.size());
  }
  return Value::str(std::move(out));
}

Value reverse_filter(const Value& in) {
  if (in.is_str()) {
    auto cps = uni::decode(in.as_str());
    std::reverse(cps.begin(), cps.end());
    return Value::str(uni::encode(cps, 0, cps.size()), in.is_markup());
  }
  if (in.kind() == Kind::Iter) {  // not reversible: jinja2 falls back to a reversed list
    std::vector<Value> items = py_iterate(in);
    std::reverse(items.begin(), items.end());
    return Value::list(std::move(items));
  }
  std::vector<Value> items = py_iterate(in);
  std::reverse(items.begin(), items.end());
  return Value::iter(std::move(items), in.is_dict() ? "dict_reversekeyiterator" : "list_reverseiterator");
}

}  // namespace

std::optional<Value> sequence_filter(Renderer& r, const std::string& name, const Value& in, CallArgs& args) {
  if (name == "length" || name == "count") {
    args.bind(name, {});
    return Value::integer(int64_t(py_len(in)));
  }
  if (name == "list") {
    args.bind(name, {});
    return Value::list(py_iterate(in));
  }
  if (name == "first") {
    args.bind(name, {});
    if (in.kind() == Kind::Iter) {
      IterObj& it = in.as_iter();
      if (it.pos < it.items.size()) return it.items[it.pos++];
    } else if (in.is_list()) {
      if (!in.as_list().items.empty()) return in.as_list().items.front();
    } else {
      const auto items = py_iterate(in);
      if (!items.empty()) return items.front();
    }
    return Value::undefined("No first item, sequence was empty.");
  }
  if (name == "last") {
    args.bind(name, {});
    if (in.kind() == Kind::Iter) raise("TypeError", "'generator' object is not reversible");
    const auto items = py_iterate(in);
    if (!items.empty()) return items.back();
    return Value::undefined("No last item, sequence was empty.");
  }
  if (name == "default" || name == "d") {
    auto a = args.bind(name, {"default_value", "boolean"});
    const bool boolean = a[1] && a[1]->truthy();
    if (in.is_undefined() || (boolean && !in.truthy())) return a[0] ? *a[0] : Value::str("");
    return in;
  }
  if (name == "items") {
    args.bind(name, {});
    if (in.is_undefined()) return Value::iter({});
    if (!in.is_dict()) raise("TypeError", "Can only get item pairs from a mapping.");
    std::vector<Value> out;
    for (const auto& [k, v] : in.as_dict().entries) out.push_back(Value::list({k, v}, true));
    return Value::iter(std::move(out));
  }
  if (name == "join") return join_filter(r, in, args);
  if (name == "map") return map_filter(r, in, args);
  if (name == "select" || name == "reject") return select_filter(r, in, args, name == "select", false);
  if (name == "selectattr" || name == "rejectattr") return select_filter(r, in, args, name == "selectattr", true);
  if (name == "sort") return sort_filter(r, in, args);
  if (name == "dictsort") return dictsort_filter(in, args);
  if (name == "unique") return unique_filter(r, in, args);
  if (name == "min" || name == "max") return minmax_filter(r, in, args, name == "max");
  if (name == "sum") return sum_filter(r, in, args);
  if (name == "batch") return batch_filter(r, in, args);
  if (name == "slice") return slice_filter(r, in, args);
  if (name == "reverse") {
    args.bind(name, {});
    return reverse_filter(in);
  }
  return std::nullopt;
}

}  // namespace gdn::tpl
