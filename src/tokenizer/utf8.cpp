#include "tokenizer/utf8.h"

#include <utf8proc.h>

#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <vector>

#include "core/error.h"

namespace gdn::tok {

namespace {

// How the bytes at s[i] begin: a complete valid sequence (len > 0, valid), a maximal invalid
// subpart that can already be replaced (len > 0, !valid), or a valid prefix cut off by the end
// of `s` (len == 0). Ranges are Unicode Table 3-7 ("well-formed UTF-8 byte sequences").
struct Seq {
  size_t len;
  bool valid;
};

inline Seq classify(std::string_view s, size_t i) {
  const auto b0 = uint8_t(s[i]);
  if (b0 < 0x80) return {1, true};
  int n;
  uint8_t lo = 0x80, hi = 0xBF;  // allowed range of the second byte
  if (b0 >= 0xC2 && b0 <= 0xDF) {
    n = 2;
  } else if (b0 >= 0xE0 && b0 <= 0xEF) {
    n = 3;
    if (b0 == 0xE0) lo = 0xA0;
    if (b0 == 0xED) hi = 0x9F;  // no UTF-16 surrogates
  } else if (b0 >= 0xF0 && b0 <= 0xF4) {
    n = 4;
    if (b0 == 0xF0) lo = 0x90;  // no overlongs
    if (b0 == 0xF4) hi = 0x8F;  // nothing above U+10FFFF
  } else {
    return {1, false};  // continuation byte, C0/C1 (always overlong) or F5..FF
  }
  for (int k = 1; k < n; ++k) {
    if (i + size_t(k) >= s.size()) return {0, false};
    const auto b = uint8_t(s[i + size_t(k)]);
    const bool ok = k == 1 ? (b >= lo && b <= hi) : (b >= 0x80 && b <= 0xBF);
    // Rust replaces the valid prefix before the offending byte as one U+FFFD; the offending
    // byte starts the next sequence.
    if (!ok) return {size_t(k), false};
  }
  return {size_t(n), true};
}

constexpr char kReplacement[] = "\xEF\xBF\xBD";  // U+FFFD

// Skips a run of ASCII bytes eight at a time (most text is mostly ASCII).
inline size_t skip_ascii(std::string_view s, size_t i) {
  while (i + 8 <= s.size()) {
    uint64_t w;
    std::memcpy(&w, s.data() + i, 8);
    if (w & 0x8080808080808080ull) break;
    i += 8;
  }
  while (i < s.size() && uint8_t(s[i]) < 0x80) ++i;
  return i;
}

}  // namespace

bool is_valid_utf8(std::string_view s) {
  size_t i = 0;
  while ((i = skip_ascii(s, i)) < s.size()) {
    const Seq q = classify(s, i);
    if (!q.valid) return false;
    i += q.len;
  }
  return true;
}

size_t append_utf8_decided(std::string_view s, std::string& out) {
  size_t i = 0;
  while (i < s.size()) {
    const size_t j = skip_ascii(s, i);
    out.append(s.data() + i, j - i);
    i = j;
    if (i == s.size()) break;
    const Seq q = classify(s, i);
    if (q.len == 0) break;  // incomplete: wait for more bytes
    if (q.valid)
      out.append(s.data() + i, q.len);
    else
      out.append(kReplacement);
    i += q.len;
  }
  return i;
}

void append_utf8_lossy(std::string_view s, std::string& out) {
  const size_t used = append_utf8_decided(s, out);
  // At the very end a cut-off valid prefix is one maximal invalid subpart: one U+FFFD.
  if (used < s.size()) out.append(kReplacement);
}

char32_t prev_code_point(std::string_view s, size_t end, size_t& start) {
  start = end - 1;
  while (start > 0 && (uint8_t(s[start]) & 0xC0) == 0x80) --start;
  size_t i = start;
  return next_code_point(s, i);
}

namespace {

// Code points at which NFC text can be cut and copied unchanged: combining class 0, NFC maps the
// character to itself, and it never combines with a preceding character (not NFC_QC=Maybe).
// Text made only of these is in NFC, and a boundary sits before each of them.
bool compute_nfc_safe(char32_t c) {
  const utf8proc_property_t* p = utf8proc_get_property(utf8proc_int32_t(c));
  if (p->combining_class != 0) return false;
  if (p->comb_index != UINT16_MAX && (p->comb_index & 0x8000)) return false;  // may be a composition's second
  if ((c >= 0x1161 && c <= 0x1175) || (c >= 0x11A8 && c <= 0x11C2)) return false;  // Hangul V and T jamo
  if (p->decomp_seqindex != UINT16_MAX && p->decomp_type == 0) {  // has a canonical decomposition
    utf8proc_uint8_t enc[4];
    const auto n = utf8proc_encode_char(utf8proc_int32_t(c), enc);
    utf8proc_uint8_t* r = nullptr;
    const auto m = utf8proc_map(enc, n, &r, utf8proc_option_t(UTF8PROC_STABLE | UTF8PROC_COMPOSE));
    const bool same = m == n && std::memcmp(r, enc, size_t(n)) == 0;
    std::free(r);
    return same;
  }
  return true;
}

// Characters assigned after Unicode 9.0 that utf8proc would compose, decompose or reorder.
// tokenizers' NFC (crate unicode-normalization-alignments, Unicode 9.0 tables) treats them as
// unassigned: inert starters that nothing combines with. We copy them unchanged and normalise
// the text on either side separately, which reproduces the reference exactly (by Unicode's
// stability policy nothing else differs between the two versions for older characters).
constexpr char32_t kNewerThanUnicode9[][2] = {
#include "tokenizer/nfc_unicode9.inc"
};

bool newer_than_unicode9(char32_t c) {
  for (const auto& r : kNewerThanUnicode9)
    if (c >= r[0] && c <= r[1]) return true;
  return false;
}

enum NfcKind : uint8_t { kUnsafe, kSafe, kInert };

constexpr char32_t kTableLimit = 0x30000;  // planes 0-2; beyond it every character is checked directly

NfcKind nfc_kind_uncached(char32_t c) {
  if (newer_than_unicode9(c)) return kInert;
  return compute_nfc_safe(c) ? kSafe : kUnsafe;
}

const std::vector<uint8_t>& nfc_kind_table() {
  static const std::vector<uint8_t> table = [] {
    std::vector<uint8_t> t(kTableLimit);
    for (char32_t c = 0; c < kTableLimit; ++c) t[c] = (c >= 0xD800 && c <= 0xDFFF) ? kSafe : nfc_kind_uncached(c);
    return t;
  }();
  return table;
}

void append_nfc_slow(std::string_view s, std::string& out) {
  if (s.empty()) return;
  utf8proc_uint8_t* r = nullptr;
  const auto n = utf8proc_map(reinterpret_cast<const utf8proc_uint8_t*>(s.data()), utf8proc_ssize_t(s.size()), &r,
                              utf8proc_option_t(UTF8PROC_STABLE | UTF8PROC_COMPOSE));
  if (n < 0) {
    if (n == UTF8PROC_ERROR_NOMEM) throw std::bad_alloc();
    // Only valid UTF-8 reaches here (the encoder repairs its input first).
    GDN_CHECK(false, "utf8proc_map failed: {}", utf8proc_errmsg(n));
  }
  out.append(reinterpret_cast<const char*>(r), size_t(n));
  std::free(r);
}

}  // namespace

void append_nfc(std::string_view s, std::string& out) {
  const size_t ascii_end = skip_ascii(s, 0);
  if (ascii_end == s.size()) {  // pure ASCII is always NFC
    out.append(s);
    return;
  }
  const std::vector<uint8_t>& kinds = nfc_kind_table();
  // Normalise only the stretches around unsafe characters: from the last safe character before
  // them up to the next safe character (NFC cannot reach across a safe character's left edge),
  // and never across an inert one (see kNewerThanUnicode9).
  size_t copied = 0, last_safe = 0, i = ascii_end;
  bool dirty = false;
  if (ascii_end > 0) last_safe = ascii_end - 1;
  while (i < s.size()) {
    const size_t start = i;
    const char32_t c = next_code_point(s, i);
    const uint8_t kind = c < 0x80 ? kSafe : c < kTableLimit ? kinds[c] : nfc_kind_uncached(c);
    if (kind == kUnsafe) {
      dirty = true;
      continue;
    }
    if (dirty) {
      out.append(s.data() + copied, last_safe - copied);
      append_nfc_slow(s.substr(last_safe, start - last_safe), out);
      copied = start;
      dirty = false;
    }
    last_safe = kind == kInert ? i : start;  // an inert character is a boundary after it, too
  }
  if (dirty) {
    out.append(s.data() + copied, last_safe - copied);
    append_nfc_slow(s.substr(last_safe), out);
  } else {
    out.append(s.data() + copied, s.size() - copied);
  }
}

}  // namespace gdn::tok
