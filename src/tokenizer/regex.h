// The split regex of a tokenizer.json pre-tokenizer, compiled with PCRE2 (UTF + UCP, JIT where
// available) so that it matches what Hugging Face tokenizers' Oniguruma regex matches.
//
// Differences between the two engines that matter for tokenizer patterns, and how we bridge them:
//  * Unicode version: tokenizers 0.22's Oniguruma has Unicode 16.0 tables, Debian 12's PCRE2
//    10.42 Unicode 14.0. Every class escape (\p{L}, \p{N}, \p{M} and their subcategories, \p{P},
//    \p{S}, \d, \w, \s and negations) is rewritten into a PCRE2 set that matches exactly the code
//    points the reference matches: PCRE2's property plus the characters its tables lack
//    (regex_unicode.inc, generated from the reference itself by tools/tokenizer/
//    dump_reference_props.mjs + gen_unicode_props.cpp).
//  * `\s`: Oniguruma matches White_Space; PCRE2 with UCP also U+180E. We use \p{White_Space}.
//  * `\w`: Oniguruma's is Alphabetic, M, Nd, Pc (+ digits like ²); PCRE2's is L, N and '_'.
//  * `(?i:...)`: both fold with Unicode simple case folding (`(?i:'s)` matches "'ſ" in both).
//  Not translated (absent from tokenizer patterns): \h (hex digit in Oniguruma), nested set
//  operations, and negated classes inside a set other than \S.
// Matching is leftmost-first backtracking in both, so alternation order means the same thing.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

struct pcre2_real_code_8;  // pcre2.h stays out of our headers

namespace gdn::tok {

// Rewrites Oniguruma-flavoured `\s` and `\S` for PCRE2 (see above). Exposed for tests.
std::string translate_regex_for_pcre2(std::string_view pattern);

// Rust regex's Unicode `\w` (Alphabetic, M, Nd, Pc, Join_Control): the "word" test of added
// tokens with single_word = true.
bool is_word_char(char32_t c);

class Regex {
 public:
  // Compiles `pattern` (already in Oniguruma syntax, as found in tokenizer.json). Throws
  // InputError naming `where` when PCRE2 rejects it.
  Regex(std::string_view pattern, const std::string& where);
  ~Regex();
  Regex(const Regex&) = delete;
  Regex& operator=(const Regex&) = delete;

  // Calls on_match(start, end) for every non-overlapping match in the valid UTF-8 string `s`,
  // left to right, exactly like the `onig` crate's find_iter that tokenizers uses (an empty match
  // right where the previous match ended is skipped by stepping one character on).
  // Thread-safe: each thread gets its own match data and JIT stack.
  template <typename F>
  void for_each_match(std::string_view s, F&& on_match) const {
    size_t pos = 0, start = 0, end = 0;
    bool have_last = false;
    size_t last_end = 0;
    while (pos <= s.size() && find(s, pos, start, end)) {
      if (start == end && have_last && end == last_end) {
        if (pos >= s.size()) break;
        ++pos;
        while (pos < s.size() && (uint8_t(s[pos]) & 0xC0) == 0x80) ++pos;
        continue;
      }
      on_match(start, end);
      pos = end;
      last_end = end;
      have_last = true;
    }
  }

 private:
  bool find(std::string_view s, size_t from, size_t& start, size_t& end) const;

  pcre2_real_code_8* code_ = nullptr;
  bool jit_ = false;
  std::string where_;
};

}  // namespace gdn::tok
