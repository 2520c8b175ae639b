// Statements: the template body, block tags, assignment targets. Expressions are in
// parser_expr.cpp.
#include "template/parser_impl.h"

namespace gdn::tpl {

namespace detail {

Body Parser::subparse(std::initializer_list<const char*> end_tags) {
  Body body;
  while (true) {
    const Token& t = cur();
    if (t.type == Tok::Eof) return body;
    if (t.type == Tok::Data) {
      auto s = stmt(SK::Text, t);
      s->text = t.text;
      body.push_back(std::move(s));
      advance();
    } else if (t.type == Tok::VarBegin) {
      advance();
      auto s = stmt(SK::Output, t);
      s->expr = parse_tuple(true);
      expect(Tok::VarEnd, "end of print statement");
      body.push_back(std::move(s));
    } else if (t.type == Tok::BlockBegin) {
      advance();
      for (const char* end : end_tags)
        if (is_name(end)) return body;
      if (StmtPtr s = parse_statement()) body.push_back(std::move(s));
      expect(Tok::BlockEnd, "end of statement block");
    } else {
      fail("unexpected " + describe(t));
    }
  }
}

Body Parser::statements(std::initializer_list<const char*> end_tags, const char* opener, bool drop_needle) {
  skip_op(":");
  expect(Tok::BlockEnd, "end of statement block");
  Body b = subparse(end_tags);
  if (cur().type == Tok::Eof) {
    std::string want;
    for (const char* e : end_tags) want += std::string(want.empty() ? "" : " or ") + "'" + e + "'";
    fail("Unexpected end of template. Jinja was looking for the following tags: " + want +
         ". The innermost block that needs to be closed is '" + opener + "'.");
  }
  if (drop_needle) advance();
  return b;
}

StmtPtr Parser::parse_statement() {
  Nest nest(*this);
  const Token& t = cur();
  if (t.type != Tok::Name) fail("tag name expected");
  const std::string tag = t.text;
  if (tag == "for") return parse_for();
  if (tag == "if") return parse_if();
  if (tag == "set") return parse_set();
  if (tag == "macro") return parse_macro();
  if (tag == "call") return parse_call_block();
  if (tag == "filter") return parse_filter_block();
  if (tag == "with") return parse_with();
  if (tag == "print") return parse_print();
  if (tag == "block" || tag == "generation") return parse_scope(tag);
  if (tag == "break" || tag == "continue") {
    if (loops_ == 0) fail("'" + tag + "' outside loop");
    advance();
    return stmt(tag == "break" ? SK::Break : SK::Continue, t);
  }
  if (tag == "include" || tag == "import" || tag == "from" || tag == "extends" || tag == "autoescape") {
    auto s = stmt(SK::Unsupported, t);
    s->text = tag;
    advance();
    while (cur().type != Tok::BlockEnd && cur().type != Tok::Eof) advance();
    if (tag == "autoescape")  // has a body
      s->body = with_context(false, loops_, [&] { return statements({"endautoescape"}, "autoescape", true); });
    return s;
  }
  fail("Encountered unknown tag '" + tag + "'.");
}

StmtPtr Parser::parse_for() {
  auto s = stmt(SK::For, advance());
  s->target = parse_assign_target(true, false, "in");
  if (!skip_name("in")) fail("expected 'in', got " + describe(cur()));
  s->expr = parse_tuple(false, {"recursive"});
  if (skip_name("if")) s->filter = parse_expression(true);
  s->recursive = skip_name("recursive");
  s->body = with_context(false, loops_ + 1, [&] { return statements({"endfor", "else"}, "for", false); });
  if (advance().text == "else") s->else_body = with_context(false, loops_, [&] { return statements({"endfor"}, "for", true); });
  return s;
}

StmtPtr Parser::parse_if() {
  auto s = stmt(SK::If, advance());
  with_context(true, loops_, [&] {
    while (true) {
      ExprPtr test = parse_tuple(false);
      Body body = statements({"elif", "else", "endif"}, "if", false);
      s->branches.emplace_back(std::move(test), std::move(body));
      const std::string tag = advance().text;
      if (tag == "elif") continue;
      if (tag == "else") s->else_body = statements({"endif"}, "if", true);
      break;
    }
    return 0;
  });
  return s;
}

StmtPtr Parser::parse_set() {
  const Token& at = advance();
  Target target = parse_assign_target(true, true, nullptr);
  if (skip_op("=")) {
    auto s = stmt(SK::Set, at);
    s->target = std::move(target);
    s->expr = parse_tuple(true);
    return s;
  }
  auto s = stmt(SK::SetBlock, at);
  s->target = std::move(target);
  if (is_op("|")) s->filter = parse_filter(nullptr, false);
  s->body = with_context(false, 0, [&] { return statements({"endset"}, "set", true); });  // no break/continue inside
  return s;
}

void Parser::parse_signature(MacroDef& m) {
  expect_op("(");
  while (!is_op(")")) {
    if (!m.params.empty()) expect_op(",");
    m.params.push_back(expect_name());
    if (skip_op("=")) {
      m.defaults.push_back(parse_expression(true));
    } else if (!m.defaults.empty()) {
      fail("non-default argument follows default argument");
    }
  }
  expect_op(")");
}

StmtPtr Parser::parse_macro() {
  auto s = stmt(SK::Macro, advance());
  s->macro = std::make_shared<MacroDef>();
  s->macro->name = expect_name();
  parse_signature(*s->macro);
  s->macro->body = with_context(false, 0, [&] { return statements({"endmacro"}, "macro", true); });
  finish_macro(*s->macro);
  return s;
}

StmtPtr Parser::parse_call_block() {
  auto s = stmt(SK::CallBlock, advance());
  s->macro = std::make_shared<MacroDef>();
  s->macro->name = "caller";
  if (is_op("(")) parse_signature(*s->macro);
  s->expr = parse_expression(true);
  if (s->expr->kind != EK::Call) fail_at("expected call", toks_[pos_ - 1]);
  s->macro->body = with_context(false, 0, [&] { return statements({"endcall"}, "call", true); });
  finish_macro(*s->macro);
  return s;
}

StmtPtr Parser::parse_filter_block() {
  auto s = stmt(SK::FilterBlock, advance());
  s->filter = parse_filter(nullptr, true);
  s->body = with_context(false, 0, [&] { return statements({"endfilter"}, "filter", true); });  // no break/continue inside
  return s;
}

StmtPtr Parser::parse_with() {
  auto s = stmt(SK::With, advance());
  while (cur().type != Tok::BlockEnd) {
    if (!s->assigns.empty()) expect_op(",");
    Target t = parse_assign_target(true, false, nullptr);
    expect_op("=");
    s->assigns.emplace_back(std::move(t), parse_expression(true));
  }
  s->body = with_context(false, loops_, [&] { return statements({"endwith"}, "with", true); });
  return s;
}

StmtPtr Parser::parse_print() {
  auto s = stmt(SK::Output, advance());
  s->expr = parse_tuple(true);
  return s;
}

StmtPtr Parser::parse_scope(const std::string& tag) {
  auto s = stmt(SK::Scope, advance());
  if (tag == "block") {
    expect_name();
    skip_name("scoped");
    skip_name("required");
  }
  const std::string end = "end" + tag;
  s->body = with_context(false, 0, [&] { return statements({end.c_str()}, tag.c_str(), true); });
  if (tag == "block" && cur().type == Tok::Name) advance();  // {% endblock name %}
  return s;
}

void Parser::finish_macro(MacroDef& m) {
  std::set<std::string> names;
  for (const auto& d : m.defaults) collect(*d, names);
  for (const auto& st : m.body) collect(*st, names);
  m.uses_caller = names.count("caller") > 0;
  m.uses_varargs = names.count("varargs") > 0;
  m.uses_kwargs = names.count("kwargs") > 0;
}

void Parser::collect(const Expr& e, std::set<std::string>& names) {
  if (e.kind == EK::Name) names.insert(e.name);
  for (const ExprPtr* c : {&e.a, &e.b, &e.c})
    if (*c) collect(**c, names);
  for (const auto& x : e.items)
    if (x) collect(*x, names);
  for (const auto& k : e.kwargs) collect(*k.value, names);
}

void Parser::collect(const Stmt& s, std::set<std::string>& names) {
  for (const ExprPtr* e : {&s.expr, &s.filter})
    if (*e) collect(**e, names);
  for (const auto& [test, body] : s.branches) {
    collect(*test, names);
    for (const auto& st : body) collect(*st, names);
  }
  for (const Body* b : {&s.body, &s.else_body})
    for (const auto& st : *b) collect(*st, names);
  for (const auto& [t, e] : s.assigns) collect(*e, names);
  if (s.target.kind == Target::NsAttr) names.insert(s.target.name);
  if (s.macro) {
    for (const auto& d : s.macro->defaults) collect(*d, names);
    for (const auto& st : s.macro->body) collect(*st, names);
  }
}

Target Parser::parse_assign_target(bool with_tuple, bool with_namespace, const char* extra_end) {
  const Token& at = cur();
  if (with_namespace && cur().type == Tok::Name && look().type == Tok::Operator && look().text == ".") {
    Target t;
    t.kind = Target::NsAttr;
    t.name = advance().text;
    advance();
    t.attr = expect_name();
    t.line = at.line, t.col = at.col;
    return t;
  }
  std::vector<Target> items;
  bool is_tuple = false;
  while (true) {
    if (!items.empty()) expect_op(",");
    if (cur().type == Tok::BlockEnd || is_op(")") || (extra_end && is_name(extra_end))) break;
    items.push_back(parse_target_primary());
    if (with_tuple && is_op(",")) {
      is_tuple = true;
    } else {
      break;
    }
  }
  if (items.empty()) fail("expected an assignment target, got " + describe(cur()));
  if (!is_tuple) return std::move(items[0]);
  Target t;
  t.kind = Target::Tuple;
  t.items = std::move(items);
  t.line = at.line, t.col = at.col;
  return t;
}

Target Parser::parse_target_primary() {
  const Token& at = cur();
  if (skip_op("(")) {
    Target t = parse_assign_target(true, false, nullptr);
    expect_op(")");
    return t;
  }
  if (at.type != Tok::Name || at.text == "true" || at.text == "false" || at.text == "none" || at.text == "True" ||
      at.text == "False" || at.text == "None")
    fail("can't assign to " + describe(at));
  Target t;
  t.name = advance().text;
  t.line = at.line, t.col = at.col;
  return t;
}

}  // namespace detail

Body parse(const std::vector<Token>& tokens) { return detail::Parser(tokens).run(); }

}  // namespace gdn::tpl
