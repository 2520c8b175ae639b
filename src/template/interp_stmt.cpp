// Statement execution: output, control flow, loops, assignments, macros and call blocks.
#include <algorithm>

#include "template/format.h"
#include "template/interp.h"

namespace gdn::tpl {

Value* Frame::find_local(std::string_view name) {
  for (auto& [k, v] : vars)
    if (k == name) return &v;
  return nullptr;
}

void Frame::set(const std::string& name, Value v) {
  if (Value* slot = find_local(name)) {
    *slot = std::move(v);
  } else {
    vars.emplace_back(name, std::move(v));
  }
}

std::string LoopObj::repr() const {
  return "<LoopContext " + std::to_string(index0 + 1) + "/" + std::to_string(items.size()) + ">";
}

namespace {

// A macro (or the body of a {% call %} block, exposed to the macro as `caller`).
struct MacroObj final : CallableObj, std::enable_shared_from_this<MacroObj> {
  MacroObj(std::shared_ptr<const MacroDef> d, Frame* s) : def(std::move(d)), scope(s) {}
  Value call(Renderer& r, CallArgs& args) override {
    return r.call_macro(*def, scope, Value::callable(shared_from_this()), args);
  }
  std::string repr() const override { return "<Macro '" + def->name + "'>"; }

  std::shared_ptr<const MacroDef> def;
  Frame* scope;  // where it was defined (pinned: outlives every value of the render)
};

}  // namespace

void Renderer::append(std::string& out, const std::string& s) {
  check_size(out.size() + s.size());
  out += s;
}

Renderer::Scope::~Scope() {
  if (!f_->pinned) return;
  try {
    r_.pinned_.push_back(std::move(f_));
  } catch (...) {
    f_.release();  // out of memory while unwinding: leak rather than leave a macro dangling
  }
}

void Renderer::render(const Body& body, Frame& root, std::string& out) {
  root.pinned = true;  // lives for the whole render anyway
  exec(body, root, out);
}

Renderer::Flow Renderer::exec(const Body& body, Frame& f, std::string& out) {
  for (const auto& s : body) {
    const Flow flow = exec_stmt(*s, f, out);
    if (flow != Flow::Normal) return flow;
  }
  return Flow::Normal;
}

std::string Renderer::capture(const Body& body, Frame& parent) {
  Scope child(*this, &parent);
  std::string s;
  exec(body, *child, s);
  return s;
}

Renderer::Flow Renderer::exec_stmt(const Stmt& s, Frame& f, std::string& out) {
  Guard guard(*this);
  line_ = s.line;
  switch (s.kind) {
    case SK::Text: append(out, s.text); break;
    case SK::Output: append(out, py_str(eval(*s.expr, f))); break;
    case SK::If:
      for (const auto& [test, body] : s.branches)
        if (eval(*test, f).truthy()) return exec(body, f, out);
      return exec(s.else_body, f, out);
    case SK::For: run_loop(s, f, eval(*s.expr, f), 0, out); break;
    case SK::Set: assign(s.target, eval(*s.expr, f), f); break;
    case SK::SetBlock: {
      Value v = Value::str(capture(s.body, f));
      if (s.filter) {
        // Evaluate the chain from the inside out, feeding the captured text to the first filter.
        std::vector<const Expr*> chain;
        for (const Expr* e = s.filter.get(); e; e = e->a.get()) chain.push_back(e);
        for (auto it = chain.rbegin(); it != chain.rend(); ++it) v = eval_filter(**it, v, f);
      }
      assign(s.target, v, f);
      break;
    }
    case SK::FilterBlock: {
      Value v = Value::str(capture(s.body, f));
      std::vector<const Expr*> chain;
      for (const Expr* e = s.filter.get(); e; e = e->a.get()) chain.push_back(e);
      for (auto it = chain.rbegin(); it != chain.rend(); ++it) v = eval_filter(**it, v, f);
      append(out, py_str(v));
      break;
    }
    case SK::Macro: f.set(s.macro->name, define_macro(s.macro, f)); break;
    case SK::CallBlock: {
      const Value caller = define_macro(s.macro, f);
      const Expr& call = *s.expr;
      const Value callee = eval(*call.a, f);
      CallArgs args;
      eval_args(call, f, args);
      args.kw.emplace_back("caller", caller);
      append(out, py_str(this->call(callee, args)));
      break;
    }
    case SK::With: {
      Scope child(*this, &f);
      std::vector<Value> values;
      for (const auto& [t, e] : s.assigns) values.push_back(eval(*e, f));
      for (size_t i = 0; i < values.size(); ++i) assign(s.assigns[i].first, values[i], *child);
      return exec(s.body, *child, out);
    }
    case SK::Scope: append(out, capture(s.body, f)); break;
    case SK::Break: return Flow::Break;
    case SK::Continue: return Flow::Continue;
    case SK::Unsupported:
      if (s.text == "autoescape") raise("TemplateRuntimeError", "{% autoescape %} blocks are not supported");
      raise("TypeError", "no loader for this environment specified");
  }
  return Flow::Normal;
}

void Renderer::run_loop(const Stmt& s, Frame& frame, const Value& iterable, int depth0, std::string& out) {
  std::vector<Value> items = py_iterate(iterable);
  charge(items.size() * sizeof(Value));
  if (s.filter) {  // `for x in xs if cond`: filtered before loop.index/length are counted
    std::vector<Value> kept;
    for (Value& item : items) {
      Scope probe(*this, &frame);
      assign(s.target, item, *probe);
      if (eval(*s.filter, *probe).truthy()) kept.push_back(std::move(item));
      if (++iterations_ > limits_.max_loop_iterations) limit("too many loop iterations (limit " + std::to_string(limits_.max_loop_iterations) + ")");
    }
    items = std::move(kept);
  }
  if (items.empty()) {
    Scope else_frame(*this, &frame);
    exec(s.else_body, *else_frame, out);
    return;
  }
  auto loop = std::make_shared<LoopObj>();
  loop->items = std::move(items);
  loop->depth0 = depth0;
  loop->stmt = &s;
  loop->frame = &frame;
  const Value loop_value = Value::object(Kind::Loop, loop);
  for (size_t i = 0; i < loop->items.size(); ++i) {
    if (++iterations_ > limits_.max_loop_iterations) limit("too many loop iterations (limit " + std::to_string(limits_.max_loop_iterations) + ")");
    loop->index0 = i;
    Scope iter(*this, &frame);
    iter->vars.emplace_back("loop", loop_value);
    assign(s.target, loop->items[i], *iter);
    if (exec(s.body, *iter, out) == Flow::Break) break;
  }
  loop->active = false;
}

void Renderer::assign(const Target& t, const Value& v, Frame& f) {
  switch (t.kind) {
    case Target::Name: f.set(t.name, v); return;
    case Target::Tuple: {
      const std::vector<Value> parts = py_iterate(v);
      if (parts.size() < t.items.size())
        raise("ValueError", "not enough values to unpack (expected " + std::to_string(t.items.size()) + ", got " + std::to_string(parts.size()) + ")");
      if (parts.size() > t.items.size())
        raise("ValueError", "too many values to unpack (expected " + std::to_string(t.items.size()) + ")");
      for (size_t i = 0; i < parts.size(); ++i) assign(t.items[i], parts[i], f);
      return;
    }
    case Target::NsAttr: {
      const Value ns = lookup(t.name, f);
      if (ns.kind() != Kind::Namespace) raise("TemplateRuntimeError", "cannot assign attribute on non-namespace object");
      ns.as_ns()->set(t.attr, v);
      return;
    }
  }
}

Value Renderer::define_macro(const std::shared_ptr<MacroDef>& def, Frame& f) {
  for (Frame* p = &f; p && !p->pinned; p = p->parent) p->pinned = true;
  return Value::callable(std::make_shared<MacroObj>(def, &f));
}

Value Renderer::call_macro(const MacroDef& def, Frame* scope, const Value& self, CallArgs& args) {
  if (++calls_ > limits_.max_call_depth) {
    --calls_;
    limit("macro calls nested too deeply (limit " + std::to_string(limits_.max_call_depth) + ")");
  }
  struct Depth {
    int& n;
    ~Depth() { --n; }
  } depth{calls_};
  Scope call_scope(*this, scope);
  Frame& mf = *call_scope;
  if (def.name != "caller") mf.vars.emplace_back(def.name, self);
  const size_t n = def.params.size();
  std::vector<bool> bound(n, false);
  std::vector<Value> extra;
  for (size_t i = 0; i < args.pos.size(); ++i) {
    if (i < n) {
      mf.set(def.params[i], args.pos[i]);
      bound[i] = true;
    } else if (def.uses_varargs) {
      extra.push_back(args.pos[i]);
    } else {
      raise("TypeError", "macro '" + def.name + "' takes not more than " + std::to_string(n) + " argument(s)");
    }
  }
  std::vector<std::pair<Value, Value>> extra_kw;
  bool have_caller = false;
  for (auto& [k, v] : args.kw) {
    auto it = std::find(def.params.begin(), def.params.end(), k);
    if (it != def.params.end()) {
      const size_t i = size_t(it - def.params.begin());
      if (bound[i]) raise("TypeError", "macro '" + def.name + "' got multiple values for argument '" + k + "'");
      mf.set(k, v);
      bound[i] = true;
    } else if (k == "caller" && def.uses_caller) {
      mf.set("caller", v);
      have_caller = true;
    } else if (def.uses_kwargs) {
      extra_kw.emplace_back(Value::str(k), v);
    } else {
      raise("TypeError", "macro '" + def.name + "' takes no keyword argument '" + k + "'");
    }
  }
  const size_t first_default = n - def.defaults.size();
  for (size_t i = 0; i < n; ++i) {
    if (bound[i]) continue;
    if (i >= first_default) {
      mf.set(def.params[i], eval(*def.defaults[i - first_default], mf));
    } else {
      mf.set(def.params[i], Value::undefined("parameter '" + def.params[i] + "' was not provided"));
    }
  }
  if (def.uses_varargs) mf.set("varargs", Value::list(std::move(extra), true));
  if (def.uses_kwargs) mf.set("kwargs", Value::dict(std::move(extra_kw)));
  if (def.uses_caller && !have_caller) mf.set("caller", Value::undefined("No caller defined"));
  std::string out;
  exec(def.body, mf, out);
  return Value::str(std::move(out));
}

}  // namespace gdn::tpl
