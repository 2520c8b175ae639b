// Tokenizer for Jinja2 source as transformers configures it: trim_blocks=True,
// lstrip_blocks=True, default delimiters, keep_trailing_newline=False.
//
// Whitespace rules reproduced from jinja2's lexer:
//  * newlines (\r\n, \r, \n) are normalised to \n and one trailing newline is dropped;
//  * `{%-`, `{{-`, `{#-` strip all whitespace before the tag; `-%}`, `-}}`, `-#}` all after;
//  * trim_blocks: a single \n directly after `%}` or `#}` is removed (not after `}}`, not after
//    `{% raw %}`); `+%}` keeps it;
//  * lstrip_blocks: spaces/tabs (any Unicode whitespace) between the start of a line and a `{%`
//    or `{#` are removed when nothing else precedes the tag on that line; never before `{{`;
//    `{%+` keeps them;
//  * inside tags, `%}` / `}}` do not end the tag while a bracket is open;
//  * string literals are decoded the way jinja2 does it (backslashreplace, then unicode-escape).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace gdn::tpl {

enum class Tok : uint8_t { Data, VarBegin, VarEnd, BlockBegin, BlockEnd, Name, String, Integer, Float, Operator, Eof };

struct Token {
  Tok type;
  std::string text;  // Data text, identifier, decoded string literal, or operator spelling
  int64_t ival = 0;
  double fval = 0;
  int line = 1, col = 1;
};

struct SyntaxError {
  std::string message;
  int line, col;
};

// Throws SyntaxError. `source` must be valid UTF-8 (checked by the caller).
std::vector<Token> tokenize(const std::string& source);

std::string describe(const Token& t);  // for messages: 'name', 'end of print statement', ...

}  // namespace gdn::tpl
