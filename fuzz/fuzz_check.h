// What the fuzz targets share: an invariant that must hold for whatever input was accepted.
#pragma once

#include <cstdio>

namespace gdn::fuzz {

// A violated invariant is a finding: print it and stop the way libFuzzer records a crash.
inline void check(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "invariant violated: %s\n", what);
    __builtin_trap();
  }
}

}  // namespace gdn::fuzz
