// UTF-8 and the slice of Python's Unicode semantics chat templates depend on: code-point length,
// indexing and slicing, str.isspace() (used by strip/split and by the Jinja lexer's `\s`), and
// case mapping. Strings are always valid UTF-8 here: template sources and context strings are
// validated on the way in, and every operation below produces valid UTF-8 from valid UTF-8.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace gdn::tpl::uni {

// Decodes the code point at s[i] and advances i. Never reads past the end; an invalid byte
// decodes as itself (U+0000..U+00FF) so that a bug can never turn into an out-of-bounds read.
char32_t next(std::string_view s, size_t& i);
void append(std::string& out, char32_t cp);

// Byte offset of the first invalid sequence, or npos when `s` is valid UTF-8 (no overlongs,
// no surrogates, nothing above U+10FFFF).
size_t find_invalid(std::string_view s);

bool is_ascii(std::string_view s);
size_t length(std::string_view s);                      // code points
std::vector<char32_t> decode(std::string_view s);
std::string encode(const std::vector<char32_t>& cps, size_t begin, size_t end);

// Python str.isspace() for one code point (also what `\s` matches in Python's `re`).
bool is_space(char32_t c);
// Python's str.splitlines() boundaries (\n \r \v \f \x1c-\x1e \x85 \u2028 \u2029).
bool is_line_break(char32_t c);
bool is_alpha(char32_t c);  // ASCII letters plus any non-ASCII letter we can map (approximation)
bool is_digit(char32_t c);  // ASCII digits only
bool is_alnum(char32_t c);
bool is_word(char32_t c);   // Python `\w`, approximated: alnum, '_' and non-ASCII non-space non-punctuation

// Case mapping: full for ASCII, Latin-1, Latin Extended-A, Greek and Cyrillic (the ranges real
// text in prompts uses); other scripts have no case or are left unchanged. `ß`.upper() == "SS"
// as in Python.
void append_upper(std::string& out, char32_t c);
void append_lower(std::string& out, char32_t c);
bool is_upper(char32_t c);
bool is_lower(char32_t c);

std::string upper(std::string_view s);
std::string lower(std::string_view s);

// Python str.strip()/lstrip()/rstrip(): `chars` empty-and-null means whitespace.
std::string strip(std::string_view s, bool left, bool right, const std::string* chars);

// Python repr() of a str, e.g. 'it\'s' → "it's" (double quotes when that avoids escaping).
std::string repr(std::string_view s);
bool is_printable(char32_t c);

}  // namespace gdn::tpl::uni
