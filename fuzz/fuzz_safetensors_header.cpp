// libFuzzer target for the safetensors header parser. Bad input must end in gdn::InputError;
// any other exception, crash, or sanitizer report is a bug.
#include <cstddef>
#include <cstdint>

#include "core/error.h"
#include "formats/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    const gdn::SafetensorsHeader h = gdn::parse_safetensors_header(data, size, "fuzz");
    // Whatever is accepted must describe bytes inside the buffer.
    for (const auto& t : h.tensors) {
      if (t.offset > size || t.nbytes > size - t.offset) __builtin_trap();
      if (uint64_t(t.numel()) * gdn::dtype_size(t.dtype) != t.nbytes) __builtin_trap();
    }
  } catch (const gdn::InputError&) {
  }
  return 0;
}
