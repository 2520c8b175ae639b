// Whitespace handling exactly as jinja2 does it with transformers' settings (trim_blocks=True,
// lstrip_blocks=True, keep_trailing_newline=False):
//  * trim_blocks drops the single newline right after `%}` and `#}` (not after `}}`);
//  * lstrip_blocks drops spaces and tabs between the start of a line and `{%` or `{#` when
//    nothing else precedes the tag on that line — never before `{{`; `{%+` keeps them and `+%}`
//    keeps the newline;
//  * `{%-`, `{{-`, `{#-` strip all whitespace (newlines included) before the tag, `-%}`, `-}}`,
//    `-#}` all whitespace after it;
//  * \r\n and \r become \n and one trailing newline of the source is dropped;
//  * raw blocks are output verbatim (their own `-` markers still apply).
// Expected outputs were checked against jinja2 3.1.6 configured as transformers configures it.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <string>

#include "template/chat_template.h"

namespace {

struct Case {
  const char* tmpl;
  const char* want;
};

std::string render(const std::string& source) {
  return gdn::ChatTemplate::compile(source, "t").render(nlohmann::ordered_json::parse(R"({"x": [1, 2, 3], "s": "hello", "t": true})"));
}

// Whitespace
const Case kWhitespace[] = {
    {"a\n  {% if t %}\n    yes\n  {% endif %}\nb", "a\n    yes\nb"},
    {"a\n  {%- if t -%}\n    yes\n  {%- endif -%}\nb", "ayesb"},
    {"a\n  {%+ if t %}\n    yes\n  {% endif +%}\nb", "a\n      yes\n\nb"},
    {"a  {% if t %}x{% endif %}  b", "a  x  b"},
    {"  {{ s }}\n  {{- s }}  \n  {{ s -}}  \n end", "  hellohello  \n  helloend"},
    {"{# comment #}\nx\n  {# indented comment #}\ny {#- strip -#}   z", "x\nyz"},
    {"{% raw %}{{ not }} {% evaluated %}{% endraw %}\n|", "{{ not }} {% evaluated %}|"},
    {"  {% raw -%}   keep {{ x }}  {%- endraw %}  \n|", "keep {{ x }}  \n|"},
    {"{%- for i in x %}\n{{ i }}\n{%- endfor %}", "123"},
    {"{% for i in x %}\n  {{ i }}\n{% endfor %}", "  1\n  2\n  3\n"},
    {"\n\n{% if t %}\n\n{% endif %}\n\n", "\n\n\n"},
    {"line1\015\nline2\015line3\n", "line1\nline2\nline3"},
    {"text\n\n", "text\n"},
    {"{{ s }}\n", "hello"},
    {"\t {% if t %}tab-indented{% endif %}", "tab-indented"},
    {"x {% if t %}not at line start{% endif %}", "x not at line start"},
    {"{% if t %}{% endif %}   {% if t %}after a tag on the same line{% endif %}", "   after a tag on the same line"},
    {"{% set a = 1 -%}\n\n   {{ a }}", "1"},
    {"{{- ' left' }}  {{- ' joined' -}}  !", " left joined!"},
    {"{% macro m() %}\n  body\n{% endmacro %}[{{ m() }}]", "[  body\n]"},
};

}  // namespace

TEST(TemplateWhitespace, TrimAndLstripBlocks) {
  for (const Case& c : kWhitespace) {
    SCOPED_TRACE(c.tmpl);
    EXPECT_EQ(render(c.tmpl), c.want);
  }
}

// The shape the Qwen templates rely on: every statement on its own indented line with `{%-`,
// output only through `{{-`, so the template's own layout leaves no trace.
TEST(TemplateWhitespace, IndentedTemplateLeavesNoLayout) {
  const char* src =
      "{%- for m in x %}\n"
      "    {%- if m == 2 %}\n"
      "        {{- '<two>' }}\n"
      "    {%- else %}\n"
      "        {{- m ~ '\\n' }}\n"
      "    {%- endif %}\n"
      "{%- endfor %}\n";
  EXPECT_EQ(render(src), "1\n<two>3\n");
}
