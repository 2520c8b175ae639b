#include "tokenizer/added_vocab.h"

#include <algorithm>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "tokenizer/regex.h"
#include "tokenizer/utf8.h"

namespace gdn::tok {

namespace {

bool flag(const nlohmann::json& t, const char* name, bool dflt, size_t i, const std::string& file) {
  auto it = t.find(name);
  if (it == t.end() || it->is_null()) return dflt;
  if (!it->is_boolean()) fail_input("{}: added_tokens[{}].{} must be true or false", file, i, name);
  return it->get<bool>();
}

}  // namespace

AddedVocabulary::AddedVocabulary(const nlohmann::json* added, const std::unordered_map<std::string, int32_t>& model_vocab,
                                 size_t model_vocab_size, const Normalize& normalize, const std::string& file) {
  if (added && !added->is_null() && !added->is_array()) fail_input("{}: added_tokens must be an array", file);
  int64_t next_id = int64_t(model_vocab_size);
  const size_t n = added && added->is_array() ? added->size() : 0;
  for (size_t i = 0; i < n; ++i) {
    const nlohmann::json& t = (*added)[i];
    if (!t.is_object()) fail_input("{}: added_tokens[{}] must be an object", file, i);
    auto c = t.find("content");
    if (c == t.end() || !c->is_string()) fail_input("{}: added_tokens[{}].content must be a string", file, i);
    AddedToken tok;
    tok.content = c->get<std::string>();
    if (!is_valid_utf8(tok.content)) fail_input("{}: added_tokens[{}].content is not valid UTF-8", file, i);
    tok.special = flag(t, "special", false, i, file);
    tok.single_word = flag(t, "single_word", false, i, file);
    tok.lstrip = flag(t, "lstrip", false, i, file);
    tok.rstrip = flag(t, "rstrip", false, i, file);
    tok.normalized = flag(t, "normalized", !tok.special, i, file);
    if (tok.content.empty()) continue;  // tokenizers ignores empty added tokens
    if (tok.special) special_.insert(tok.content);
    if (auto it = by_content_.find(tok.content); it != by_content_.end()) {
      tok.id = tokens_[it->second].id;  // same content again: same id, the later flags win
      tokens_[it->second] = tok;
      continue;
    }
    if (auto it = model_vocab.find(tok.content); it != model_vocab.end()) {
      tok.id = it->second;
    } else {
      if (next_id > INT32_MAX) fail_input("{}: added_tokens[{}]: too many tokens", file, i);
      tok.id = int32_t(next_id++);
    }
    by_content_.emplace(tok.content, tokens_.size());
    by_id_[tok.id] = tokens_.size();
    tokens_.push_back(std::move(tok));
  }
  // tokenizers lists special tokens before the others in its matchers; with leftmost-longest
  // matching and one entry per content the order does not change any result.
  for (size_t k = 0; k < tokens_.size(); ++k) {
    const AddedToken& t = tokens_[k];
    if (!t.normalized)
      raw_.add(t.content, int32_t(k));
    else
      norm_.add(normalize ? normalize(t.content) : t.content, int32_t(k));
  }
}

const AddedToken* AddedVocabulary::find_id(int32_t id) const {
  auto it = by_id_.find(id);
  return it == by_id_.end() ? nullptr : &tokens_[it->second];
}

const AddedToken* AddedVocabulary::find_content(std::string_view content) const {
  auto it = by_content_.find(std::string(content));
  return it == by_content_.end() ? nullptr : &tokens_[it->second];
}

void AddedVocabulary::Trie::add(std::string_view pattern, int32_t token) {
  if (pattern.empty()) return;
  if (nodes.empty()) nodes.emplace_back();
  int32_t cur = 0;
  for (const char ch : pattern) {
    const auto b = uint8_t(ch);
    int32_t next = -1;
    for (const auto& [cb, child] : nodes[size_t(cur)].children)
      if (cb == b) next = child;
    if (next < 0) {
      next = int32_t(nodes.size());
      nodes[size_t(cur)].children.push_back({b, next});
      nodes.emplace_back();
    }
    cur = next;
  }
  if (nodes[size_t(cur)].token < 0) nodes[size_t(cur)].token = token;  // first pattern wins a tie
  first[uint8_t(pattern[0])] = true;
  any_first = true;
}

bool AddedVocabulary::Trie::find(std::string_view s, size_t from, size_t& start, size_t& end, int32_t& token) const {
  if (!any_first) return false;
  for (size_t i = from; i < s.size(); ++i) {
    if (!first[uint8_t(s[i])]) continue;
    int32_t cur = 0, best = -1;
    size_t best_end = 0;
    for (size_t j = i; j < s.size(); ++j) {
      int32_t next = -1;
      for (const auto& [cb, child] : nodes[size_t(cur)].children)
        if (cb == uint8_t(s[j])) next = child;
      if (next < 0) break;
      cur = next;
      if (nodes[size_t(cur)].token >= 0) best = nodes[size_t(cur)].token, best_end = j + 1;
    }
    if (best >= 0) {
      start = i, end = best_end, token = best;
      return true;
    }
  }
  return false;
}

namespace {

bool ends_with_word(std::string_view s, size_t end) {
  if (end == 0) return false;
  size_t st;
  return is_word_char(prev_code_point(s, end, st));
}

bool starts_with_word(std::string_view s, size_t start) {
  if (start >= s.size()) return false;
  return is_word_char(next_code_point(s, start));
}

// Start of the whitespace run that ends at `end` (Rust regex `\s*$` on s[..end]).
size_t whitespace_run_start(std::string_view s, size_t end) {
  size_t pos = end;
  while (pos > 0) {
    size_t st;
    if (!is_white_space(prev_code_point(s, pos, st))) break;
    pos = st;
  }
  return pos;
}

// End of the whitespace run that starts at `start` (Rust regex `^\s*` on s[start..]).
size_t whitespace_run_end(std::string_view s, size_t start) {
  size_t pos = start;
  while (pos < s.size()) {
    size_t nx = pos;
    if (!is_white_space(next_code_point(s, nx))) break;
    pos = nx;
  }
  return pos;
}

}  // namespace

void AddedVocabulary::split(std::string_view s, bool normalized_set, std::vector<Piece>& out) const {
  if (s.empty()) return;
  const Trie& trie = normalized_set ? norm_ : raw_;
  size_t done = 0;  // end of the last piece emitted (tokenizers' start_offset)
  size_t from = 0, ms, me;
  int32_t k;
  // A transcription of tokenizers' AddedVocabulary::find_matches.
  while (trie.find(s, from, ms, me, k)) {
    from = me;  // the search resumes after the raw match, whatever the flags do below
    const AddedToken& t = tokens_[size_t(k)];
    if (t.single_word) {
      const bool space_before = ms == 0 || !ends_with_word(s, ms);
      const bool space_after = me == s.size() || !starts_with_word(s, me);
      if (!space_before || !space_after) continue;
    }
    size_t start = ms, stop = me;
    if (t.lstrip) start = std::max(whitespace_run_start(s, ms), done);
    if (t.rstrip) stop = whitespace_run_end(s, me);
    if (done < start) out.push_back({done, start, -1});
    out.push_back({start, stop, t.id});
    done = stop;
  }
  if (done != s.size()) out.push_back({done, s.size(), -1});
}

}  // namespace gdn::tok
