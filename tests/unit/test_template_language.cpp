// Jinja2 language features: value printing, operators, attribute/item access and slicing,
// loops (loop.*, filtering, else, break/continue, recursion), assignments and scoping, macros
// and call blocks. Each row renders one small template with the variables in kTableContext (template_table.h).
//
// The expected outputs follow jinja2's documented semantics (Python values printed with str(),
// Python operators, sandboxed attribute lookup, per-iteration loop scopes, late-bound macro
// closures) and were checked against jinja2 3.1.6 configured as transformers configures it
// (ImmutableSandboxedEnvironment, trim_blocks, lstrip_blocks, loopcontrols, HF's tojson).
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <string>

#include "template/chat_template.h"
#include "template_table.h"

namespace {

using namespace gdn::test;  // Case, render, check (template_table.h)

// Printing
const Case kPrinting[] = {
    {"{{ x }}|{{ d }}|{{ s }}|{{ n }}|{{ t }}|{{ f }}|{{ u }}|{{ missing }}|", "[1, 2, 3]|{'a': 1, 'b': [1, 'x']}|hello|None|True|1.5|héllo wörld ΣΑΣ||"},
    {"{{ 1.0 }} {{ 0.1 }} {{ 1e-5 }} {{ 1e16 }} {{ 1e15 }} {{ 123.456 }} {{ 1/3 }} {{ -0.0 }} {{ 2.5e-7 }}", "1.0 0.1 1e-05 1e+16 1000000000000000.0 123.456 0.3333333333333333 -0.0 2.5e-07"},
    {"{{ [1, 'a', none, true, 1.0, {'k': 'v'}, (1,), (1, 2), ()] }}", "[1, 'a', None, True, 1.0, {'k': 'v'}, (1,), (1, 2), ()]"},
    {"{{ [\"it's\", 'say \"hi\"', 'tab\\there', 'bs\\\\x', 'é'] }}", "[\"it's\", 'say \"hi\"', 'tab\\there', 'bs\\\\x', 'é']"},
    {"{{ {'a': [1, {'b': none}]} }}|{{ d|string }}|{{ 42|string }}|{{ none|string }}", "{'a': [1, {'b': None}]}|{'a': 1, 'b': [1, 'x']}|42|None"},
    {"{{ s, 1 }}", "('hello', 1)"},
};

// Operators
const Case kOperators[] = {
    {"{{ 1 + 2 * 3 - 4 / 2 }} {{ 7 // 2 }} {{ -7 // 2 }} {{ 7 % 3 }} {{ -7 % 3 }} {{ 2 ** 10 }} {{ 2 ** 3 ** 2 }} {{ 2 ** -1 }}", "5.0 3 -4 1 2 1024 64 0.5"},
    {"{{ 7.5 // 2 }} {{ -7.5 % 2 }} {{ 1 + 1.5 }} {{ true + 1 }} {{ 4 / 2 }} {{ -3 }} {{ -(-3) }} {{ +3 }} {{ - 3|abs }}", "3.0 0.5 2.5 2 2.0 -3 3 3 3"},
    {"{{ 'a' ~ 1 ~ none ~ missing ~ [1] }} {{ 'ab' * 3 }} {{ [1] * 3 }} {{ 3 * 'x' }} {{ 'a' + 'b' }} {{ [1] + [2] }} {{ 'x' * 0 }}|", "a1None[1] ababab [1, 1, 1] xxx ab [1, 2] |"},
    {"{{ 1 < 2 < 3 }} {{ 3 > 2 > 2 }} {{ 'a' < 'b' }} {{ [1, 2] < [1, 3] }} {{ 1 == 1.0 }} {{ none == none }} {{ 'a' != 'a' }} {{ true == 1 }} {{ missing == missing }}", "True False True True True True False True True"},
    {"{{ 'a' in 'cat' }} {{ 1 in x }} {{ 'a' in d }} {{ 'z' not in d }} {{ 1 in missing }} {{ 'x' in [] }} {{ 1 in [true] }}", "True True True True False False True"},
    {"{{ not 1 }} {{ not '' }} {{ 1 and 2 }} {{ 0 or 'x' }} {{ n or missing or 'z' }} {{ '' and 1 }} {{ not n is none }}", "False True 2 x z  False"},
    {"{{ 'y' if t else 'n' }} {{ 'y' if n else 'n' }} [{{ 'y' if n }}] {{ 'a' if x is not none else 'b' }} {{ 1 if 0 else 2 if 0 else 3 }}", "y n [] a 3"},
    {"{{ '%s-%d' % ('a', 3) }} {{ 'x %.2f' % 1.5 }} {{ '%5s|%-5s|' % ('a', 'b') }} {{ '%r' % 'q' }} {{ '%05d' % 42 }} {{ '%x' % 255 }} {{ '%s' % [1] }}", "a-3 x 1.50     a|b    | 'q' 00042 ff [1]"},
};

// Access
const Case kAccess[] = {
    {"{{ x[0] }} {{ x[-1] }} {{ x[10] }}|{{ s[1] }} {{ s[-1] }} {{ u[1] }} {{ d['a'] }} {{ d.a }} {{ d['zz'] }}|{{ d.zz }}|{{ x.0 }} {{ x.1 }}", "1 3 |e o é 1 1 ||1 2"},
    {"{{ x[1:] }} {{ x[:-1] }} {{ x[::-1] }} {{ x[::2] }} {{ s[1:3] }} {{ u[::-1] }} {{ s[10:] }}| {{ x[-100:100] }} {{ s[::-2] }} {{ x[1:0] }}", "[2, 3] [1, 2] [3, 2, 1] [1, 3] el ΣΑΣ dlröw olléh | [1, 2, 3] olh []"},
    {"{{ d.items is callable }}|{{ d[\"items\"] is callable }}|{{ d.get('zz', 5) }}|{{ n.foo }}|{{ n[0] }}|{{ s.nothing }}|{{ x['count'](1) }}", "True|True|5||||1"},
    {"{% set nested = {'a': {'b': {'c': 5}}} %}{{ nested.a.b.c }} {{ nested['a']['b'].c }} {{ nested.a.zz is defined }}", "5 5 False"},
};

// Loops
const Case kLoops[] = {
    {"{% for i in x %}{{ loop.index }}{{ loop.index0 }}{{ loop.first }}{{ loop.last }}{{ loop.length }}{{ loop.revindex }}{{ loop.revindex0 }}|{% endfor %}", "10TrueFalse332|21FalseFalse321|32FalseTrue310|"},
    {"{% for i in x %}[{{ loop.previtem }},{{ loop.nextitem }}]{% endfor %}", "[,2][1,3][2,]"},
    {"{% for i in x %}{% for j in x %}{{ loop.index }}{% endfor %};{% endfor %}", "123;123;123;"},
    {"{% for k in d %}{{ k }}{% endfor %} {% for k, v in d.items() %}{{ k }}={{ v }};{% endfor %} {% for k, v in d|items %}{{ k }}={{ v }};{% endfor %}", "ab a=1;b=[1, 'x']; a=1;b=[1, 'x'];"},
    {"{% for c in s %}{{ c }}-{% endfor %} {% for c in missing %}X{% else %}empty{% endfor %} {% for c in [] %}X{% else %}empty{% endfor %}", "h-e-l-l-o- empty empty"},
    {"{% for i in x if i != 2 %}{{ i }}:{{ loop.index }}/{{ loop.length }} {% endfor %}", "1:1/2 3:2/2 "},
    {"{% for i in x %}{% if i == 2 %}{% continue %}{% endif %}{{ i }}{% endfor %}|{% for i in x %}{{ i }}{% if i == 2 %}{% break %}{% endif %}{% endfor %}", "13|12"},
    {"{% for i in x %}{{ loop.cycle('a', 'b') }}{% endfor %} {% for i in [1, 1, 2, 2, 1] %}{% if loop.changed(i) %}{{ i }}{% endif %}{% endfor %}", "aba 121"},
    {"{% for a, (b, c) in [[1, [2, 3]]] %}{{ a }}{{ b }}{{ c }}{% endfor %}", "123"},
    {"{% for item in [{'n': 'a', 'c': [{'n': 'b', 'c': []}]}] recursive %}<{{ item.n }}{{ loop.depth }}{{ loop(item.c) }}>{% endfor %}", "<a1<b2>>"},
    {"{% for m in [{'r': 'u'}, {'r': 't'}, {'r': 't'}, {'r': 'u'}] %}{% if loop.previtem and loop.previtem.r != 't' %}+{% endif %}{{ m.r }}{% if not loop.last and loop.nextitem.r != 't' %}|{% endif %}{% endfor %}", "u+tt|u"},
    {"{% for i in range(3) %}{{ i }}{% endfor %} {{ range(1, 7, 2)|list }} {{ range(5, 0, -2)|list }} {{ range(0)|list }}", "012 [1, 3, 5] [5, 3, 1] []"},
};

// Assignment
const Case kAssignment[] = {
    {"{% set a = 1 %}{% if a %}{% set b = 2 %}{% endif %}{{ a }}{{ b }}", "12"},
    {"{% set a = 5 %}{% for i in x %}{{ a }}{% set a = i %}{{ a }};{% endfor %}{{ a }}", "51;52;53;5"},
    {"{% for i in x %}{% if loop.first %}{% set a = 1 %}{% endif %}{{ a }};{% endfor %}", "1;;;"},
    {"{% for i in x %}{% set y = i %}{% endfor %}[{{ y }}]", "[]"},
    {"{% set ns = namespace(c=0, l=[]) %}{% for i in x %}{% set ns.c = ns.c + i %}{% set ns.l = ns.l + [i] %}{% endfor %}{{ ns.c }} {{ ns.l }} {{ ns }}", "6 [1, 2, 3] <Namespace {'c': 6, 'l': [1, 2, 3]}>"},
    {"{% set ns = namespace({'k': 1}, m=2) %}{{ ns.k }}{{ ns.m }}{{ ns.zz is defined }}", "12False"},
    {"{% set a, b = [1, 2] %}{{ a }}{{ b }} {% set (c, dd), ee = [[3, 4], 5] %}{{ c }}{{ dd }}{{ ee }}", "12 345"},
    {"{% set blk %}\n  indented {{ s }}\n{% endset %}[{{ blk }}]", "[  indented hello\n]"},
    {"{% set blk | upper | replace('L', '_') %}text {{ s }}{% endset %}{{ blk }}", "TEXT HE__O"},
    {"{% with q = 5, r = q %}{{ q }}{{ r }}{% endwith %}[{{ q }}]", "5[]"},
    {"{% filter upper %}hello {{ s }}{% endfilter %} {% filter replace('L', 'w')|lower %}HELLO{% endfilter %}", "HELLO HELLO hewwo"},
};

// Macros
const Case kMacros[] = {
    {"{% macro m(a, b=2, c='x') %}{{ a }}-{{ b }}-{{ c }}{% endmacro %}{{ m(1) }} {{ m(1, 3) }} {{ m(1, c='y') }} {{ m() }}", "1-2-x 1-3-x 1-2-y -2-x"},
    {"{% macro m(a) %}{{ a }}{{ varargs }}{{ kwargs }}{% endmacro %}{{ m(1, 2, 3, k=4) }}", "1(2, 3){'k': 4}"},
    {"{% macro outer() %}[{{ caller() }}]{% endmacro %}{% call outer() %}inside {{ s }}{% endcall %}", "[inside hello]"},
    {"{% macro outer() %}[{{ caller(1, 2) }}]{% endmacro %}{% call(a, b) outer() %}{{ a + b }}{% endcall %}", "[3]"},
    {"{% macro fact(n) %}{% if n <= 1 %}1{% else %}{{ n * fact(n - 1)|int }}{% endif %}{% endmacro %}{{ fact(5) }}", "120"},
    {"{% macro m() %}{{ a }}{{ b }}{% endmacro %}{% set a = 1 %}{{ m() }}{% set b = 2 %}{{ m() }}{% set a = 3 %}{{ m() }}", "11232"},
    {"{% macro m() %}{{ a }}{% endmacro %}{% for a in x %}[{{ m() }}]{% endfor %}", "[][][]"},
    {"{% for i in x %}{% macro m() %}{{ i }}{% endmacro %}{{ m() }}{% endfor %}", "123"},
    {"{% set ns = namespace(v=0) %}{% macro inc() %}{% set ns.v = ns.v + 1 %}{% endmacro %}{{ inc() }}{{ inc() }}{{ ns.v }}", "2"},
    {"{% macro m(a) %}{% set a = a ~ '!' %}{{ a }}{% endmacro %}{{ m('x') }}{{ m|string }}", "x!<Macro 'm'>"},
    {"{% macro content(c) %}{% if c is string %}{{ c }}{% else %}{% for p in c %}{{ p.text }}{% endfor %}{% endif %}{% endmacro %}[{{ content('  a  ')|trim }}][{{ content([{'text': 'b'}, {'text': 'c '}])|trim }}]", "[a][bc]"},
};

}  // namespace

TEST(TemplateLanguage, Printing) { check(kPrinting); }
TEST(TemplateLanguage, Operators) { check(kOperators); }
TEST(TemplateLanguage, Access) { check(kAccess); }
TEST(TemplateLanguage, Loops) { check(kLoops); }
TEST(TemplateLanguage, Assignment) { check(kAssignment); }
TEST(TemplateLanguage, Macros) { check(kMacros); }
