// The parser's class, shared by parser.cpp (statements) and parser_expr.cpp (expressions).
// Internal to the template engine: use parse() from parser.h.
#pragma once

#include <algorithm>
#include <initializer_list>
#include <set>
#include <string>
#include <vector>

#include "template/builtins.h"
#include "template/parser.h"

namespace gdn::tpl::detail {

class Parser {
 public:
  explicit Parser(const std::vector<Token>& t) : toks_(t) {}

  Body run() {
    Body body = subparse({});
    if (cur().type != Tok::Eof) fail("unexpected " + describe(cur()));
    return body;
  }

 private:
  // ---- token stream ----
  const Token& cur() const { return toks_[pos_]; }
  const Token& look() const { return toks_[std::min(pos_ + 1, toks_.size() - 1)]; }
  const Token& advance() {
    const Token& t = toks_[pos_];
    if (pos_ + 1 < toks_.size()) ++pos_;
    return t;
  }
  bool is_op(const char* op) const { return cur().type == Tok::Operator && cur().text == op; }
  bool is_name(const char* n) const { return cur().type == Tok::Name && cur().text == n; }
  bool skip_op(const char* op) {
    if (!is_op(op)) return false;
    advance();
    return true;
  }
  bool skip_name(const char* n) {
    if (!is_name(n)) return false;
    advance();
    return true;
  }
  [[noreturn]] void fail(const std::string& msg) const { fail_at(msg, cur()); }
  [[noreturn]] void fail_at(const std::string& msg, const Token& t) const { throw SyntaxError{msg, t.line, t.col}; }
  void expect_op(const char* op) {
    if (!skip_op(op)) fail(std::string("expected token '") + op + "', got " + describe(cur()));
  }
  const Token& expect(Tok type, const char* what) {
    if (cur().type != type) fail(std::string("expected ") + what + ", got " + describe(cur()));
    return advance();
  }
  std::string expect_name() { return expect(Tok::Name, "name").text; }

  struct Nest {  // bounds parser recursion (and with it the depth of statement bodies)
    explicit Nest(Parser& p) : p(p) {
      if (++p.nesting_ > kMaxNesting) p.fail("template nesting too deep (more than " + std::to_string(kMaxNesting) + " levels)");
    }
    ~Nest() { --p.nesting_; }
    Parser& p;
  };

  // ---- nodes ----
  ExprPtr node(EK k, const Token& at) {
    auto e = std::make_unique<Expr>();
    e->kind = k;
    e->line = at.line;
    e->col = at.col;
    return e;
  }
  // Computes the subtree height; long operator chains are built by loops, not recursion, so
  // this is what keeps evaluation and destruction of the tree shallow.
  ExprPtr done(ExprPtr e) {
    int d = 0;
    for (const ExprPtr* c : {&e->a, &e->b, &e->c})
      if (*c) d = std::max(d, (*c)->depth);
    for (const auto& x : e->items)
      if (x) d = std::max(d, x->depth);
    for (const auto& k : e->kwargs) d = std::max(d, k.value->depth);
    e->depth = d + 1;
    if (e->depth > kMaxExprDepth) fail_at("expression too deeply nested (more than " + std::to_string(kMaxExprDepth) + " levels)", Token{Tok::Eof, "", 0, 0, e->line, e->col});
    return e;
  }
  ExprPtr binary(EK k, const Token& at, ExprPtr a, ExprPtr b, std::string op = {}) {
    auto e = node(k, at);
    e->a = std::move(a);
    e->b = std::move(b);
    e->name = std::move(op);
    return done(std::move(e));
  }

  // ---- statements ----
  Body subparse(std::initializer_list<const char*> end_tags);

  StmtPtr stmt(SK k, const Token& at) {
    auto s = std::make_unique<Stmt>();
    s->kind = k;
    s->line = at.line;
    s->col = at.col;
    return s;
  }

  // Body up to one of `end_tags`; leaves the stream on the end tag's name.
  Body statements(std::initializer_list<const char*> end_tags, const char* opener, bool drop_needle);

  StmtPtr parse_statement();

  template <typename F>
  auto with_context(bool soft, int loops, F&& f) -> decltype(f()) {  // body parsed in a fresh (or soft) frame
    const bool saved_soft = soft_;
    const int saved_loops = loops_;
    soft_ = soft;
    loops_ = loops;
    auto r = f();
    soft_ = saved_soft;
    loops_ = saved_loops;
    return r;
  }

  StmtPtr parse_for();

  StmtPtr parse_if();

  StmtPtr parse_set();

  void parse_signature(MacroDef& m);

  StmtPtr parse_macro();

  StmtPtr parse_call_block();

  StmtPtr parse_filter_block();

  StmtPtr parse_with();

  StmtPtr parse_print();

  StmtPtr parse_scope(const std::string& tag);

  // Records which of the special names caller/varargs/kwargs the macro body reads.
  void finish_macro(MacroDef& m);
  static void collect(const Expr& e, std::set<std::string>& names);
  static void collect(const Stmt& s, std::set<std::string>& names);

  Target parse_assign_target(bool with_tuple, bool with_namespace, const char* extra_end);
  Target parse_target_primary();

  // ---- expressions ----
  bool tuple_end(std::initializer_list<const char*> extra) const;

  ExprPtr parse_tuple(bool with_condexpr, std::initializer_list<const char*> extra_end = {}, bool explicit_parens = false);

  ExprPtr parse_expression(bool with_condexpr) { return with_condexpr ? parse_condexpr() : parse_or(); }

  ExprPtr parse_condexpr();

  ExprPtr parse_or();

  ExprPtr parse_and();

  ExprPtr parse_not();

  ExprPtr parse_compare();

  ExprPtr parse_math1();

  ExprPtr parse_concat();

  ExprPtr parse_math2();

  ExprPtr parse_pow();

  ExprPtr parse_unary(bool with_filter);

  ExprPtr constant(const Token& at, Value v);

  ExprPtr parse_primary();

  ExprPtr parse_collection(bool dict);

  ExprPtr parse_postfix(ExprPtr e);

  ExprPtr parse_subscript(ExprPtr obj);

  // One subscript element: an expression (returned) or a slice (stored in `slice`).
  ExprPtr parse_subscribed(ExprPtr& slice);

  void parse_call_args(Expr& e);

  ExprPtr parse_call(ExprPtr callee);

  std::string dotted_name();

  ExprPtr parse_filter(ExprPtr input, bool start_inline);

  ExprPtr parse_test(ExprPtr input);

  ExprPtr parse_filter_expr(ExprPtr e);

  const std::vector<Token>& toks_;
  size_t pos_ = 0;
  int nesting_ = 0;
  int loops_ = 0;
  bool soft_ = false;
};

}  // namespace gdn::tpl::detail
