// Template errors and the limits that make untrusted templates safe:
//  * syntax errors carry name:line:column (columns count code points);
//  * raise_exception() surfaces its message verbatim; runtime errors name the Python exception
//    class Jinja2 would raise (UndefinedError, TypeError, SecurityError, ...);
//  * the sandbox refuses mutating methods of lists and dicts and Python internals, as jinja2's
//    ImmutableSandboxedEnvironment does, while namespace() attributes stay assignable;
//  * runaway recursion, loops, output and data growth, deep nesting in the source or in the
//    context end with a TemplateError (Kind::Limit or Syntax), never a crash or a hang.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <string>

#include "template/chat_template.h"

namespace {

using gdn::ChatTemplate;
using gdn::TemplateError;
using Kind = gdn::TemplateError::Kind;

const char* kContext = R"({"x": [1, 2, 3], "d": {"a": 1}, "s": "hello", "t": true})";

// Compiles and renders; returns the error (fails the test when there is none).
TemplateError error_of(const std::string& source, const gdn::TemplateLimits& limits = {},
                       const std::string& context = kContext) {
  try {
    const std::string out = ChatTemplate::compile(source, "t").render(nlohmann::ordered_json::parse(context), limits);
    ADD_FAILURE() << "no error; rendered " << out.substr(0, 200);
  } catch (const TemplateError& e) {
    return e;
  }
  return TemplateError(Kind::Runtime, "", "", "", 0, 0);
}

std::string render(const std::string& source) {
  return ChatTemplate::compile(source, "t").render(nlohmann::ordered_json::parse(kContext));
}

void expect_syntax(const std::string& source, const std::string& what) {
  SCOPED_TRACE(source);
  const TemplateError e = error_of(source);
  EXPECT_EQ(e.kind(), Kind::Syntax);
  EXPECT_EQ(e.what(), what);
}

void expect_runtime(const std::string& source, const std::string& type, const std::string& message) {
  SCOPED_TRACE(source);
  const TemplateError e = error_of(source);
  EXPECT_EQ(e.kind(), Kind::Runtime);
  EXPECT_EQ(e.python_type(), type);
  EXPECT_EQ(e.message(), message);
}

}  // namespace

TEST(TemplateSyntax, ErrorsCarryLineAndColumn) {
  expect_syntax("line 1\n{{ x +* 2 }}", "t:2:7: unexpected '*'");
  expect_syntax("a\n\n  {% nosuchtag %}", "t:3:6: Encountered unknown tag 'nosuchtag'.");
  expect_syntax("ééé {{ * }}", "t:1:8: unexpected '*'");  // columns count characters, not bytes
  expect_syntax("{{ (1, 2] }}", "t:1:9: unexpected ']', expected ')'");
  expect_syntax("{{ x", "t:1:5: expected end of print statement, got end of template");
  expect_syntax("{% macro m(a=1, b) %}{% endmacro %}", "t:1:18: non-default argument follows default argument");
  expect_syntax("{% set 1 = 2 %}", "t:1:8: can't assign to integer");
  expect_syntax("{% break %}", "t:1:4: 'break' outside loop");
  expect_syntax("{% for i in x %}{% macro m() %}{% break %}{% endmacro %}{% endfor %}", "t:1:35: 'break' outside loop");
  expect_syntax("{# open", "t:1:1: Missing end of comment tag");
  expect_syntax("{% raw %}x", "t:1:1: Missing end of raw directive");
  expect_syntax("{{ '\\xZZ' }}", "t:1:4: truncated escape in string literal");
}

TEST(TemplateSyntax, UnclosedBlocksAndStrayEndTags) {
  expect_syntax("{% if t %}unclosed",
                "t:1:19: Unexpected end of template. Jinja was looking for the following tags: 'elif' or 'else' or "
                "'endif'. The innermost block that needs to be closed is 'if'.");
  expect_syntax("{% endif %}", "t:1:4: Encountered unknown tag 'endif'.");
  expect_syntax("{% if t %}{% else %}{% else %}{% endif %}", "t:1:24: Encountered unknown tag 'else'.");
}

TEST(TemplateSyntax, UnknownFilterIsACompileErrorOutsideConditionals) {
  expect_syntax("{{ s|nosuch }}", "t:1:6: No filter named 'nosuch'.");
  expect_syntax("{{ 1 is nosuchtest }}", "t:1:9: No test named 'nosuchtest'.");
  // Jinja2 defers the check inside `if` blocks and conditional expressions: only executing it fails.
  EXPECT_EQ(render("{% if false %}{{ s|nosuch }}{% endif %}ok"), "ok");
  expect_runtime("{% if t %}{{ s|nosuch }}{% endif %}", "TemplateRuntimeError", "No filter named 'nosuch' found.");
  expect_runtime("{{ 'a' if s is nosuch }}", "TemplateRuntimeError", "No test named 'nosuch' found.");
}

TEST(TemplateSyntax, InvalidUtf8SourceIsRejected) {
  expect_syntax("ok\n  \xff{{ x }}", "t:2:3: template source is not valid UTF-8");
}

TEST(TemplateRuntime, RaiseExceptionMessageIsVerbatim) {
  const TemplateError e = error_of("line1\n{{ raise_exception('System message must be at the beginning.') }}");
  EXPECT_EQ(e.kind(), Kind::Raised);
  EXPECT_EQ(e.python_type(), "TemplateError");
  EXPECT_STREQ(e.what(), "System message must be at the beginning.");
  EXPECT_EQ(e.line(), 2);
  EXPECT_STREQ(error_of("{{ raise_exception(42) }}").what(), "42");
}

TEST(TemplateRuntime, ErrorsNameThePythonExceptionAndLine) {
  const TemplateError e = error_of("a\nb\n{{ missing.attr }}");
  EXPECT_EQ(e.kind(), Kind::Runtime);
  EXPECT_STREQ(e.what(), "t:3: UndefinedError: 'missing' is undefined");
  expect_runtime("{{ d.zz.yy }}", "UndefinedError", "'dict object' has no attribute 'zz'");
  expect_runtime("{{ none.foo() }}", "UndefinedError", "'None' has no attribute 'foo'");
  expect_runtime("{{ x[0].startswith('a') }}", "UndefinedError", "'int object' has no attribute 'startswith'");
  expect_runtime("{{ 1 + 'a' }}", "TypeError", "unsupported operand type(s) for +: 'int' and 'str'");
  expect_runtime("{{ 'a' + 1 }}", "TypeError", "can only concatenate str (not \"int\") to str");
  expect_runtime("{{ 1 in 'abc' }}", "TypeError", "'in <string>' requires string as left operand, not int");
  expect_runtime("{{ 'a' in none }}", "TypeError", "argument of type 'NoneType' is not iterable");
  expect_runtime("{{ 1 < 'a' }}", "TypeError", "'<' not supported between instances of 'int' and 'str'");
  expect_runtime("{{ none|length }}", "TypeError", "object of type 'NoneType' has no len()");
  expect_runtime("{{ x|select|length }}", "TypeError", "object of type 'generator' has no len()");
  expect_runtime("{{ d|select|tojson }}", "TypeError", "Object of type generator is not JSON serializable");
  expect_runtime("{{ missing|tojson }}", "TypeError", "Object of type Undefined is not JSON serializable");
  expect_runtime("{{ 1 / 0 }}", "ZeroDivisionError", "division by zero");
  expect_runtime("{{ x[::0] }}", "ValueError", "slice step cannot be zero");
  expect_runtime("{{ d[1:2] }}", "TypeError", "unhashable type: 'slice'");
  expect_runtime("{% for a, b in ['ab', 'c'] %}{% endfor %}", "ValueError", "not enough values to unpack (expected 2, got 1)");
  expect_runtime("{% for i in 5 %}{% endfor %}", "TypeError", "'int' object is not iterable");
  expect_runtime("{% set d.y = 1 %}", "TemplateRuntimeError", "cannot assign attribute on non-namespace object");
  expect_runtime("{% macro m(a) %}{% endmacro %}{{ m(1, 2) }}", "TypeError", "macro 'm' takes not more than 1 argument(s)");
  expect_runtime("{% macro m(a) %}{% endmacro %}{{ m(b=2) }}", "TypeError", "macro 'm' takes no keyword argument 'b'");
  expect_runtime("{% include 'other.jinja' %}", "TypeError", "no loader for this environment specified");
  expect_runtime("{{ range(100001)|length }}", "OverflowError",
                 "Range too big. The sandbox blocks ranges larger than MAX_RANGE (100000).");
}

TEST(TemplateSandbox, MutatingMethodsAreUnsafe) {
  for (const char* src : {"{{ x.append(4) }}", "{{ x.pop() }}", "{{ x.sort() }}", "{{ x.extend([1]) }}", "{{ x.clear() }}",
                          "{{ d.update({'b': 2}) }}", "{{ d.pop('a') }}", "{{ d.setdefault('b', 1) }}", "{{ d.clear() }}"}) {
    SCOPED_TRACE(src);
    const TemplateError e = error_of(src);
    EXPECT_EQ(e.python_type(), "SecurityError");
  }
  EXPECT_EQ(error_of("{{ x.append(4) }}").message(), "access to attribute 'append' of 'list' object is unsafe.");
  // Looking the method up is harmless, as in Jinja2: an undefined that only fails when used.
  EXPECT_EQ(render("[{{ x.append }}]{{ x.append is defined }}{{ x }}"), "[]False[1, 2, 3]");
}

TEST(TemplateSandbox, PythonInternalsAreUnreachable) {
  EXPECT_EQ(render("[{{ s.__class__ }}]{{ s.__class__ is defined }}"), "[]False");
  EXPECT_EQ(error_of("{{ s.__class__.__mro__ }}").python_type(), "SecurityError");
  EXPECT_EQ(error_of("{{ raise_exception.__globals__.os }}").python_type(), "SecurityError");
  EXPECT_EQ(render("{{ {'_k': 1}._k }}|{{ x._private }}|"), "1||");  // plain keys are fine
}

TEST(TemplateSandbox, NamespacesStayAssignable) {
  EXPECT_EQ(render("{% set ns = namespace(n=0) %}{% for i in x %}{% set ns.n = ns.n + i %}{% endfor %}{{ ns.n }}"), "6");
  EXPECT_EQ(render("{% set ns = namespace() %}{% set ns.me = ns %}{{ ns }}"), "<Namespace {'me': <Namespace {...}>}>");
}

TEST(TemplateLimits, RunawayMacroRecursion) {
  const TemplateError e = error_of("{% macro r(n) %}{{ r(n + 1) }}{% endmacro %}{{ r(0) }}");
  EXPECT_EQ(e.kind(), Kind::Limit);
  EXPECT_NE(std::string(e.what()).find("macro calls nested too deeply"), std::string::npos);
}

TEST(TemplateLimits, ExponentialWorkStopsAtTheStepLimit) {
  gdn::TemplateLimits limits;
  limits.max_steps = 100'000;
  const TemplateError e = error_of(
      "{% macro f(n) %}{% if n > 0 %}{{ f(n - 1) }}{{ f(n - 1) }}{% endif %}{% endmacro %}{{ f(60) }}", limits);
  EXPECT_EQ(e.kind(), Kind::Limit);
  EXPECT_NE(std::string(e.what()).find("too many steps"), std::string::npos);
}

TEST(TemplateLimits, LoopIterations) {
  gdn::TemplateLimits limits;
  limits.max_loop_iterations = 1000;
  const TemplateError e = error_of("{% for i in range(100) %}{% for j in range(100) %}{% endfor %}{% endfor %}", limits);
  EXPECT_EQ(e.kind(), Kind::Limit);
  EXPECT_STREQ(e.what(), "t: too many loop iterations (limit 1000)");
}

TEST(TemplateLimits, OutputAndDataSize) {
  gdn::TemplateLimits limits;
  limits.max_output_bytes = 1000;
  EXPECT_EQ(error_of("{% for i in range(200) %}0123456789{% endfor %}", limits).kind(), Kind::Limit);
  EXPECT_EQ(error_of("{{ 'x' * 1000000000000 }}").kind(), Kind::Limit);
  EXPECT_EQ(error_of("{{ [1] * 1000000000000 }}").kind(), Kind::Limit);
  EXPECT_EQ(error_of("{{ 'a'.center(10000000000) }}").kind(), Kind::Limit);
  // doubling a string 100 times: caught when the next string would pass the limit
  limits.max_output_bytes = 1 << 20;
  EXPECT_EQ(error_of("{% set ns = namespace(s='x') %}{% for i in range(100) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}",
                     limits)
                .kind(),
            Kind::Limit);
}

TEST(TemplateLimits, DeepNestingInTheSource) {
  for (const std::string& src : {"{{ " + std::string(20000, '(') + "1" + std::string(20000, ')') + " }}",
                                 "{{ " + std::string(20000, '[') + std::string(20000, ']') + " }}",
                                 std::string("{{ ") + [] { std::string s; for (int i = 0; i < 20000; ++i) s += "not "; return s; }() + "1 }}",
                                 [] { std::string s = "{{ 1"; for (int i = 0; i < 20000; ++i) s += " + 1"; return s + " }}"; }(),
                                 [] { std::string s; for (int i = 0; i < 20000; ++i) s += "{% if t %}"; return s; }()}) {
    const TemplateError e = error_of(src);
    EXPECT_EQ(e.kind(), Kind::Syntax) << e.what();
  }
}

TEST(TemplateLimits, DeepDataIsAnErrorNotACrash) {
  // containers nested by a loop
  EXPECT_EQ(error_of("{% set ns = namespace(l=[]) %}{% for i in range(2000) %}{% set ns.l = [ns.l] %}{% endfor %}")
                .python_type(),
            "RecursionError");
  // a chain of namespaces, printed
  EXPECT_EQ(error_of("{% set ns = namespace(p=none) %}{% for i in range(5000) %}{% set ns.p = namespace(p=ns.p) %}"
                     "{% endfor %}{{ ns }}")
                .python_type(),
            "RecursionError");
  // context JSON nested 100000 deep
  std::string deep = std::string(100000, '[') + std::string(100000, ']');
  EXPECT_THROW(ChatTemplate::compile("{{ v }}").render(nlohmann::ordered_json::parse("{\"v\": " + deep + "}")),
               gdn::InputError);
}
