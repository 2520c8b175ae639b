// Byte-identical reimplementation of Hugging Face `tokenizers` (the Rust crate, 0.22) for the
// byte-level BPE tokenizer.json files of the Qwen family (Qwen2/2.5/3, Qwen3.5/3.6).
//
// What a tokenizer.json may contain (anything else is rejected at load with an InputError naming
// the file and the field, rather than silently tokenising differently):
//   normalizer     null | NFC | Sequence of NFC
//   pre_tokenizer  Split(Regex|String, behavior Isolated, invert false), ByteLevel(add_prefix_space,
//                  use_regex), or a Sequence of them with ByteLevel last
//   model          BPE (vocab, merges as "a b" strings or [a, b] pairs, ignore_merges, unk_token,
//                  fuse_unk; no dropout, subword prefix/suffix or byte_fallback; vocab ids dense:
//                  the largest below 2·size + 1024)
//   decoder        null | ByteLevel
//   added_tokens   special and non-special, with lstrip, rstrip, single_word, normalized
//   post_processor ignored: encode() never adds special tokens (add_special_tokens = false)
//
// Encoding, as tokenizers does it: added tokens are split out of the raw text first (leftmost-
// longest; see added_vocab.h), the rest is NFC-normalised piece by piece, split by the
// pre-tokenizer regex (taken from the file, run by PCRE2; see regex.h), and each pre-token is BPE-
// merged on its bytes (see bpe.h).
//
// Unicode versions: the reference's NFC uses Unicode 9.0 tables and its regex engine (Oniguruma)
// Unicode 16.0; utf8proc and PCRE2 here are 15.0 and 14.0. Both gaps are bridged with tables made
// from the reference itself (nfc_unicode9.inc, regex_unicode.inc; see utf8.cpp and regex.h), so
// that characters of any Unicode version tokenise as the reference does. A test fails if the
// system libraries change under those tables.
//
// Deliberate differences from the reference, all at the API edge:
//  * Invalid UTF-8 input (the reference only accepts valid strings): each maximal invalid
//    subsequence is replaced with U+FFFD first, as Rust's String::from_utf8_lossy does; so
//    encode(bytes) == reference.encode(from_utf8_lossy(bytes)).
//  * decode() of an id that is neither in the vocabulary nor an added token throws InputError
//    naming the id (the reference silently drops it).
//
// Thread-safety: a loaded Tokenizer is immutable apart from its internally locked word cache;
// encode and decode may be called from any number of threads.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace gdn {

class Tokenizer {
 public:
  // Loads a tokenizer.json file. InputError when it cannot be read, is not JSON, or uses
  // something unsupported (see above); the message names the file and the field.
  static std::unique_ptr<Tokenizer> load(const std::string& tokenizer_json_path);
  // Same from the file's text; `origin` names it in error messages.
  static std::unique_ptr<Tokenizer> from_json_string(std::string_view json_text, const std::string& origin);
  ~Tokenizer();

  // Token ids of `text` (arbitrary bytes; see the note on invalid UTF-8), no special tokens added.
  std::vector<int32_t> encode(std::string_view text) const;

  // Text of `ids`: ByteLevel-decoded bytes, repaired like String::from_utf8_lossy. With
  // skip_special, added tokens marked special are left out (non-special ones such as <think> stay).
  // InputError for an id outside the vocabulary.
  std::string decode(std::span<const int32_t> ids, bool skip_special = false) const;

  // Id of a token spelled as in the file (added tokens by content, model tokens in byte-level
  // characters, e.g. "Ġthe"); nullopt if there is none.
  std::optional<int32_t> token_to_id(std::string_view token) const;
  // The token string of `id` as in the file; nullopt when unknown.
  std::optional<std::string> id_to_token(int32_t id) const;

  // One more than the largest id in use (model vocabulary and added tokens): every valid id is
  // below it. (An embedding table is often larger, e.g. 151,936 or 248,320 rows.)
  size_t vocab_size() const;
  bool is_valid_id(int32_t id) const;
  // True when skip_special drops `id`: its token is the content of an added token with special = true.
  bool is_special(int32_t id) const;

  // Bytes of one token after the decoder, before any UTF-8 repair; empty when skip_special hides
  // it. InputError for an unknown id. (What StreamDecoder accumulates.)
  std::string_view token_bytes(int32_t id, bool skip_special) const;
  bool has_byte_level_decoder() const;

  struct Impl;

 private:
  explicit Tokenizer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// Incremental detokenizer for streaming generation. Feed ids one at a time; each push returns the
// text that became final. It never returns part of a UTF-8 character: bytes of an incomplete
// character (e.g. the first tokens of an emoji) are held back until the character is complete,
// and bytes that can no longer become valid are emitted as U+FFFD exactly where decode() would
// put them. The concatenation of every push() and a final flush() equals
// tokenizer.decode(all ids, skip_special). Not thread-safe (one per sequence).
class StreamDecoder {
 public:
  explicit StreamDecoder(const Tokenizer& tokenizer, bool skip_special = false);
  // InputError for an unknown id (the decoder state is unchanged then).
  std::string push(int32_t id);
  // Emits what is still held back (an unfinished character becomes U+FFFD) and resets.
  std::string flush();
  // Bytes currently held back (0..3).
  size_t pending_bytes() const { return pending_.size(); }

 private:
  const Tokenizer& tok_;
  bool skip_special_;
  bool started_ = false;  // for tokenizers without a decoder: tokens are joined with spaces
  std::string pending_;
};

}  // namespace gdn
