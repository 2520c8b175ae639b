// Table-driven template tests: each row renders one small template with the variables in
// kTableContext and compares the output.
#pragma once

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <string>

#include "template/chat_template.h"

namespace gdn::test {

struct Case {
  const char* tmpl;
  const char* want;
};

// The variables every table row renders with.
inline const char* kTableContext =
    R"({"x": [1, 2, 3], "d": {"a": 1, "b": [1, "x"]}, "s": "hello", "n": null, "t": true, "f": 1.5, "u": "héllo wörld ΣΑΣ", "items": [{"name": "b", "v": 2}, {"name": "a", "v": 1}, {"name": "C", "v": 3}], "e": "", "z": 0})";

inline std::string render(const std::string& source) {
  return ChatTemplate::compile(source, "t").render(nlohmann::ordered_json::parse(kTableContext));
}

template <size_t N>
void check(const Case (&cases)[N]) {
  for (const Case& c : cases) {
    SCOPED_TRACE(c.tmpl);
    try {
      EXPECT_EQ(render(c.tmpl), c.want);
    } catch (const std::exception& e) {
      ADD_FAILURE() << "threw: " << e.what();
    }
  }
}

}  // namespace gdn::test
