#include "tokenizer/regex.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <memory>
#include <new>

#include "core/error.h"

namespace gdn::tok {

namespace {

// {name, PCRE2 class body matching what Oniguruma matches, code points of that body to exclude}
struct ClassSpelling {
  const char* name;
  const char* body;
  const char* minus;
};
constexpr ClassSpelling kClasses[] = {
#include "tokenizer/regex_unicode.inc"
};

const ClassSpelling* find_class(std::string_view name) {
  for (const ClassSpelling& c : kClasses)
    if (name == c.name) return &c;
  return nullptr;
}

// PCRE2 spelling of class `c` (negated or not), inside or outside a [...] set.
std::string spell(const ClassSpelling& c, bool negated, bool in_set, std::string_view original) {
  const std::string body = c.body, minus = c.minus;
  if (in_set) {
    if (!negated) return body;  // (an exclusion cannot be expressed inside a set; only \p{Mn} has one)
    if (std::string_view(c.name) == "s") return "\\P{White_Space}";
    return std::string(original);  // e.g. [^\D]: PCRE2's own tables, rare in tokenizer patterns
  }
  if (!negated) return minus.empty() ? "[" + body + "]" : "(?:(?![" + minus + "])[" + body + "])";
  return minus.empty() ? "[^" + body + "]" : "(?:[^" + body + "]|[" + minus + "])";
}

}  // namespace

std::string translate_regex_for_pcre2(std::string_view p) {
  std::string out;
  out.reserve(p.size() * 4);
  bool in_set = false;
  for (size_t i = 0; i < p.size(); ++i) {
    const char ch = p[i];
    if (ch == '[' && !in_set) {  // a set starts; a ']' right after '[' or '[^' is a literal
      in_set = true;
      out += ch;
      if (i + 1 < p.size() && p[i + 1] == '^') out += p[++i];
      if (i + 1 < p.size() && p[i + 1] == ']') out += p[++i];
      continue;
    }
    if (ch == '[' && in_set && i + 1 < p.size() && p[i + 1] == ':') {  // POSIX [:alpha:] inside a set
      const size_t e = p.find(":]", i + 2);
      if (e != std::string_view::npos) {
        out += p.substr(i, e + 2 - i);
        i = e + 1;
        continue;
      }
    }
    if (ch == ']' && in_set) in_set = false;
    if (ch != '\\' || i + 1 == p.size()) {
      out += ch;
      continue;
    }
    const size_t esc_start = i;
    const char e = p[++i];
    const ClassSpelling* cls = nullptr;
    bool negated = false;
    if (e == 'd' || e == 'w' || e == 's' || e == 'D' || e == 'W' || e == 'S') {
      const char lower = char(e | 0x20);
      cls = find_class(std::string_view(&lower, 1));
      negated = e != lower;
    } else if ((e == 'p' || e == 'P') && i + 1 < p.size()) {
      negated = e == 'P';
      std::string_view name;
      if (p[i + 1] == '{') {
        const size_t close = p.find('}', i + 2);
        if (close != std::string_view::npos) {
          name = p.substr(i + 2, close - i - 2);
          if (!name.empty() && name[0] == '^') negated = !negated, name.remove_prefix(1);  // Oniguruma's \p{^L}
          if ((cls = find_class(name))) i = close;
        }
      } else if ((cls = find_class(p.substr(i + 1, 1)))) {  // \pL
        ++i;
      }
    }
    if (cls)
      out += spell(*cls, negated, in_set, p.substr(esc_start, i + 1 - esc_start));
    else
      (out += '\\') += e;  // every other escape (including `\\`) passes through unchanged
  }
  return out;
}

namespace {

// Per-thread match data and JIT stack. PCRE2 match data and JIT stacks must not be shared
// between threads, while compiled code can be.
struct ThreadScratch {
  pcre2_match_data* md = nullptr;
  pcre2_match_context* mctx = nullptr;
  pcre2_jit_stack* jit_stack = nullptr;
  ThreadScratch() {
    md = pcre2_match_data_create(1, nullptr);
    mctx = pcre2_match_context_create(nullptr);
    // Backtracking over a long run (e.g. \s*[\r\n]+ against 100k spaces) needs more than the
    // default 32 KiB; the stack grows on demand up to 256 MiB.
    jit_stack = pcre2_jit_stack_create(64 * 1024, 256 * 1024 * 1024, nullptr);
    if (!md || !mctx || !jit_stack) throw std::bad_alloc();
    pcre2_jit_stack_assign(mctx, nullptr, jit_stack);
  }
  ~ThreadScratch() {
    pcre2_jit_stack_free(jit_stack);
    pcre2_match_context_free(mctx);
    pcre2_match_data_free(md);
  }
};

ThreadScratch& scratch() {
  thread_local ThreadScratch s;
  return s;
}

std::string pcre2_message(int code) {
  PCRE2_UCHAR buf[256];
  pcre2_get_error_message(code, buf, sizeof buf);
  return reinterpret_cast<const char*>(buf);
}

}  // namespace

Regex::Regex(std::string_view pattern, const std::string& where) : where_(where) {
  const std::string p = translate_regex_for_pcre2(pattern);
  int err = 0;
  PCRE2_SIZE off = 0;
  code_ = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(p.data()), p.size(), PCRE2_UTF | PCRE2_UCP, &err, &off, nullptr);
  if (!code_) fail_input("{}: regex '{}' does not compile: {} (at offset {})", where, pattern, pcre2_message(err), off);
  jit_ = pcre2_jit_compile(code_, PCRE2_JIT_COMPLETE) == 0;  // the interpreter is the fallback
}

Regex::~Regex() { pcre2_code_free(code_); }

bool Regex::find(std::string_view s, size_t from, size_t& start, size_t& end) const {
  ThreadScratch& t = scratch();
  // The text was validated (or repaired) before it got here, so PCRE2's own UTF check is skipped.
  const auto subject = reinterpret_cast<PCRE2_SPTR>(s.data());
  const int rc = jit_ ? pcre2_jit_match(code_, subject, s.size(), from, PCRE2_NO_UTF_CHECK, t.md, t.mctx)
                      : pcre2_match(code_, subject, s.size(), from, PCRE2_NO_UTF_CHECK, t.md, t.mctx);
  if (rc == PCRE2_ERROR_NOMATCH) return false;
  if (rc < 0) {
    if (rc == PCRE2_ERROR_NOMEMORY || rc == PCRE2_ERROR_JIT_STACKLIMIT) throw std::bad_alloc();
    fail_input("{}: regex matching failed on a {}-byte text: {}", where_, s.size(), pcre2_message(rc));
  }
  const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(t.md);
  start = ov[0];
  end = ov[1];
  return true;
}

bool is_word_char(char32_t c) {
  if (c < 0x80) return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
  static const Regex word("^[\\p{Alphabetic}\\p{M}\\p{Nd}\\p{Pc}\\p{Join_Control}]$", "is_word_char");
  char buf[4];
  size_t n;
  if (c < 0x800) {
    buf[0] = char(0xC0 | (c >> 6)), buf[1] = char(0x80 | (c & 0x3F)), n = 2;
  } else if (c < 0x10000) {
    buf[0] = char(0xE0 | (c >> 12)), buf[1] = char(0x80 | ((c >> 6) & 0x3F)), buf[2] = char(0x80 | (c & 0x3F)), n = 3;
  } else {
    buf[0] = char(0xF0 | (c >> 18)), buf[1] = char(0x80 | ((c >> 12) & 0x3F)), buf[2] = char(0x80 | ((c >> 6) & 0x3F));
    buf[3] = char(0x80 | (c & 0x3F)), n = 4;
  }
  bool hit = false;
  word.for_each_match(std::string_view(buf, n), [&](size_t, size_t) { hit = true; });
  return hit;
}

}  // namespace gdn::tok
