// Jinja2's built-in filters and tests, transformers' tojson filter, and the Python str/dict/list
// methods templates call. Each row renders one small template with the variables in kTableContext (template_table.h).
//
// Expected outputs follow the Python/Jinja2 definitions (str.split() without arguments splits on
// runs of Unicode whitespace, |title capitalises after -, space and brackets while str.title()
// after any uncased character, round() is half-to-even on the exact binary value, |select and
// friends return one-shot generators that are always truthy, tojson is json.dumps with
// ensure_ascii=False and ', ' / ': ' separators) and were checked against jinja2 3.1.6 configured
// as transformers configures it.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <string>

#include "template/chat_template.h"
#include "template_table.h"

namespace {

using namespace gdn::test;  // Case, render, check (template_table.h)

// StringFilters
const Case kStringFilters[] = {
    {"{{ s|upper }} {{ s|lower }} {{ s|capitalize }} {{ 'hello wORLD-foo(bar'|title }} {{ s|length }} {{ u|length }} {{ u|upper }} {{ 'ΣΑΣ ΟΔΟΣ'|lower }} {{ 'straße'|upper }}", "HELLO hello Hello Hello World-Foo(Bar 5 15 HÉLLO WÖRLD ΣΑΣ σας οδος STRASSE"},
    {"{{ '  a b  '|trim }}|{{ 'xxaxx'|trim('x') }}|{{ s|replace('l', 'L') }}|{{ s|replace('l', 'L', 1) }}|{{ 'ab'|replace('', '-') }}|{{ 5|replace('5', 'five') }}", "a b|a|heLLo|heLlo|-a-b-|five"},
    {"{{ 'a\nb\n\nc'|indent }}|{{ 'a\nb'|indent(2, true) }}|{{ 'a\n\nb'|indent(2, blank=true) }}|{{ 'a\nb'|indent('> ') }}", "a\n    b\n\n    c|  a\n  b|a\n  \n  b|a\n> b"},
    {"{{ 'hello'|center(11) }}|{{ 'ab'|center(5) }}|{{ 'one two  three'|wordcount }}|{{ 'hello world this is long'|truncate(9) }}|{{ 'hello world this is long'|truncate(9, true) }}|{{ 'hello world'|truncate(11) }}", "   hello   |  ab |3|hello...|hello ...|hello world"},
    {"{{ '%s-%d'|format('a', 3) }} {{ '%(a)s'|format(a=1) }} {{ '<a>'|escape }} {{ '<a>'|e }} {{ ('<a>'|safe) + '<b>' }} {{ '<b>' ~ ('<a>'|safe) }} {{ '<a>'|safe|escape }} {{ '<a>'|forceescape }}", "a-3 1 &lt;a&gt; &lt;a&gt; <a>&lt;b&gt; <b><a> <a> &lt;a&gt;"},
    {"{{ 42|string ~ 1 }} {{ [1]|string }} {{ missing|string }}|{{ missing|upper }}|{{ missing|trim }}|{{ missing|length }}", "421 [1] |||0"},
};

// NumberFilters
const Case kNumberFilters[] = {
    {"{{ 3.7|int }} {{ '3.7'|int }} {{ 'x'|int }} {{ 'x'|int(5) }} {{ '0x1f'|int(base=16) }} {{ ' 42 '|int }} {{ '1_000'|int }} {{ true|int }} {{ none|int }} {{ '-7'|int }}", "3 3 0 5 31 42 1000 1 0 -7"},
    {"{{ '12'|float }} {{ 'x'|float }} {{ 'inf'|float }} {{ '1e3'|float }} {{ 3|float }} {{ ' 2.5 '|float }} {{ 'nan'|float }}", "12.0 0.0 inf 1000.0 3.0 2.5 nan"},
    {"{{ 2.5|round }} {{ 3.5|round }} {{ 3.14159|round(2) }} {{ 7|round }} {{ 2.1|round(0, 'ceil') }} {{ 2.9|round(0, 'floor') }} {{ 0.125|round(2) }} {{ 2.675|round(2) }} {{ -0.5|round }}", "2.0 4.0 3.14 7 3.0 2.0 0.12 2.67 -0.0"},
    {"{{ -3|abs }} {{ -2.5|abs }} {{ x|sum }} {{ items|sum(attribute='v') }} {{ [1.5, 2]|sum }} {{ x|sum(start=10) }}", "3 2.5 6 6 3.5 16"},
};

// SequenceFilters
const Case kSequenceFilters[] = {
    {"{{ x|join }} {{ x|join(', ') }} {{ items|join(', ', attribute='name') }} {{ d|join('|') }} {{ s|join('.') }}", "123 1, 2, 3 b, a, C a|b h.e.l.l.o"},
    {"{{ x|first }} {{ x|last }} {{ s|first }} {{ d|first }} {{ []|first }}|{{ x|length }} {{ d|count }} {{ x|list }} {{ s|list }} {{ d|list }}", "1 3 h a |3 2 [1, 2, 3] ['h', 'e', 'l', 'l', 'o'] ['a', 'b']"},
    {"{{ missing|default('dflt') }} {{ ''|default('dflt') }} {{ ''|default('dflt', true) }} {{ n|d('z') }} {{ 0|d('z', boolean=true) }} {{ missing|d }}|", "dflt  dflt None z |"},
    {"{{ x|map('string')|join('-') }} {{ items|map(attribute='name')|list }} {{ items|map(attribute='missing', default='?')|list }} {{ x|map('tojson')|list }} {{ [[1, 2]]|map('join', ',')|list }}", "1-2-3 ['b', 'a', 'C'] ['?', '?', '?'] ['1', '2', '3'] ['1,2']"},
    {"{{ x|select('odd')|list }} {{ x|reject('odd')|list }} {{ [0, 1, '', 'a', none]|select|list }} {{ items|selectattr('v', 'gt', 1)|map(attribute='name')|list }} {{ items|rejectattr('name', 'equalto', 'a')|list|length }}", "[1, 3] [2] [1, 'a'] ['b', 'C'] 2"},
    {"{{ items|selectattr('name', 'in', ['a', 'b'])|map(attribute='v')|list }} {{ items|selectattr('missing', 'undefined')|list|length }} {{ [none, 1]|select('none')|list }}", "[2, 1] 3 [None]"},
    {"{% if x|select('gt', 10) %}generators-are-truthy{% endif %} {% set g = x|map('string') %}{{ g|join }}|{{ g|join }}|{{ g|list }}", "generators-are-truthy 123||[]"},
    {"{{ items|sort(attribute='name')|map(attribute='name')|join }} {{ items|sort(attribute='name', case_sensitive=true)|map(attribute='name')|join }} {{ [3, 1, 2]|sort(reverse=true) }} {{ ['b', 'A', 'a']|sort }}", "abC Cab [3, 2, 1] ['A', 'a', 'b']"},
    {"{{ ['b', 'A', 'a', 'B']|unique|list }} {{ ['b', 'A', 'a', 'B']|unique(case_sensitive=true)|list }} {{ [3, 1, 3]|unique|list }} {{ items|unique(attribute='v')|list|length }}", "['b', 'A'] ['b', 'A', 'a', 'B'] [3, 1] 3"},
    {"{{ x|min }} {{ x|max }} {{ ['a', 'B']|max }} {{ ['a', 'B']|max(case_sensitive=true) }} {{ items|min(attribute='v') }} {{ []|max }}|", "1 3 B a {'name': 'a', 'v': 1} |"},
    {"{{ {'b': 1, 'a': 2}|dictsort }} {{ {'b': 1, 'a': 2}|dictsort(by='value') }} {{ {'b': 1, 'a': 2}|dictsort(reverse=true) }}", "[('a', 2), ('b', 1)] [('b', 1), ('a', 2)] [('b', 1), ('a', 2)]"},
    {"{{ x|batch(2)|list }} {{ x|batch(2, 'fill')|list }} {{ x|slice(2)|list }} {{ [1, 2, 3, 4, 5]|slice(3, 0)|list }}", "[[1, 2], [3]] [[1, 2], [3, 'fill']] [[1, 2], [3]] [[1, 2], [3, 4], [5, 0]]"},
    {"{{ x|reverse|list }} {{ s|reverse }} {{ d|reverse|list }} {{ d|items|list }} {{ missing|items|list }} {{ d|attr('items') is callable }} {{ d|attr('a') }}|", "[3, 2, 1] olleh ['b', 'a'] [('a', 1), ('b', [1, 'x'])] [] True |"},
};

// JsonFilter
const Case kJsonFilter[] = {
    {"{{ x|tojson }} {{ d|tojson }} {{ u|tojson }} {{ u|tojson(ensure_ascii=true) }} {{ [1.0, 1e-7, none, true, 2**40]|tojson }}", "[1, 2, 3] {\"a\": 1, \"b\": [1, \"x\"]} \"héllo wörld ΣΑΣ\" \"h\\u00e9llo w\\u00f6rld \\u03a3\\u0391\\u03a3\" [1.0, 1e-07, null, true, 1099511627776]"},
    {"{{ d|tojson(indent=2) }}", "{\n  \"a\": 1,\n  \"b\": [\n    1,\n    \"x\"\n  ]\n}"},
    {"{{ '\\U0001F600'|tojson(ensure_ascii=true) }} {{ 'a\\x01b\\x7f\"\\\\/'|tojson }} {{ {'z': 1, 'a': 2}|tojson(sort_keys=true) }} {{ {1: 2, none: 3, true: 4, 1.5: 5}|tojson }}", "\"\\ud83d\\ude00\" \"a\\u0001b\177\\\"\\\\/\" {\"a\": 2, \"z\": 1} {\"1\": 4, \"null\": 3, \"1.5\": 5}"},
    {"{{ d|tojson(separators=(',', ':')) }} {{ x|tojson(indent=0) }} {{ d|tojson(indent='\\t') }} {{ []|tojson(indent=2) }} {{ {}|tojson(indent=2) }} {{ (1, 2)|tojson }} {{ ('<b>'|safe)|tojson }}", "{\"a\":1,\"b\":[1,\"x\"]} [\n1,\n2,\n3\n] {\n\t\"a\": 1,\n\t\"b\": [\n\t\t1,\n\t\t\"x\"\n\t]\n} [] {} [1, 2] \"<b>\""},
};

// Tests
const Case kTests[] = {
    {"{{ s is string }} {{ x is string }} {{ x is sequence }} {{ d is sequence }} {{ d is mapping }} {{ x is iterable }} {{ 1 is iterable }} {{ n is none }} {{ missing is defined }} {{ s is defined }} {{ missing is undefined }}", "True False True True True True False True False True True"},
    {"{{ 1 is number }} {{ t is number }} {{ t is integer }} {{ 1 is integer }} {{ 1.0 is float }} {{ t is boolean }} {{ t is true }} {{ 1 is true }} {{ false is false }} {{ 0 is false }}", "True True False True True True True False True False"},
    {"{{ 3 is odd }} {{ 4 is even }} {{ 9 is divisibleby 3 }} {{ 9 is divisibleby(4) }} {{ 'ab' is lower }} {{ 'AB' is upper }} {{ 1 is in x }} {{ 1 is eq 1 }} {{ 1 is equalto 2 }} {{ 2 is gt 1 }} {{ 2 is lessthan 1 }} {{ 1 is ne 2 }} {{ 1 is ge 1 }} {{ 1 is le 0 }}", "True True True False True True True True False True False True True False"},
    {"{{ x is sameas x }} {{ none is sameas none }} {{ 'upper' is filter }} {{ 'odd' is test }} {{ range is callable }} {{ missing is callable }} {{ s.upper is callable }} {{ ('a'|safe) is escaped }} {{ 'a' is escaped }}", "True True True True True True True True False"},
    {"{{ missing is sequence }} {{ missing is iterable }} {{ missing is mapping }} {{ n is iterable }} {{ x|select is iterable }} {{ x|select is sequence }}", "True True False False True False"},
};

// StrMethods
const Case kStrMethods[] = {
    {"{{ s.startswith('he') }} {{ s.endswith(('x', 'lo')) }} {{ s.startswith('l', 2) }} {{ s.upper() }} {{ s.title() }} {{ \"they're bill's\".title() }} {{ s.capitalize() }} {{ 'aBc'.swapcase() }} {{ 'AbC'.lower() }}", "True True True HELLO Hello They'Re Bill'S Hello AbC abc"},
    {"{{ ' a  b '.split() }} {{ 'a,b,,c'.split(',') }} {{ 'a b c'.split(None, 1) }} {{ 'a b c'.rsplit(' ', 1) }} {{ '  a b c  '.rsplit(None, 1) }} {{ '  a b c  '.split(None, 1) }} {{ ''.split(',') }} {{ ''.split() }}", "['a', 'b'] ['a', 'b', '', 'c'] ['a', 'b c'] ['a b', 'c'] ['  a b', 'c'] ['a', 'b c  '] [''] []"},
    {"{{ 'x</think>\n\ny'.split('</think>')[0].rstrip('\n') }}|{{ '\n\nx\n'.strip() }}|{{ '\n\nx\n'.lstrip('\n') }}|{{ '\n\nx\n'.rstrip('\n') }}|{{ 'xyhixy'.strip('xy') }}|{{ '\\u3000x\\u00a0'.strip() }}|", "x|x|x\n|\n\nx|hi|x|"},
    {"{{ s.find('l') }} {{ s.rfind('l') }} {{ s.find('z') }} {{ s.count('l') }} {{ s.index('e') }} {{ u.find('w') }} {{ s.replace('l', '') }} {{ s.replace('l', 'L', 1) }}", "2 3 -1 2 1 6 heo heLlo"},
    {"{{ '-'.join(['a', 'b']) }} {{ ''.join(s|list|reverse) }} {{ 'a\nb\\r\nc'.splitlines() }} {{ 'a\nb\n'.splitlines(true) }}", "a-b olleh ['a', 'b', 'c'] ['a\\n', 'b\\n']"},
    {"{{ '12'.isdigit() }} {{ 'ab'.isalpha() }} {{ 'a1'.isalnum() }} {{ '  '.isspace() }} {{ 'AB'.isupper() }} {{ 'ab'.islower() }} {{ ''.isdigit() }} {{ '42'.zfill(5) }} {{ '-42'.zfill(5) }} {{ 'a'.ljust(3, '*') }} {{ 'a'.rjust(3) }} {{ 'a'.center(4, '-') }}", "True True True True True True False 00042 -0042 a**   a -a--"},
    {"{{ 'prefix_x'.removeprefix('prefix_') }} {{ 'x.py'.removesuffix('.py') }} {{ 'a=b=c'.partition('=') }} {{ 'a=b=c'.rpartition('=') }} {{ 'a'.partition('=') }}", "x x ('a', '=', 'b=c') ('a=b', '=', 'c') ('a', '', '')"},
    {"{{ '{} and {}'.format(1, 'x') }} {{ '{0}{1}{0}'.format('a', 'b') }} {{ '{name}!'.format(name='n') }} {{ '{!r}'.format('q') }} {{ '{{}}'.format() }}", "1 and x aba n! 'q' {}"},
};

// ContainerMethods
const Case kContainerMethods[] = {
    {"{{ d.get('a') }} {{ d.get('zz') }} {{ d.get('zz', 5) }} {{ d.keys()|list }} {{ d.values()|list }} {{ d.items()|list }} {{ x.index(2) }} {{ x.count(1) }} {{ d.items()|length }} {{ (1, 2).count(2) }}", "1 None 5 ['a', 'b'] [1, [1, 'x']] [('a', 1), ('b', [1, 'x'])] 1 1 2 1"},
    {"{{ dict(a=1, b='x') }} {{ dict({'z': 1}, y=2) }} {{ namespace(a=1).a }} {{ namespace({'b': 2}).b }}", "{'a': 1, 'b': 'x'} {'z': 1, 'y': 2} 1 2"},
    {"{% set j = joiner('|') %}{% for i in x %}{{ j() }}{{ i }}{% endfor %}", "1|2|3"},
};

}  // namespace

TEST(TemplateBuiltins, StringFilters) { check(kStringFilters); }
TEST(TemplateBuiltins, NumberFilters) { check(kNumberFilters); }
TEST(TemplateBuiltins, SequenceFilters) { check(kSequenceFilters); }
TEST(TemplateBuiltins, JsonFilter) { check(kJsonFilter); }
TEST(TemplateBuiltins, Tests) { check(kTests); }
TEST(TemplateBuiltins, StrMethods) { check(kStrMethods); }
TEST(TemplateBuiltins, ContainerMethods) { check(kContainerMethods); }
