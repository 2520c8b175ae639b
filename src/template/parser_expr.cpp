// Expressions, following jinja2's precedence climbing: parse_tuple → condexpr → or → and →
// not → compare → + - → ~ → * / // % → ** → unary, then postfix (attribute, subscript, call)
// and the filter/test chain.
#include "template/parser_impl.h"

namespace gdn::tpl::detail {

bool Parser::tuple_end(std::initializer_list<const char*> extra) const {
  if (cur().type == Tok::VarEnd || cur().type == Tok::BlockEnd || is_op(")")) return true;
  for (const char* e : extra)
    if (is_name(e)) return true;
  return false;
}

ExprPtr Parser::parse_tuple(bool with_condexpr, std::initializer_list<const char*> extra_end, bool explicit_parens) {
  const Token& at = cur();
  std::vector<ExprPtr> items;
  bool is_tuple = false;
  while (true) {
    if (!items.empty()) expect_op(",");
    if (tuple_end(extra_end)) break;
    items.push_back(parse_expression(with_condexpr));
    if (is_op(",")) {
      is_tuple = true;
    } else {
      break;
    }
  }
  if (!is_tuple) {
    if (!items.empty()) return std::move(items[0]);
    if (!explicit_parens) fail("Expected an expression, got " + describe(cur()));
  }
  auto e = node(EK::Tuple, at);
  e->items = std::move(items);
  return done(std::move(e));
}

ExprPtr Parser::parse_condexpr() {
  ExprPtr e = parse_or();
  while (is_name("if")) {
    const Token& at = advance();
    const bool saved = soft_;
    soft_ = true;  // Jinja2 visits conditional expressions in a soft frame
    auto c = node(EK::CondExpr, at);
    c->a = std::move(e);
    c->b = parse_or();
    if (skip_name("else")) {
      Nest nest(*this);
      c->c = parse_condexpr();
    }
    soft_ = saved;
    e = done(std::move(c));
  }
  return e;
}

ExprPtr Parser::parse_or() {
  ExprPtr e = parse_and();
  while (is_name("or")) {
    const Token& at = advance();
    e = binary(EK::Or, at, std::move(e), parse_and());
  }
  return e;
}

ExprPtr Parser::parse_and() {
  ExprPtr e = parse_not();
  while (is_name("and")) {
    const Token& at = advance();
    e = binary(EK::And, at, std::move(e), parse_not());
  }
  return e;
}

ExprPtr Parser::parse_not() {
  if (is_name("not")) {
    Nest nest(*this);
    const Token& at = advance();
    auto e = node(EK::Not, at);
    e->a = parse_not();
    return done(std::move(e));
  }
  return parse_compare();
}

ExprPtr Parser::parse_compare() {
  const Token& at = cur();
  ExprPtr first = parse_math1();
  std::vector<std::string> ops;
  std::vector<ExprPtr> operands;
  while (true) {
    if (cur().type == Tok::Operator &&
        (is_op("==") || is_op("!=") || is_op("<") || is_op("<=") || is_op(">") || is_op(">="))) {
      ops.push_back(advance().text);
    } else if (is_name("in")) {
      advance();
      ops.push_back("in");
    } else if (is_name("not") && look().type == Tok::Name && look().text == "in") {
      advance();
      advance();
      ops.push_back("notin");
    } else {
      break;
    }
    operands.push_back(parse_math1());
  }
  if (ops.empty()) return first;
  auto e = node(EK::Compare, at);
  e->a = std::move(first);
  e->ops = std::move(ops);
  e->items = std::move(operands);
  return done(std::move(e));
}

ExprPtr Parser::parse_math1() {
  ExprPtr e = parse_concat();
  while (is_op("+") || is_op("-")) {
    const Token& at = advance();
    e = binary(EK::Binary, at, std::move(e), parse_concat(), at.text);
  }
  return e;
}

ExprPtr Parser::parse_concat() {
  ExprPtr e = parse_math2();
  while (is_op("~")) {
    const Token& at = advance();
    e = binary(EK::Binary, at, std::move(e), parse_math2(), "~");
  }
  return e;
}

ExprPtr Parser::parse_math2() {
  ExprPtr e = parse_pow();
  while (is_op("*") || is_op("/") || is_op("//") || is_op("%")) {
    const Token& at = advance();
    e = binary(EK::Binary, at, std::move(e), parse_pow(), at.text);
  }
  return e;
}

ExprPtr Parser::parse_pow() {
  ExprPtr e = parse_unary(true);
  while (is_op("**")) {
    const Token& at = advance();
    e = binary(EK::Binary, at, std::move(e), parse_unary(true), "**");
  }
  return e;
}

ExprPtr Parser::parse_unary(bool with_filter) {
  Nest nest(*this);
  const Token& at = cur();
  ExprPtr e;
  if (is_op("-") || is_op("+")) {
    advance();
    e = node(at.text == "-" ? EK::Neg : EK::Pos, at);
    e->a = parse_unary(false);
    e = done(std::move(e));
  } else {
    e = parse_primary();
  }
  e = parse_postfix(std::move(e));
  if (with_filter) e = parse_filter_expr(std::move(e));
  return e;
}

ExprPtr Parser::constant(const Token& at, Value v) {
  auto e = node(EK::Const, at);
  e->value = std::move(v);
  return e;
}

ExprPtr Parser::parse_primary() {
  const Token& t = cur();
  switch (t.type) {
    case Tok::Name: {
      advance();
      if (t.text == "true" || t.text == "True") return constant(t, Value::boolean(true));
      if (t.text == "false" || t.text == "False") return constant(t, Value::boolean(false));
      if (t.text == "none" || t.text == "None") return constant(t, Value::none());
      auto e = node(EK::Name, t);
      e->name = t.text;
      return e;
    }
    case Tok::String: {
      std::string s;
      while (cur().type == Tok::String) s += advance().text;  // adjacent literals concatenate
      return constant(t, Value::str(std::move(s)));
    }
    case Tok::Integer: advance(); return constant(t, Value::integer(t.ival));
    case Tok::Float: advance(); return constant(t, Value::number(t.fval));
    case Tok::Operator:
      if (t.text == "(") {
        advance();
        ExprPtr e = parse_tuple(true, {}, true);
        expect_op(")");
        return e;
      }
      if (t.text == "[" || t.text == "{") return parse_collection(t.text == "{");
      break;
    default: break;
  }
  fail("unexpected " + describe(t));
}

ExprPtr Parser::parse_collection(bool dict) {
  const Token& at = advance();
  auto e = node(dict ? EK::Dict : EK::List, at);
  const char* close = dict ? "}" : "]";
  while (!is_op(close)) {
    if (!e->items.empty()) expect_op(",");
    if (is_op(close)) break;
    e->items.push_back(parse_expression(true));
    if (dict) {
      expect_op(":");
      e->items.push_back(parse_expression(true));
    }
  }
  expect_op(close);
  return done(std::move(e));
}

ExprPtr Parser::parse_postfix(ExprPtr e) {
  while (true) {
    if (is_op(".") || is_op("[")) {
      e = parse_subscript(std::move(e));
    } else if (is_op("(")) {
      e = parse_call(std::move(e));
    } else {
      return e;
    }
  }
}

ExprPtr Parser::parse_subscript(ExprPtr obj) {
  const Token& at = advance();
  if (at.text == ".") {
    const Token& attr = advance();
    if (attr.type == Tok::Name) {
      auto e = node(EK::Attr, at);
      e->a = std::move(obj);
      e->name = attr.text;
      return done(std::move(e));
    }
    if (attr.type != Tok::Integer) fail_at("expected name or number", attr);
    auto e = node(EK::Item, at);
    e->a = std::move(obj);
    e->b = constant(attr, Value::integer(attr.ival));
    return done(std::move(e));
  }
  std::vector<ExprPtr> args;
  ExprPtr slice;
  while (!is_op("]")) {
    if (!args.empty() || slice) expect_op(",");
    ExprPtr a = parse_subscribed(slice);
    if (a) args.push_back(std::move(a));
  }
  expect_op("]");
  if (slice) {
    if (!args.empty()) fail_at("slices inside tuple subscripts are not supported", at);
    slice->a = std::move(obj);
    return done(std::move(slice));
  }
  auto e = node(EK::Item, at);
  e->a = std::move(obj);
  if (args.size() == 1) {
    e->b = std::move(args[0]);
  } else {
    auto t = node(EK::Tuple, at);
    t->items = std::move(args);
    e->b = done(std::move(t));
  }
  return done(std::move(e));
}

ExprPtr Parser::parse_subscribed(ExprPtr& slice) {
  const Token& at = cur();
  ExprPtr start;
  if (!is_op(":")) {
    start = parse_expression(true);
    if (!is_op(":")) return start;
  }
  if (slice) fail("slices inside tuple subscripts are not supported");
  advance();  // ':'
  auto s = node(EK::Slice, at);
  s->items.resize(3);
  s->items[0] = std::move(start);
  if (!is_op(":") && !is_op("]") && !is_op(",")) s->items[1] = parse_expression(true);
  if (skip_op(":") && !is_op("]") && !is_op(",")) s->items[2] = parse_expression(true);
  slice = std::move(s);
  return nullptr;
}

void Parser::parse_call_args(Expr& e) {
  expect_op("(");
  bool need_comma = false;
  while (!is_op(")")) {
    if (need_comma) {
      expect_op(",");
      if (is_op(")")) break;
    }
    if (is_op("*") || is_op("**")) fail("*args and **kwargs in calls are not supported");
    if (cur().type == Tok::Name && look().type == Tok::Operator && look().text == "=") {
      std::string key = advance().text;
      advance();
      e.kwargs.push_back(Kwarg{std::move(key), parse_expression(true)});
    } else {
      if (!e.kwargs.empty()) fail("invalid syntax for function call expression");
      e.items.push_back(parse_expression(true));
    }
    need_comma = true;
  }
  expect_op(")");
}

ExprPtr Parser::parse_call(ExprPtr callee) {
  auto e = node(EK::Call, cur());
  e->a = std::move(callee);
  parse_call_args(*e);
  return done(std::move(e));
}

std::string Parser::dotted_name() {
  std::string name = expect_name();
  while (is_op(".")) {
    advance();
    name += '.';
    name += expect_name();
  }
  return name;
}

ExprPtr Parser::parse_filter(ExprPtr input, bool start_inline) {
  while (is_op("|") || start_inline) {
    if (!start_inline) advance();
    start_inline = false;
    const Token& at = cur();
    auto e = node(EK::Filter, at);
    e->name = dotted_name();
    e->a = std::move(input);
    e->soft = soft_;
    if (!soft_ && !is_jinja_filter(e->name)) fail_at("No filter named '" + e->name + "'.", at);
    if (is_op("(")) parse_call_args(*e);
    input = done(std::move(e));
  }
  return input;
}

ExprPtr Parser::parse_test(ExprPtr input) {
  const Token& is_tok = advance();
  const bool negated = skip_name("not");
  const Token& at = cur();
  auto e = node(EK::Test, is_tok);
  e->name = dotted_name();
  e->negated = negated;
  e->soft = soft_;
  e->a = std::move(input);
  if (!soft_ && !is_jinja_test(e->name)) fail_at("No test named '" + e->name + "'.", at);
  const Token& c = cur();
  if (is_op("(")) {
    parse_call_args(*e);
  } else if ((c.type == Tok::Name || c.type == Tok::String || c.type == Tok::Integer || c.type == Tok::Float ||
              is_op("(") || is_op("[") || is_op("{")) &&
             !(c.type == Tok::Name && (c.text == "else" || c.text == "or" || c.text == "and"))) {
    if (c.type == Tok::Name && c.text == "is") fail("You cannot chain multiple tests with is");
    Nest nest(*this);
    e->items.push_back(parse_postfix(parse_primary()));  // `x is divisibleby 3`
  }
  return done(std::move(e));
}

ExprPtr Parser::parse_filter_expr(ExprPtr e) {
  while (true) {
    if (is_op("|")) {
      e = parse_filter(std::move(e), false);
    } else if (is_name("is")) {
      e = parse_test(std::move(e));
    } else if (is_op("(")) {
      e = parse_call(std::move(e));
    } else {
      return e;
    }
  }
}

}  // namespace gdn::tpl::detail
