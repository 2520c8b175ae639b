// The tree-walking interpreter. One Renderer per render() call: it owns the namespace arena,
// the work counters that enforce TemplateLimits, and the root scope.
//
// Scoping follows what Jinja2's compiler produces (Python closures, so lexical and late-bound):
//  * the root scope holds the render variables and top-level `set`s (`if` blocks add no scope);
//  * every loop iteration, `with` block and `{% set %}...{% endset %}` body gets a child scope,
//    so assignments inside never leak out (hence `namespace()`);
//  * a macro call gets a scope whose parent is the scope the macro was defined in: it sees its
//    parameters and locals, then the variables of its definition site as they are at call time,
//    then the globals. A scope a macro was defined in is therefore "pinned": kept alive until
//    the end of the render instead of being freed when its block ends.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "template/ast.h"
#include "template/builtins.h"
#include "template/chat_template.h"
#include "template/value.h"

namespace gdn::tpl {

using Vars = std::vector<std::pair<std::string, Value>>;

struct Frame {
  Frame* parent = nullptr;  // lexically enclosing scope
  bool pinned = false;      // captured by a macro: lives until the end of the render
  Vars vars;

  Value* find_local(std::string_view name);
  void set(const std::string& name, Value v);
};

struct LoopObj final : Obj {
  std::vector<Value> items;
  size_t index0 = 0;
  int depth0 = 0;
  bool active = true;
  std::shared_ptr<Value> last_changed;  // loop.changed() state
  const Stmt* stmt = nullptr;           // for `loop(...)` in recursive loops
  Frame* frame = nullptr;               // scope the loop runs in (valid while active)
  std::string repr() const override;
};

struct MacroDef;

class Renderer {
 public:
  Renderer(const TemplateLimits& limits, std::vector<std::unique_ptr<Namespace>>& arena) : limits_(limits), arena_(arena) {}

  void render(const Body& body, Frame& root, std::string& out);
  int line() const { return line_; }

  // Services for the built-ins.
  Value call(const Value& callee, CallArgs& args);
  Value getattr(const Value& obj, const std::string& name);
  Value getitem(const Value& obj, const Value& key);
  Namespace* new_namespace();
  void charge(size_t bytes);             // work accounting for data built
  void check_size(size_t bytes) const;   // cap on any string built
  [[noreturn]] void limit(const std::string& what) const;

  // Used by callables defined in the interpreter.
  Value call_macro(const MacroDef& def, Frame* scope, const Value& self, CallArgs& args);
  void run_loop(const Stmt& s, Frame& frame, const Value& iterable, int depth0, std::string& out);

 private:
  enum class Flow { Normal, Break, Continue };

  class Scope {  // a child frame, handed to the renderer at the end if a macro captured it
   public:
    Scope(Renderer& r, Frame* parent) : r_(r), f_(std::make_unique<Frame>()) { f_->parent = parent; }
    ~Scope();
    Frame& operator*() { return *f_; }
    Frame* operator->() { return f_.get(); }
   private:
    Renderer& r_;
    std::unique_ptr<Frame> f_;
  };

  struct Guard {  // nested-evaluation depth and step counting
    explicit Guard(Renderer& r);
    ~Guard() { --r.depth_; }
    Renderer& r;
  };

  Value eval(const Expr& e, Frame& f);
  Value eval_binary(const Expr& e, Frame& f);
  Value eval_compare(const Expr& e, Frame& f);
  Value eval_call(const Expr& e, Frame& f);
  Value eval_filter(const Expr& e, const Value& input, Frame& f);
  void eval_args(const Expr& e, Frame& f, CallArgs& args);
  Value lookup(const std::string& name, Frame& f);

  Flow exec(const Body& body, Frame& f, std::string& out);
  Flow exec_stmt(const Stmt& s, Frame& f, std::string& out);
  void assign(const Target& t, const Value& v, Frame& f);
  Value define_macro(const std::shared_ptr<MacroDef>& def, Frame& f);
  std::string capture(const Body& body, Frame& parent);
  void append(std::string& out, const std::string& s);

  const TemplateLimits& limits_;
  std::vector<std::unique_ptr<Namespace>>& arena_;
  std::vector<std::unique_ptr<Frame>> pinned_;
  size_t steps_ = 0, iterations_ = 0;
  int depth_ = 0, calls_ = 0;
  int line_ = 0;
};

}  // namespace gdn::tpl
