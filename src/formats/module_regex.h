// A checkpoint's module-name regex (compressed-tensors "re:" targets and ignore entries), matched
// the way Python's re.match does: anchored at the start of the name only.
//
// The patterns come from an untrusted config.json, so they run on PCRE2 with bounds, not on
// std::regex: libstdc++'s regex compiler and matcher recurse on the machine stack (a pattern of
// 20,000 nested groups overflowed it, found by fuzz/fuzz_config.cpp) and backtrack without a limit
// ((.*.*)*\d\d\d\d$ ran for over 20 s on one module name). Here nesting deeper than 64 groups is a
// compile error, and a match that needs more than a million backtracking steps is an InputError
// naming the pattern — both reported while the config is read, not as a crash or a hang.
#pragma once

#include <memory>
#include <string>
#include <string_view>

struct pcre2_real_code_8;  // pcre2.h stays out of our headers
struct pcre2_real_match_context_8;

namespace gdn {

class ModuleRegex {
 public:
  // Compiles `pattern` (without the "re:" prefix). InputError naming `where` when it is not a
  // valid regular expression or nests too deeply.
  ModuleRegex(std::string_view pattern, std::string where);

  // True when a prefix of `name` matches. InputError when the match exceeds its step budget.
  bool match_start(std::string_view name) const;

 private:
  // Shared: configs are copied; the compiled code and the match limits are read-only once set.
  std::shared_ptr<pcre2_real_code_8> code_;
  std::shared_ptr<pcre2_real_match_context_8> limits_;
  std::string pattern_, where_;
};

}  // namespace gdn
