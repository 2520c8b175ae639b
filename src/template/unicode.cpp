#include "template/unicode.h"

#include <algorithm>

namespace gdn::tpl::uni {

char32_t next(std::string_view s, size_t& i) {
  const auto b0 = static_cast<unsigned char>(s[i]);
  auto cont = [&](size_t k) -> unsigned { return i + k < s.size() ? static_cast<unsigned char>(s[i + k]) & 0x3Fu : 0u; };
  if (b0 < 0x80) {
    i += 1;
    return b0;
  }
  if ((b0 & 0xE0) == 0xC0 && i + 1 < s.size()) {
    const char32_t c = ((b0 & 0x1Fu) << 6) | cont(1);
    i += 2;
    return c;
  }
  if ((b0 & 0xF0) == 0xE0 && i + 2 < s.size()) {
    const char32_t c = ((b0 & 0x0Fu) << 12) | (cont(1) << 6) | cont(2);
    i += 3;
    return c;
  }
  if ((b0 & 0xF8) == 0xF0 && i + 3 < s.size()) {
    const char32_t c = ((b0 & 0x07u) << 18) | (cont(1) << 12) | (cont(2) << 6) | cont(3);
    i += 4;
    return c;
  }
  i += 1;  // invalid: never happens for validated strings
  return b0;
}

void append(std::string& out, char32_t c) {
  if (c < 0x80) {
    out += char(c);
  } else if (c < 0x800) {
    out += char(0xC0 | (c >> 6));
    out += char(0x80 | (c & 0x3F));
  } else if (c < 0x10000) {
    out += char(0xE0 | (c >> 12));
    out += char(0x80 | ((c >> 6) & 0x3F));
    out += char(0x80 | (c & 0x3F));
  } else {
    out += char(0xF0 | (c >> 18));
    out += char(0x80 | ((c >> 12) & 0x3F));
    out += char(0x80 | ((c >> 6) & 0x3F));
    out += char(0x80 | (c & 0x3F));
  }
}

size_t find_invalid(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    const auto b0 = static_cast<unsigned char>(s[i]);
    size_t n;
    char32_t c, min;
    if (b0 < 0x80) {
      ++i;
      continue;
    } else if ((b0 & 0xE0) == 0xC0) {
      n = 2, c = b0 & 0x1F, min = 0x80;
    } else if ((b0 & 0xF0) == 0xE0) {
      n = 3, c = b0 & 0x0F, min = 0x800;
    } else if ((b0 & 0xF8) == 0xF0) {
      n = 4, c = b0 & 0x07, min = 0x10000;
    } else {
      return i;
    }
    if (i + n > s.size()) return i;
    for (size_t k = 1; k < n; ++k) {
      const auto b = static_cast<unsigned char>(s[i + k]);
      if ((b & 0xC0) != 0x80) return i;
      c = (c << 6) | (b & 0x3F);
    }
    if (c < min || c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF)) return i;
    i += n;
  }
  return std::string_view::npos;
}

bool is_ascii(std::string_view s) {
  for (char ch : s)
    if (static_cast<unsigned char>(ch) >= 0x80) return false;
  return true;
}

size_t length(std::string_view s) {
  size_t n = 0;
  for (char ch : s) n += (static_cast<unsigned char>(ch) & 0xC0) != 0x80;
  return n;
}

std::vector<char32_t> decode(std::string_view s) {
  std::vector<char32_t> v;
  v.reserve(s.size());
  for (size_t i = 0; i < s.size();) v.push_back(next(s, i));
  return v;
}

std::string encode(const std::vector<char32_t>& cps, size_t begin, size_t end) {
  std::string s;
  for (size_t i = begin; i < end && i < cps.size(); ++i) append(s, cps[i]);
  return s;
}

bool is_space(char32_t c) {
  return (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x20) || c == 0x85 || c == 0xA0 || c == 0x1680 ||
         (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}

bool is_line_break(char32_t c) {
  return c == '\n' || c == '\r' || c == 0x0B || c == 0x0C || (c >= 0x1C && c <= 0x1E) || c == 0x85 || c == 0x2028 ||
         c == 0x2029;
}

namespace {

// One simple case pair: returns the other-case code point, or 0 when `c` has none. `to_upper`
// selects the direction. Multi-character mappings (ß, ŉ, İ) are handled by the callers.
char32_t pair_case(char32_t c, bool to_upper) {
  auto even_odd = [&](char32_t lo, char32_t hi) -> char32_t {  // even = upper, odd = lower
    if (c < lo || c > hi) return 0;
    const bool upper = (c - lo) % 2 == 0;
    return upper == to_upper ? 0 : (to_upper ? c - 1 : c + 1);
  };
  auto odd_even = [&](char32_t lo, char32_t hi) -> char32_t {  // odd = upper, even = lower
    if (c < lo || c > hi) return 0;
    const bool upper = (c % 2) == 1;
    return upper == to_upper ? 0 : (to_upper ? c - 1 : c + 1);
  };
  auto shift = [&](char32_t up_lo, char32_t up_hi, char32_t delta) -> char32_t {
    if (to_upper && c >= up_lo + delta && c <= up_hi + delta) return c - delta;
    if (!to_upper && c >= up_lo && c <= up_hi) return c + delta;
    return 0;
  };
  if (c < 0x80) return shift('A', 'Z', 0x20);
  if (c < 0x100) {
    if (c == 0xD7 || c == 0xF7) return 0;
    if (to_upper && c == 0xFF) return 0x178;
    if (to_upper && c == 0xB5) return 0x39C;
    return shift(0xC0, 0xDE, 0x20);
  }
  if (c < 0x180) {
    if (c == 0x178) return to_upper ? 0 : 0xFF;
    if (c == 0x17F) return to_upper ? 'S' : 0;
    if (c == 0x131) return to_upper ? 'I' : 0;
    if (char32_t r = even_odd(0x100, 0x12F)) return r;
    if (char32_t r = even_odd(0x132, 0x137)) return r;
    if (char32_t r = odd_even(0x139, 0x148)) return r;
    if (char32_t r = even_odd(0x14A, 0x177)) return r;
    return odd_even(0x179, 0x17E);
  }
  if (c >= 0x370 && c < 0x400) {  // Greek
    if (c == 0x3A2) return 0;
    if (c == 0x3C2) return to_upper ? 0x3A3 : 0;
    if (c == 0x386) return to_upper ? 0 : 0x3AC;
    if (c == 0x3AC) return to_upper ? 0x386 : 0;
    if (c == 0x38C) return to_upper ? 0 : 0x3CC;
    if (c == 0x3CC) return to_upper ? 0x38C : 0;
    if (char32_t r = shift(0x388, 0x38A, 0x25)) return r;
    if (char32_t r = shift(0x38E, 0x38F, 0x3F)) return r;
    return shift(0x391, 0x3AB, 0x20);
  }
  if (c >= 0x400 && c < 0x530) {  // Cyrillic
    if (char32_t r = shift(0x410, 0x42F, 0x20)) return r;
    if (char32_t r = shift(0x400, 0x40F, 0x50)) return r;
    if (c == 0x4C0) return to_upper ? 0 : 0x4CF;
    if (c == 0x4CF) return to_upper ? 0x4C0 : 0;
    if (char32_t r = even_odd(0x460, 0x481)) return r;
    if (char32_t r = even_odd(0x48A, 0x4BF)) return r;
    if (char32_t r = odd_even(0x4C1, 0x4CE)) return r;
    return even_odd(0x4D0, 0x52F);
  }
  if (c >= 0x531 && c <= 0x586) return shift(0x531, 0x556, 0x30);  // Armenian
  if (c >= 0x1E00 && c <= 0x1EFF) {                                 // Latin Extended Additional
    if (char32_t r = even_odd(0x1E00, 0x1E95)) return r;
    return even_odd(0x1EA0, 0x1EFF);
  }
  if (c >= 0xFF21 && c <= 0xFF5A) return shift(0xFF21, 0xFF3A, 0x20);  // fullwidth Latin
  return 0;
}

bool in_ranges(char32_t c, std::initializer_list<std::pair<char32_t, char32_t>> ranges) {
  for (auto [lo, hi] : ranges)
    if (c >= lo && c <= hi) return true;
  return false;
}

}  // namespace

bool is_upper(char32_t c) { return pair_case(c, false) != 0 || c == 0x130; }
bool is_lower(char32_t c) { return pair_case(c, true) != 0 || c == 0xDF || c == 0x149; }

void append_upper(std::string& out, char32_t c) {
  if (c == 0xDF) {
    out += "SS";
  } else if (c == 0x149) {
    append(out, 0x2BC);
    out += 'N';
  } else if (char32_t u = pair_case(c, true)) {
    append(out, u);
  } else {
    append(out, c);
  }
}

void append_lower(std::string& out, char32_t c) {
  if (c == 0x130) {  // İ → i + combining dot above, as Python does
    out += 'i';
    append(out, 0x307);
  } else if (char32_t l = pair_case(c, false)) {
    append(out, l);
  } else {
    append(out, c);
  }
}

bool is_alpha(char32_t c) {
  if (c < 0x80) return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
  if (is_upper(c) || is_lower(c)) return true;
  return c == 0xAA || c == 0xBA || c == 0x138 ||
         in_ranges(c, {{0x3040, 0x30FF}, {0x3400, 0x4DBF}, {0x4E00, 0x9FFF}, {0xAC00, 0xD7AF}, {0x05D0, 0x05EA},
                       {0x0620, 0x064A}, {0x0904, 0x0939}, {0x0E01, 0x0E30}, {0xF900, 0xFAFF}, {0x20000, 0x2FA1F}});
}

bool is_digit(char32_t c) { return c >= '0' && c <= '9'; }
bool is_alnum(char32_t c) { return is_alpha(c) || is_digit(c); }

bool is_word(char32_t c) {
  if (c < 0x80) return is_alnum(c) || c == '_';
  if (is_space(c) || !is_printable(c)) return false;
  if (c < 0x100) return is_alpha(c) || c == 0xB2 || c == 0xB3 || c == 0xB9 || (c >= 0xBC && c <= 0xBE);
  return !in_ranges(c, {{0x2000, 0x206F}, {0x20A0, 0x20CF}, {0x2100, 0x2BFF}, {0x3000, 0x303F}, {0xFF00, 0xFF0F},
                        {0xFF1A, 0xFF20}, {0xFF3B, 0xFF40}, {0xFF5B, 0xFF65}, {0x1F000, 0x1FAFF}});
}

bool is_printable(char32_t c) {
  if (c < 0x20 || (c >= 0x7F && c <= 0xA0) || c == 0xAD) return false;
  if (c < 0x600) return true;
  if (is_space(c)) return false;  // Zs, Zl, Zp other than ' '
  return !in_ranges(c, {{0x600, 0x605},     {0x61C, 0x61C},     {0x6DD, 0x6DD},     {0x70F, 0x70F},
                        {0x180E, 0x180E},   {0x200B, 0x200F},   {0x202A, 0x202E},   {0x2060, 0x2064},
                        {0x2066, 0x206F},   {0xD800, 0xF8FF},   {0xFDD0, 0xFDEF},   {0xFEFF, 0xFEFF},
                        {0xFFF9, 0xFFFB},   {0xFFFE, 0xFFFF},   {0x110BD, 0x110BD}, {0x1D173, 0x1D17A},
                        {0xE0001, 0xE0001}, {0xE0020, 0xE007F}, {0xF0000, 0x10FFFF}});
}

std::string upper(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size();) append_upper(out, next(s, i));
  return out;
}

std::string lower(std::string_view s) {
  const std::vector<char32_t> cps = decode(s);
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < cps.size(); ++i) {
    // Python's Final_Sigma rule: Σ becomes ς at the end of a word (cased letter before, none after).
    if (cps[i] == 0x3A3) {
      const bool before = i > 0 && (is_upper(cps[i - 1]) || is_lower(cps[i - 1]));
      const bool after = i + 1 < cps.size() && (is_upper(cps[i + 1]) || is_lower(cps[i + 1]));
      append(out, before && !after ? 0x3C2 : 0x3C3);
      continue;
    }
    append_lower(out, cps[i]);
  }
  return out;
}

std::string strip(std::string_view s, bool left, bool right, const std::string* chars) {
  const std::vector<char32_t> cps = decode(s);
  std::vector<char32_t> set;
  if (chars) set = decode(*chars);
  auto strip_it = [&](char32_t c) {
    return chars ? std::find(set.begin(), set.end(), c) != set.end() : is_space(c);
  };
  size_t b = 0, e = cps.size();
  if (left)
    while (b < e && strip_it(cps[b])) ++b;
  if (right)
    while (e > b && strip_it(cps[e - 1])) --e;
  return encode(cps, b, e);
}

std::string repr(std::string_view s) {
  const bool has_single = s.find('\'') != std::string_view::npos;
  const bool has_double = s.find('"') != std::string_view::npos;
  const char quote = has_single && !has_double ? '"' : '\'';
  std::string out(1, quote);
  for (size_t i = 0; i < s.size();) {
    const char32_t c = next(s, i);
    if (c == char32_t(quote) || c == '\\') {
      out += '\\';
      out += char(c);
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '\r') {
      out += "\\r";
    } else if (c == '\t') {
      out += "\\t";
    } else if (is_printable(c)) {
      append(out, c);
    } else {
      static const char* hex = "0123456789abcdef";
      const int digits = c < 0x100 ? 2 : c < 0x10000 ? 4 : 8;
      out += c < 0x100 ? "\\x" : c < 0x10000 ? "\\u" : "\\U";
      for (int k = digits - 1; k >= 0; --k) out += hex[(c >> (4 * k)) & 0xF];
    }
  }
  out += quote;
  return out;
}

}  // namespace gdn::tpl::uni
