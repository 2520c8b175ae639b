// libFuzzer target for loading tokenizer.json itself (fuzz_tokenizer.cpp fuzzes what a loaded
// tokenizer is given to encode and decode). The file comes with a checkpoint, so it is untrusted:
// every field, the vocabulary, the merges, the added tokens and the pre-tokenizer's split regex
// (which runs on PCRE2). Bad input must end in gdn::InputError; any other exception, a crash, a hang
// or a sanitizer report is a bug.
//
// A file that loads is then used: a few fixed texts (ASCII, accents, an added token, invalid UTF-8)
// are encoded and decoded, and the ids must be the tokenizer's own and the text valid UTF-8.
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/error.h"
#include "fuzz_check.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/utf8.h"

namespace {

using gdn::fuzz::check;

void use_tokenizer(const gdn::Tokenizer& tok) {
  const std::string_view texts[] = {"hello world, 123 abc", "  héllo\n\nwörld\t<s>x", "<think>ab</think>",
                                    std::string_view("a\xff\xfe" "bc\xc3", 6)};
  for (std::string_view t : texts) {
    const std::vector<int32_t> ids = tok.encode(t);
    for (int32_t id : ids) check(tok.is_valid_id(id), "encode produced an id the tokenizer does not know");
    check(gdn::tok::is_valid_utf8(tok.decode(ids)), "decode produced invalid UTF-8");
    check(gdn::tok::is_valid_utf8(tok.decode(ids, true)), "decode(skip_special) produced invalid UTF-8");
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  try {
    use_tokenizer(*gdn::Tokenizer::from_json_string(text, "fuzz/tokenizer.json"));
  } catch (const gdn::InputError&) {
    // the only error a bad tokenizer.json (or its regex failing on a text) may produce
  }
  return 0;
}
