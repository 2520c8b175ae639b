// Error handling in two tiers (see docs/ARCHITECTURE.md):
//  * InputError: bad input from outside (checkpoint files, config, CLI arguments, requests).
//    Thrown by loading/validation code only — never from the forward pass — and turned into a
//    one-line message with exit code 2 (CLI) or a 4xx JSON error (server) at the edge.
//  * GDN_CHECK: broken internal invariants (programmer errors). Prints file:line and aborts.
#pragma once

#include <fmt/format.h>

#include <stdexcept>
#include <string>

namespace gdn {

class InputError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

template <typename... Args>
[[noreturn]] void fail_input(fmt::format_string<Args...> f, Args&&... args) {
  throw InputError(fmt::format(f, std::forward<Args>(args)...));
}

[[noreturn]] void check_failed(const char* file, int line, const char* cond, const std::string& msg);

}  // namespace gdn

#define GDN_CHECK(cond, ...)                                                         \
  do {                                                                               \
    if (!(cond)) ::gdn::check_failed(__FILE__, __LINE__, #cond, fmt::format("" __VA_ARGS__)); \
  } while (0)
