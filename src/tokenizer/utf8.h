// UTF-8 helpers of the tokenizer: validation, the lossy repair that Rust's
// String::from_utf8_lossy performs (the reference decodes with it, and we apply it to invalid
// encoder input), the streaming "how much of this buffer is decided" split used by StreamDecoder,
// Unicode White_Space, and NFC through utf8proc.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace gdn::tok {

// True when `s` is well-formed UTF-8 (Unicode Table 3-7: no overlongs, no surrogates, ≤ U+10FFFF).
bool is_valid_utf8(std::string_view s);

// Appends `s` to `out`, replacing each maximal invalid subpart with U+FFFD exactly as Rust's
// String::from_utf8_lossy does (e.g. F0 9F 98 41 → U+FFFD 'A'; ED A0 80 → three U+FFFD).
void append_utf8_lossy(std::string_view s, std::string& out);

// Streaming form of append_utf8_lossy: appends to `out` everything of `s` whose repair no longer
// depends on later bytes, and returns how many bytes of `s` were consumed. What is left is a
// valid but incomplete sequence (at most 3 bytes) that the next bytes may complete. Feeding the
// leftovers followed by more bytes again, and finally append_utf8_lossy on the rest, yields
// exactly append_utf8_lossy of the whole byte string.
size_t append_utf8_decided(std::string_view s, std::string& out);

// Decodes the code point starting at s[i] of a VALID UTF-8 string; advances i.
inline char32_t next_code_point(std::string_view s, size_t& i) {
  const auto b0 = uint8_t(s[i]);
  if (b0 < 0x80) {
    ++i;
    return b0;
  }
  const int n = b0 >= 0xF0 ? 4 : b0 >= 0xE0 ? 3 : 2;
  char32_t c = b0 & (0x7F >> n);
  for (int k = 1; k < n; ++k) c = (c << 6) | (uint8_t(s[i + size_t(k)]) & 0x3F);
  i += size_t(n);
  return c;
}

// Decodes the code point ending at s[end-1] of a VALID UTF-8 string; `start` receives its offset.
char32_t prev_code_point(std::string_view s, size_t end, size_t& start);

// Unicode White_Space (what Rust's regex `\s` and Oniguruma's `\s` match).
inline bool is_white_space(char32_t c) {
  return (c >= 0x09 && c <= 0x0D) || c == 0x20 || c == 0x85 || c == 0xA0 || c == 0x1680 ||
         (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}

// Appends the NFC form of the valid UTF-8 string `s` to `out`. Text that NFC provably leaves
// unchanged (ASCII, and text without combining marks, decomposable or composable characters —
// most CJK, Cyrillic, …) is copied without calling utf8proc.
void append_nfc(std::string_view s, std::string& out);

}  // namespace gdn::tok
