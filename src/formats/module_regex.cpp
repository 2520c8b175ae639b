#include "formats/module_regex.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <memory>

#include "core/error.h"

namespace gdn {
namespace {

constexpr uint32_t kMaxNesting = 64;           // parenthesized groups inside each other
constexpr uint32_t kMatchLimit = 1'000'000;    // backtracking steps for one name
constexpr uint32_t kDepthLimit = 10'000;       // nested backtracking frames for one name
constexpr uint32_t kHeapLimitKiB = 16 * 1024;  // PCRE2's backtracking frames for one name

std::string pcre2_message(int code) {
  PCRE2_UCHAR buf[256];
  if (pcre2_get_error_message(code, buf, sizeof(buf)) < 0) return "PCRE2 error " + std::to_string(code);
  return reinterpret_cast<const char*>(buf);
}

// The pattern as messages show it: long ones cut to their first 80 bytes.
std::string shown(const std::string& pattern) {
  return pattern.size() <= 80 ? pattern : pattern.substr(0, 80) + "... (" + std::to_string(pattern.size()) + " bytes)";
}

}  // namespace

ModuleRegex::ModuleRegex(std::string_view pattern, std::string where) : pattern_(pattern), where_(std::move(where)) {
  std::unique_ptr<pcre2_compile_context, decltype(&pcre2_compile_context_free)> cctx(pcre2_compile_context_create(nullptr),
                                                                                    &pcre2_compile_context_free);
  if (!cctx) throw std::bad_alloc();
  pcre2_set_parens_nest_limit(cctx.get(), kMaxNesting);
  int err = 0;
  PCRE2_SIZE off = 0;
  pcre2_code* code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(), PCRE2_UTF, &err, &off,
                                   cctx.get());
  if (!code)
    fail_input("{}: pattern 're:{}' is not a valid regular expression ({} at offset {})", where_, shown(pattern_),
               pcre2_message(err), size_t(off));
  code_.reset(code, &pcre2_code_free);
  limits_.reset(pcre2_match_context_create(nullptr), &pcre2_match_context_free);
  if (!limits_) throw std::bad_alloc();
  pcre2_set_match_limit(limits_.get(), kMatchLimit);
  pcre2_set_depth_limit(limits_.get(), kDepthLimit);
  pcre2_set_heap_limit(limits_.get(), kHeapLimitKiB);
}

bool ModuleRegex::match_start(std::string_view name) const {
  std::unique_ptr<pcre2_match_data, decltype(&pcre2_match_data_free)> md(  // per call: thread-safe
      pcre2_match_data_create_from_pattern(code_.get(), nullptr), &pcre2_match_data_free);
  if (!md) throw std::bad_alloc();
  const int rc = pcre2_match(code_.get(), reinterpret_cast<PCRE2_SPTR>(name.data()), name.size(), 0, PCRE2_ANCHORED,
                             md.get(), limits_.get());
  if (rc >= 0) return true;
  if (rc == PCRE2_ERROR_NOMATCH) return false;
  fail_input("{}: pattern 're:{}' cannot be matched against '{}' within its limits ({})", where_, shown(pattern_), name,
             pcre2_message(rc));
}

}  // namespace gdn
