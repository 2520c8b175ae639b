// Nesting bound for JSON from outside (checkpoint configs, tokenizer.json, safetensors headers,
// requests). nlohmann::json parses and destroys any depth without recursion, but copying,
// comparing and dump() recurse on the machine stack: a request whose content was 100,000 nested
// arrays overflowed it (fuzz/fuzz_chat_request.cpp). Real files and requests nest a few levels
// (JSON schemas of tools a few dozen), so everything read from outside is checked against
// kMaxJsonDepth right after parsing.
#pragma once

#include <cstddef>
#include <string>
#include <utility>
#include <vector>

#include "core/error.h"

namespace gdn {

inline constexpr size_t kMaxJsonDepth = 256;

// InputError naming `where` when `root` (any nlohmann basic_json) nests deeper than max_depth
// arrays/objects. Iterative: safe on any input.
template <typename Json>
void check_json_depth(const Json& root, const std::string& where, size_t max_depth = kMaxJsonDepth) {
  std::vector<std::pair<const Json*, size_t>> stack{{&root, 1}};
  while (!stack.empty()) {
    const auto [j, depth] = stack.back();
    stack.pop_back();
    if (!j->is_structured()) continue;
    if (depth > max_depth) fail_input("{}: JSON nested deeper than {} levels", where, max_depth);
    for (const auto& child : *j) stack.emplace_back(&child, depth + 1);
  }
}

}  // namespace gdn
