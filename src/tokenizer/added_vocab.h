// Added tokens of tokenizer.json ("added_tokens": special and non-special), matched in the text
// before normalisation and pre-tokenisation the way tokenizers' AddedVocabulary does:
//  * tokens with normalized = false are found in the raw text first; the text between them is
//    then normalised, and tokens with normalized = true are found in that normalised text (their
//    patterns are normalised too);
//  * matching is leftmost-longest (earliest start, then longest), non-overlapping, left to right;
//  * single_word: a match is dropped unless the characters just outside it are not word
//    characters (Unicode \w) — the search then continues after the dropped match;
//  * lstrip / rstrip: the match grows over the whitespace run before / after it (never back into
//    the previous match), so that whitespace disappears into the token.
#pragma once

#include <cstdint>
#include <functional>
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

namespace gdn::tok {

struct AddedToken {
  std::string content;
  int32_t id = -1;
  bool special = false, single_word = false, lstrip = false, rstrip = false, normalized = true;
};

// A stretch [start, end) of the text; id ≥ 0 for an added token, -1 for plain text.
struct Piece {
  size_t start, end;
  int32_t id;
};

class AddedVocabulary {
 public:
  using Normalize = std::function<std::string(std::string_view)>;

  // Parses the "added_tokens" array. Ids are assigned as tokenizers does it (the "id" fields in the
  // file are not trusted): a token already in `model_vocab` keeps that id, the others get
  // consecutive ids after the largest one seen so far (at least the model's vocabulary size).
  // `normalize` (may be empty) turns the patterns of normalized tokens into normalised text.
  AddedVocabulary(const nlohmann::json* added_tokens, const std::unordered_map<std::string, int32_t>& model_vocab,
                  size_t model_vocab_size, const Normalize& normalize, const std::string& file);

  // Splits `s` into plain pieces and added tokens; `normalized_set` picks the tokens matched
  // after normalisation. Empty pieces are left out. Appends to `out`.
  void split(std::string_view s, bool normalized_set, std::vector<Piece>& out) const;

  bool has_normalized_tokens() const { return !norm_.nodes.empty() && norm_.any_first; }
  const std::vector<AddedToken>& tokens() const { return tokens_; }  // by id order of insertion
  const AddedToken* find_id(int32_t id) const;
  const AddedToken* find_content(std::string_view content) const;
  bool is_special_content(std::string_view token) const { return special_.count(std::string(token)) > 0; }

 private:
  // Byte trie of the patterns with a first-byte filter: the scan only stops where a pattern can
  // start (all Qwen added tokens start with '<').
  struct Trie {
    struct Node {
      std::vector<std::pair<uint8_t, int32_t>> children;
      int32_t token = -1;  // index into tokens_ when a pattern ends here
    };
    std::vector<Node> nodes;
    bool first[256] = {};
    bool any_first = false;
    void add(std::string_view pattern, int32_t token);
    // Leftmost-longest match at or after `from`: true with [start, end) and the token index.
    bool find(std::string_view s, size_t from, size_t& start, size_t& end, int32_t& token) const;
  };

  std::vector<AddedToken> tokens_;
  std::unordered_map<int32_t, size_t> by_id_;
  std::unordered_map<std::string, size_t> by_content_;
  std::unordered_set<std::string> special_;
  Trie raw_, norm_;
};

}  // namespace gdn::tok
