// Syntax tree of a parsed template. One node type per layer (expression, statement) with a
// kind tag and a few generic slots keeps the tree small and the interpreter a plain switch.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "template/value.h"

namespace gdn::tpl {

struct Expr;
struct Stmt;
using ExprPtr = std::unique_ptr<Expr>;
using StmtPtr = std::unique_ptr<Stmt>;
using Body = std::vector<StmtPtr>;

enum class EK : uint8_t {
  Const,     // value
  Name,      // name
  List,      // items
  Tuple,     // items
  Dict,      // items: key, value, key, value, ...
  Attr,      // a.name
  Item,      // a[b]
  Slice,     // a[items[0]:items[1]:items[2]] (null slots allowed)
  Call,      // a(items, kwargs)
  Filter,    // a|name(items, kwargs); a is null inside {% filter %} and {% set x | f %}
  Test,      // a is [not] name(items, kwargs)
  Neg,       // -a
  Pos,       // +a
  Not,       // not a
  Binary,    // a op b: + - * / // % ** ~
  And,       // a and b
  Or,        // a or b
  Compare,   // a ops[i] items[i] ...
  CondExpr,  // a if b else c (c may be null)
};

struct Kwarg;

struct Expr {
  EK kind;
  int line = 0, col = 0;
  int depth = 1;               // height of this subtree (capped by the parser)
  Value value;                 // Const
  std::string name;            // Name, Attr, Filter, Test; Binary operator
  ExprPtr a, b, c;
  std::vector<ExprPtr> items;  // List/Tuple/Dict elements, call arguments, Compare operands
  std::vector<Kwarg> kwargs;
  std::vector<std::string> ops;  // Compare: "==", "!=", "<", "<=", ">", ">=", "in", "notin"
  bool negated = false;          // Test
  bool soft = false;             // Filter/Test: unknown name is a runtime (not compile) error
};

struct Kwarg {
  std::string name;
  ExprPtr value;
};

// Assignment targets: a name, a tuple of targets, or `ns.attr`.
struct Target {
  enum { Name, Tuple, NsAttr } kind = Name;
  std::string name, attr;
  std::vector<Target> items;
  int line = 0, col = 0;
};

enum class SK : uint8_t {
  Text, Output, If, For, Set, SetBlock, Macro, CallBlock, FilterBlock, With, Break, Continue, Scope,
  Unsupported,  // include/import/extends/...: parsed, fails when executed (no loader, like transformers)
};

struct MacroDef {
  std::string name;
  std::vector<std::string> params;
  std::vector<ExprPtr> defaults;  // aligned with the last params
  Body body;
  bool uses_caller = false, uses_varargs = false, uses_kwargs = false;
};

struct Stmt {
  SK kind;
  int line = 0, col = 0;
  std::string text;                     // Text; Unsupported: the tag name
  ExprPtr expr;                         // Output, Set value, For iterable, CallBlock call, FilterBlock filter
  std::vector<std::pair<ExprPtr, Body>> branches;  // If: (test, body) ...
  Body body, else_body;                 // For, SetBlock, With, Scope; If/For else
  Target target;                        // For, Set, SetBlock
  ExprPtr filter;                       // For `if` test; SetBlock filter chain
  bool recursive = false;               // For
  std::vector<std::pair<Target, ExprPtr>> assigns;  // With
  std::shared_ptr<MacroDef> macro;      // Macro, CallBlock (the caller)
};

}  // namespace gdn::tpl
