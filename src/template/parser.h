// Recursive-descent parser producing the AST, following jinja2's grammar and operator
// precedence (condexpr < or < and < not < comparisons < + - < ~ < * / // % < ** < unary;
// filters, tests and calls bind to the operand on their left; `**` is left-associative, as in
// Jinja2). Unknown filter/test names are compile-time errors except inside `if` statements and
// conditional expressions, where Jinja2 defers them to render time.
#pragma once

#include <vector>

#include "template/ast.h"
#include "template/lexer.h"

namespace gdn::tpl {

constexpr int kMaxNesting = 128;    // nested statements / parenthesised expressions
constexpr int kMaxExprDepth = 256;  // depth of any expression tree (long operator chains)

// Throws SyntaxError (lexer.h).
Body parse(const std::vector<Token>& tokens);

}  // namespace gdn::tpl
