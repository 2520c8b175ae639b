#include "template/lexer.h"

#include <algorithm>
#include <cstdlib>
#include <string_view>
#include <tuple>

#include "template/unicode.h"

namespace gdn::tpl {

namespace {

bool is_ident_start(char32_t c) { return c == '_' || uni::is_alpha(c); }
bool is_ident_char(char32_t c) { return c == '_' || uni::is_alnum(c); }

class Lexer {
 public:
  explicit Lexer(const std::string& raw) {
    // Normalise newlines and drop one trailing newline, as jinja2's tokeniter does.
    src_.reserve(raw.size());
    for (size_t i = 0; i < raw.size(); ++i) {
      if (raw[i] == '\r') {
        src_ += '\n';
        if (i + 1 < raw.size() && raw[i + 1] == '\n') ++i;
      } else {
        src_ += raw[i];
      }
    }
    if (!src_.empty() && src_.back() == '\n') src_.pop_back();
  }

  std::vector<Token> run() {
    size_t pos = 0;
    bool line_starting = true;  // the previous match ended with a newline
    while (pos < src_.size()) {
      const size_t p = find_tag(pos);
      if (p == std::string::npos) {
        emit_data(src_.substr(pos), pos);
        break;
      }
      const char kind = src_[p + 1];
      const char sign = p + 2 < src_.size() && (src_[p + 2] == '-' || src_[p + 2] == '+') ? src_[p + 2] : 0;
      size_t raw_end = 0;
      const bool raw = kind == '%' && match_raw_begin(p, raw_end);
      std::string text = src_.substr(pos, p - pos);
      strip_before(text, sign, kind != '{', line_starting);
      emit_data(std::move(text), pos);
      if (raw) {
        line_starting = src_[raw_end - 1] == '\n';
        pos = lex_raw_body(raw_end, line_starting, p);
        line_starting = src_[pos - 1] == '\n';
      } else if (kind == '#') {
        pos = skip_comment(p, p + 2 + (sign ? 1 : 0));
        line_starting = src_[pos - 1] == '\n';
      } else {
        push(kind == '%' ? Tok::BlockBegin : Tok::VarBegin, "", p);
        pos = lex_tag(p + 2 + (sign ? 1 : 0), kind == '%', line_starting);
      }
    }
    push(Tok::Eof, "", src_.size());
    return std::move(out_);
  }

 private:
  [[noreturn]] void fail(const std::string& msg, size_t pos) {
    const auto [line, col] = where(pos);
    throw SyntaxError{msg, line, col};
  }

  // Line and column (in code points) of a byte offset. Tokens come in increasing order, so the
  // common case walks forward from the previous answer instead of rescanning the line.
  std::pair<int, int> where(size_t pos) {
    pos = std::min(pos, src_.size());
    if (pos < cur_pos_) cur_pos_ = 0, cur_line_ = 1, cur_col_ = 1;
    for (; cur_pos_ < pos; ++cur_pos_) {
      const char c = src_[cur_pos_];
      if (c == '\n') {
        ++cur_line_;
        cur_col_ = 1;
      } else if ((static_cast<unsigned char>(c) & 0xC0) != 0x80) {
        ++cur_col_;
      }
    }
    // a position inside a multi-byte character still belongs to that character
    return {cur_line_, cur_col_ - (pos < src_.size() && (static_cast<unsigned char>(src_[pos]) & 0xC0) == 0x80 ? 1 : 0)};
  }

  void push(Tok t, std::string text, size_t pos) {
    Token tok{t, std::move(text)};
    std::tie(tok.line, tok.col) = where(pos);
    out_.push_back(std::move(tok));
  }

  void emit_data(std::string text, size_t pos) {
    if (!text.empty()) push(Tok::Data, std::move(text), pos);
  }

  bool at(size_t pos, std::string_view s) const { return src_.compare(pos, s.size(), s) == 0; }

  // Length of the run of (Unicode) whitespace at pos.
  size_t space_run(size_t pos) const {
    size_t i = pos;
    while (i < src_.size()) {
      size_t j = i;
      if (!uni::is_space(uni::next(src_, j))) break;
      i = j;
    }
    return i - pos;
  }

  size_t find_tag(size_t pos) const {
    for (size_t p = src_.find('{', pos); p != std::string::npos; p = src_.find('{', p + 1))
      if (p + 1 < src_.size() && (src_[p + 1] == '{' || src_[p + 1] == '%' || src_[p + 1] == '#')) return p;
    return std::string::npos;
  }

  // `{%[-+]?\s*raw\s*(-%}\s*|%})` at p; sets `end` past the match.
  bool match_raw_begin(size_t p, size_t& end) const {
    size_t i = p + 2;
    if (i < src_.size() && (src_[i] == '-' || src_[i] == '+')) ++i;
    i += space_run(i);
    if (!at(i, "raw")) return false;
    i += 3;
    i += space_run(i);
    if (at(i, "-%}")) {
      end = i + 3 + space_run(i + 3);
      return true;
    }
    if (at(i, "%}")) {
      end = i + 2;
      return true;
    }
    return false;
  }

  // The whitespace control jinja2 applies to the text before a tag (`OptionalLStrip`).
  void strip_before(std::string& text, char sign, bool lstrip_applies, bool line_starting) const {
    if (sign == '-') {
      text = uni::strip(text, false, true, nullptr);
    } else if (sign != '+' && lstrip_applies) {
      const size_t nl = text.rfind('\n');
      const size_t l_pos = nl == std::string::npos ? 0 : nl + 1;
      if ((l_pos > 0 || line_starting) && l_pos < text.size()) {
        bool all_space = true;
        for (size_t i = l_pos; i < text.size() && all_space;) all_space = uni::is_space(uni::next(text, i));
        if (all_space) text.resize(l_pos);
      }
    }
  }

  // Content of {% raw %}...{% endraw %}, returned verbatim as data.
  size_t lex_raw_body(size_t start, bool line_starting, size_t begin_pos) {
    for (size_t p = src_.find("{%", start); p != std::string::npos; p = src_.find("{%", p + 1)) {
      size_t i = p + 2;
      const char sign = i < src_.size() && (src_[i] == '-' || src_[i] == '+') ? src_[i] : 0;
      if (sign) ++i;
      i += space_run(i);
      if (!at(i, "endraw")) continue;
      i += 6;
      i += space_run(i);
      size_t end;
      if (at(i, "+%}")) {
        end = i + 3;
      } else if (at(i, "-%}")) {
        end = i + 3 + space_run(i + 3);
      } else if (at(i, "%}")) {
        end = i + 2 + (at(i + 2, "\n") ? 1 : 0);
      } else {
        continue;
      }
      std::string text = src_.substr(start, p - start);
      strip_before(text, sign, true, line_starting);
      emit_data(std::move(text), start);
      return end;
    }
    fail("Missing end of raw directive", begin_pos);
  }

  size_t skip_comment(size_t begin, size_t pos) {
    for (size_t i = pos; i + 1 < src_.size(); ++i) {
      if ((src_[i] == '+' || src_[i] == '-') && at(i + 1, "#}")) {
        return src_[i] == '+' ? i + 3 : i + 3 + space_run(i + 3);
      }
      if (at(i, "#}")) return i + 2 + (at(i + 2, "\n") ? 1 : 0);
    }
    fail("Missing end of comment tag", begin);
  }

  // Tokens inside {% ... %} or {{ ... }}; returns the position after the closing delimiter.
  size_t lex_tag(size_t pos, bool block, bool& line_starting) {
    std::vector<char> brackets;
    while (pos < src_.size()) {
      if (brackets.empty()) {
        size_t end = 0;
        if (block && at(pos, "+%}")) {
          end = pos + 3;
        } else if (block && at(pos, "-%}")) {
          end = pos + 3 + space_run(pos + 3);
        } else if (block && at(pos, "%}")) {
          end = pos + 2 + (at(pos + 2, "\n") ? 1 : 0);  // trim_blocks
        } else if (!block && at(pos, "-}}")) {
          end = pos + 3 + space_run(pos + 3);
        } else if (!block && at(pos, "}}")) {
          end = pos + 2;
        }
        if (end) {
          push(block ? Tok::BlockEnd : Tok::VarEnd, "", pos);
          line_starting = src_[end - 1] == '\n';
          return end;
        }
      }
      if (size_t n = space_run(pos)) {
        pos += n;
        continue;
      }
      const char c = src_[pos];
      if (std::isdigit(static_cast<unsigned char>(c))) {
        pos = lex_number(pos);
      } else if (c == '\'' || c == '"') {
        pos = lex_string(pos);
      } else {
        size_t j = pos;
        const char32_t cp = uni::next(src_, j);
        if (is_ident_start(cp)) {
          size_t e = j;
          while (e < src_.size()) {
            size_t k = e;
            if (!is_ident_char(uni::next(src_, k))) break;
            e = k;
          }
          push(Tok::Name, src_.substr(pos, e - pos), pos);
          pos = e;
        } else {
          pos = lex_operator(pos, brackets);
        }
      }
    }
    push(Tok::Eof, "", src_.size());  // the parser reports the unclosed tag
    return src_.size();
  }

  size_t lex_operator(size_t pos, std::vector<char>& brackets) {
    static const char* two[] = {"//", "**", "==", "!=", ">=", "<="};
    for (const char* op : two)
      if (at(pos, op)) {
        push(Tok::Operator, op, pos);
        return pos + 2;
      }
    const char c = src_[pos];
    if (std::string_view("+-/*%~[](){}><=.:|,;").find(c) == std::string_view::npos) {
      size_t j = pos;
      std::string ch;
      uni::append(ch, uni::next(src_, j));
      fail("unexpected char '" + ch + "' at " + std::to_string(pos), pos);
    }
    if (c == '(' || c == '[' || c == '{') {
      brackets.push_back(c == '(' ? ')' : c == '[' ? ']' : '}');
    } else if (c == ')' || c == ']' || c == '}') {
      if (brackets.empty()) fail(std::string("unexpected '") + c + "'", pos);
      if (brackets.back() != c) fail(std::string("unexpected '") + c + "', expected '" + brackets.back() + "'", pos);
      brackets.pop_back();
    }
    push(Tok::Operator, std::string(1, c), pos);
    return pos + 1;
  }

  // Digits with optional single underscores between them ("1_000").
  size_t digits(size_t i, int base = 10) const {
    auto ok = [&](char ch) {
      if (base == 16) return std::isxdigit(static_cast<unsigned char>(ch)) != 0;
      return ch >= '0' && ch < char('0' + base);
    };
    size_t e = i;
    while (e < src_.size()) {
      if (ok(src_[e])) {
        ++e;
      } else if (src_[e] == '_' && e > i && e + 1 < src_.size() && ok(src_[e + 1])) {
        ++e;
      } else {
        break;
      }
    }
    return e;
  }

  size_t lex_number(size_t pos) {
    auto clean = [&](size_t b, size_t e) {
      std::string s = src_.substr(b, e - b);
      s.erase(std::remove(s.begin(), s.end(), '_'), s.end());
      return s;
    };
    // Float: digits ('.' digits)? (e[+-]?digits)?, with a fraction or an exponent; not right
    // after a '.' (so `x.0.1` stays attribute access).
    const bool after_dot = pos > 0 && src_[pos - 1] == '.';
    size_t e = digits(pos);
    size_t f = e;
    bool is_float = false;
    if (!after_dot) {
      if (f < src_.size() && src_[f] == '.' && f + 1 < src_.size() && std::isdigit(static_cast<unsigned char>(src_[f + 1]))) {
        f = digits(f + 1);
        is_float = true;
      }
      if (f < src_.size() && (src_[f] == 'e' || src_[f] == 'E')) {
        size_t g = f + 1;
        if (g < src_.size() && (src_[g] == '+' || src_[g] == '-')) ++g;
        if (g < src_.size() && std::isdigit(static_cast<unsigned char>(src_[g]))) {
          f = digits(g);
          is_float = true;
        }
      }
    }
    if (is_float) {
      Token t{Tok::Float, src_.substr(pos, f - pos)};
      t.fval = std::strtod(clean(pos, f).c_str(), nullptr);
      std::tie(t.line, t.col) = where(pos);
      out_.push_back(std::move(t));
      return f;
    }
    int base = 10;
    size_t start = pos;
    if (src_[pos] == '0' && pos + 1 < src_.size()) {
      const char b = char(std::tolower(static_cast<unsigned char>(src_[pos + 1])));
      base = b == 'x' ? 16 : b == 'o' ? 8 : b == 'b' ? 2 : 10;
      if (base != 10) {
        start = pos + 2;
        if (start < src_.size() && src_[start] == '_') ++start;
        e = digits(start, base);
        if (e == start) fail("invalid integer literal", pos);
      } else {  // "0", "00", "0_0": leading zeros only
        e = pos + 1;
        while (e < src_.size() && (src_[e] == '0' || (src_[e] == '_' && e + 1 < src_.size() && src_[e + 1] == '0'))) ++e;
      }
    }
    const std::string text = clean(start, e);
    errno = 0;
    char* endp = nullptr;
    const unsigned long long v = std::strtoull(text.c_str(), &endp, base);
    if (errno == ERANGE || v > uint64_t(INT64_MAX)) fail("integer literal too large", pos);
    Token t{Tok::Integer, src_.substr(pos, e - pos)};
    t.ival = int64_t(v);
    std::tie(t.line, t.col) = where(pos);
    out_.push_back(std::move(t));
    return e;
  }

  size_t lex_string(size_t pos) {
    const char q = src_[pos];
    size_t i = pos + 1;
    while (i < src_.size() && src_[i] != q) i += src_[i] == '\\' ? 2 : 1;
    if (i >= src_.size()) fail("unexpected char '" + std::string(1, q) + "' at " + std::to_string(pos), pos);
    Token t{Tok::String, decode_string(src_.substr(pos + 1, i - pos - 1), pos)};
    std::tie(t.line, t.col) = where(pos);
    out_.push_back(std::move(t));
    return i + 1;
  }

  // jinja2: value.encode("ascii", "backslashreplace").decode("unicode-escape").
  std::string decode_string(const std::string& body, size_t pos) {
    std::string ascii;
    for (size_t i = 0; i < body.size();) {
      const char32_t c = uni::next(body, i);
      if (c < 0x80) {
        ascii += char(c);
      } else {
        char buf[16];
        std::snprintf(buf, sizeof buf, c < 0x100 ? "\\x%02x" : c < 0x10000 ? "\\u%04x" : "\\U%08x", unsigned(c));
        ascii += buf;
      }
    }
    std::string out;
    auto hex = [&](size_t i, int n) -> char32_t {
      if (i + size_t(n) > ascii.size()) fail("truncated escape in string literal", pos);
      char32_t v = 0;
      for (int k = 0; k < n; ++k) {
        const char ch = ascii[i + size_t(k)];
        if (!std::isxdigit(static_cast<unsigned char>(ch))) fail("truncated escape in string literal", pos);
        v = v * 16 + char32_t(std::isdigit(static_cast<unsigned char>(ch)) ? ch - '0' : std::tolower(ch) - 'a' + 10);
      }
      return v;
    };
    auto put = [&](char32_t c) {
      if (c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF)) fail("invalid code point in string literal", pos);
      uni::append(out, c);
    };
    for (size_t i = 0; i < ascii.size(); ++i) {
      const char c = ascii[i];
      if (c != '\\' || i + 1 >= ascii.size()) {
        out += c;
        continue;
      }
      const char e = ascii[++i];
      switch (e) {
        case '\n': break;  // line continuation
        case '\\': out += '\\'; break;
        case '\'': out += '\''; break;
        case '"': out += '"'; break;
        case 'a': out += '\a'; break;
        case 'b': out += '\b'; break;
        case 'f': out += '\f'; break;
        case 'n': out += '\n'; break;
        case 'r': out += '\r'; break;
        case 't': out += '\t'; break;
        case 'v': out += '\v'; break;
        case 'x': put(hex(i + 1, 2)), i += 2; break;
        case 'u': put(hex(i + 1, 4)), i += 4; break;
        case 'U': put(hex(i + 1, 8)), i += 8; break;
        case 'N': fail("\\N{...} escapes are not supported", pos);
        default:
          if (e >= '0' && e <= '7') {
            char32_t v = char32_t(e - '0');
            for (int k = 0; k < 2 && i + 1 < ascii.size() && ascii[i + 1] >= '0' && ascii[i + 1] <= '7'; ++k)
              v = v * 8 + char32_t(ascii[++i] - '0');
            put(v);
          } else {  // unknown escapes are kept as written
            out += '\\';
            out += e;
          }
      }
    }
    return out;
  }

  std::string src_;
  std::vector<Token> out_;
  size_t cur_pos_ = 0;  // where() cache
  int cur_line_ = 1, cur_col_ = 1;
};

}  // namespace

std::vector<Token> tokenize(const std::string& source) { return Lexer(source).run(); }

std::string describe(const Token& t) {
  switch (t.type) {
    case Tok::Data: return "template data";
    case Tok::VarBegin: return "begin of print statement";
    case Tok::VarEnd: return "end of print statement";
    case Tok::BlockBegin: return "begin of statement block";
    case Tok::BlockEnd: return "end of statement block";
    case Tok::Eof: return "end of template";
    case Tok::String: return "string";
    case Tok::Integer: return "integer";
    case Tok::Float: return "float";
    default: return "'" + t.text + "'";
  }
}

}  // namespace gdn::tpl
