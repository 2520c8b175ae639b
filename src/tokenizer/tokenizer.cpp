#include "tokenizer/tokenizer.h"

#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "core/error.h"
#include "core/json_depth.h"
#include "tokenizer/added_vocab.h"
#include "tokenizer/bpe.h"
#include "tokenizer/regex.h"
#include "tokenizer/utf8.h"

namespace gdn {

using tok::AddedVocabulary;
using tok::BpeModel;
using tok::Piece;
using tok::Regex;

namespace {

// GPT-2's split regex, used by ByteLevel when use_regex is true (tokenizers' byte_level.rs).
constexpr const char* kGpt2Regex = R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

struct PreTokStep {
  enum Kind { kSplit, kByteLevel } kind;
  std::unique_ptr<Regex> regex;  // kSplit; kByteLevel with use_regex
  bool add_prefix_space = false;
};

std::string type_of(const nlohmann::json& j, const std::string& file, const std::string& where) {
  if (!j.is_object()) fail_input("{}: {} must be an object", file, where);
  auto t = j.find("type");
  if (t == j.end() || !t->is_string()) fail_input("{}: {}.type is missing", file, where);
  return t->get<std::string>();
}

bool get_bool(const nlohmann::json& j, const char* name, bool dflt, const std::string& file, const std::string& where) {
  auto it = j.find(name);
  if (it == j.end() || it->is_null()) return dflt;
  if (!it->is_boolean()) fail_input("{}: {}.{} must be true or false", file, where, name);
  return it->get<bool>();
}

// Regex-escapes a literal Split pattern ({"String": ...}).
std::string escape_literal(const std::string& s) {
  std::string out;
  for (const char c : s) {
    if (std::string_view("\\^$.|?*+()[]{}").find(c) != std::string_view::npos) out += '\\';
    out += c;
  }
  return out;
}

}  // namespace

struct Tokenizer::Impl {
  std::string file;
  bool nfc = false;
  std::vector<PreTokStep> steps;  // ByteLevel is last
  bool byte_level_decoder = false;
  std::unique_ptr<BpeModel> model;
  std::unique_ptr<AddedVocabulary> added;
  // Per id: what the decoder makes of the token (bytes for ByteLevel, the token string for none).
  std::vector<std::string> id_text;
  enum : uint8_t { kValid = 1, kSpecial = 2 };
  std::vector<uint8_t> id_flags;

  void parse_normalizer(const nlohmann::json& n, const std::string& where) {
    if (n.is_null()) return;
    const std::string t = type_of(n, file, where);
    if (t == "NFC") {
      nfc = true;
    } else if (t == "Sequence") {
      auto it = n.find("normalizers");
      if (it == n.end() || !it->is_array()) fail_input("{}: {}.normalizers must be an array", file, where);
      for (size_t i = 0; i < it->size(); ++i) parse_normalizer((*it)[i], fmt::format("{}.normalizers[{}]", where, i));
    } else {
      fail_input("{}: {}: normalizer type '{}' is not supported (expected NFC or a Sequence of NFC)", file, where, t);
    }
  }

  void parse_pre_tokenizer(const nlohmann::json& p, const std::string& where) {
    const std::string t = type_of(p, file, where);
    if (t == "Sequence") {
      auto it = p.find("pretokenizers");
      if (it == p.end() || !it->is_array()) fail_input("{}: {}.pretokenizers must be an array", file, where);
      for (size_t i = 0; i < it->size(); ++i) parse_pre_tokenizer((*it)[i], fmt::format("{}.pretokenizers[{}]", where, i));
      return;
    }
    if (!steps.empty() && steps.back().kind == PreTokStep::kByteLevel)
      fail_input("{}: {}: only a ByteLevel pre-tokenizer at the end of the sequence is supported", file, where);
    PreTokStep s;
    if (t == "Split") {
      s.kind = PreTokStep::kSplit;
      auto pat = p.find("pattern");
      std::string regex;
      if (pat != p.end() && pat->is_object() && pat->contains("Regex") && (*pat)["Regex"].is_string())
        regex = (*pat)["Regex"].get<std::string>();
      else if (pat != p.end() && pat->is_object() && pat->contains("String") && (*pat)["String"].is_string())
        regex = escape_literal((*pat)["String"].get<std::string>());
      else
        fail_input("{}: {}.pattern must be {{\"Regex\": \"...\"}} or {{\"String\": \"...\"}}", file, where);
      auto beh = p.find("behavior");
      if (beh == p.end() || !beh->is_string() || beh->get<std::string>() != "Isolated")
        fail_input("{}: {}.behavior: only \"Isolated\" is supported (got {})", file, where,
                   beh == p.end() ? "nothing" : beh->dump());
      if (get_bool(p, "invert", false, file, where)) fail_input("{}: {}.invert: only false is supported", file, where);
      s.regex = std::make_unique<Regex>(regex, file + ": " + where + ".pattern");
    } else if (t == "ByteLevel") {
      s.kind = PreTokStep::kByteLevel;
      s.add_prefix_space = get_bool(p, "add_prefix_space", true, file, where);
      if (get_bool(p, "use_regex", true, file, where)) s.regex = std::make_unique<Regex>(kGpt2Regex, "ByteLevel regex");
    } else {
      fail_input("{}: {}: pre-tokenizer type '{}' is not supported (expected Split, ByteLevel or Sequence)", file, where, t);
    }
    steps.push_back(std::move(s));
  }

  void parse(const nlohmann::json& j) {
    if (!j.is_object()) fail_input("{}: the top level must be a JSON object", file);
    if (auto v = j.find("version"); v != j.end() && !(v->is_string() && v->get<std::string>() == "1.0"))
      fail_input("{}: version {} is not supported (expected \"1.0\")", file, v->dump());
    auto m = j.find("model");
    if (m == j.end() || m->is_null()) fail_input("{}: field 'model' is missing", file);
    if (!m->is_object()) fail_input("{}: model must be an object", file);
    if (auto t = m->find("type"); t != m->end() && !(t->is_string() && t->get<std::string>() == "BPE"))
      fail_input("{}: model.type {} is not supported (expected \"BPE\")", file, t->dump());
    model = std::make_unique<BpeModel>(*m, file);

    if (auto n = j.find("normalizer"); n != j.end()) parse_normalizer(*n, "normalizer");
    auto p = j.find("pre_tokenizer");
    if (p != j.end() && !p->is_null()) parse_pre_tokenizer(*p, "pre_tokenizer");
    if (steps.empty() || steps.back().kind != PreTokStep::kByteLevel)
      fail_input("{}: pre_tokenizer: a ByteLevel pre-tokenizer is required (this implementation is byte-level BPE)", file);
    if (auto d = j.find("decoder"); d != j.end() && !d->is_null()) {
      const std::string t = type_of(*d, file, "decoder");
      if (t != "ByteLevel") fail_input("{}: decoder type '{}' is not supported (expected ByteLevel or null)", file, t);
      byte_level_decoder = true;
    }

    auto a = j.find("added_tokens");
    AddedVocabulary::Normalize norm;
    if (nfc)
      norm = [](std::string_view s) {
        std::string out;
        tok::append_nfc(s, out);
        return out;
      };
    added = std::make_unique<AddedVocabulary>(a == j.end() ? nullptr : &*a, model->vocab(), model->size(), norm, file);
    build_decode_table();
  }

  void build_decode_table() {
    size_t n = 0;
    for (const auto& [t, id] : model->vocab()) n = std::max(n, size_t(id) + 1);
    for (const auto& t : added->tokens()) n = std::max(n, size_t(t.id) + 1);
    id_text.assign(n, {});
    id_flags.assign(n, 0);
    auto set = [&](int32_t id, const std::string& token) {
      id_text[size_t(id)] = byte_level_decoder ? tok::byte_level_decode_token(token) : token;
      // tokenizers skips by content: any token whose string is a special added token.
      id_flags[size_t(id)] = kValid | (added->is_special_content(token) ? kSpecial : 0);
    };
    for (const auto& [t, id] : model->vocab()) set(id, t);
    for (const auto& t : added->tokens()) set(t.id, t.content);  // added tokens take precedence
  }

  // Pre-tokenizer step `k` on one piece of normalised text; the last step feeds the model.
  void pretokenize(std::string_view s, size_t k, std::vector<int32_t>& out) const {
    const PreTokStep& st = steps[k];
    if (st.kind == PreTokStep::kSplit) {
      size_t prev = 0;
      st.regex->for_each_match(s, [&](size_t b, size_t e) {
        if (b > prev) pretokenize(s.substr(prev, b - prev), k + 1, out);  // the text between matches
        if (e > b) pretokenize(s.substr(b, e - b), k + 1, out);
        prev = e;
      });
      if (prev < s.size()) pretokenize(s.substr(prev), k + 1, out);
      return;
    }
    std::string prefixed;
    if (st.add_prefix_space && s.front() != ' ') {
      prefixed.reserve(s.size() + 1);
      (prefixed += ' ') += s;
      s = prefixed;
    }
    if (!st.regex) {
      model->encode_word(s, out);
      return;
    }
    size_t prev = 0;
    st.regex->for_each_match(s, [&](size_t b, size_t e) {
      if (b > prev) model->encode_word(s.substr(prev, b - prev), out);
      model->encode_word(s.substr(b, e - b), out);
      prev = e;
    });
    if (prev < s.size()) model->encode_word(s.substr(prev), out);
  }

  // A piece of raw text between non-normalised added tokens.
  void encode_plain(std::string_view raw, std::vector<int32_t>& out) const {
    std::string normalized;
    std::string_view s = raw;
    if (nfc) {
      normalized.reserve(raw.size());
      tok::append_nfc(raw, normalized);
      s = normalized;
    }
    if (!added->has_normalized_tokens()) {
      pretokenize(s, 0, out);
      return;
    }
    std::vector<Piece> pieces;
    added->split(s, true, pieces);
    for (const Piece& p : pieces) {
      if (p.id >= 0)
        out.push_back(p.id);
      else
        pretokenize(s.substr(p.start, p.end - p.start), 0, out);
    }
  }
};

Tokenizer::Tokenizer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Tokenizer::~Tokenizer() = default;

std::unique_ptr<Tokenizer> Tokenizer::load(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) fail_input("{}: cannot open the tokenizer file", path);
  std::ostringstream ss;
  ss << f.rdbuf();
  if (!f.good() && !f.eof()) fail_input("{}: read error", path);
  return from_json_string(ss.str(), path);
}

std::unique_ptr<Tokenizer> Tokenizer::from_json_string(std::string_view text, const std::string& origin) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    fail_input("{}: not valid JSON ({})", origin, e.what());
  }
  check_json_depth(j, origin);
  auto impl = std::make_unique<Impl>();
  impl->file = origin;
  try {
    impl->parse(j);
  } catch (const nlohmann::json::exception& e) {  // a field of an unexpected JSON type
    fail_input("{}: unexpected content ({})", origin, e.what());
  }
  return std::unique_ptr<Tokenizer>(new Tokenizer(std::move(impl)));
}

std::vector<int32_t> Tokenizer::encode(std::string_view text) const {
  std::string repaired;
  if (!tok::is_valid_utf8(text)) {
    tok::append_utf8_lossy(text, repaired);
    text = repaired;
  }
  std::vector<int32_t> out;
  out.reserve(text.size() / 3 + 4);
  std::vector<Piece> pieces;
  impl_->added->split(text, false, pieces);
  for (const Piece& p : pieces) {
    if (p.id >= 0)
      out.push_back(p.id);
    else
      impl_->encode_plain(text.substr(p.start, p.end - p.start), out);
  }
  return out;
}

bool Tokenizer::is_valid_id(int32_t id) const {
  return id >= 0 && size_t(id) < impl_->id_flags.size() && (impl_->id_flags[size_t(id)] & Impl::kValid);
}

bool Tokenizer::is_special(int32_t id) const { return is_valid_id(id) && (impl_->id_flags[size_t(id)] & Impl::kSpecial); }

size_t Tokenizer::vocab_size() const { return impl_->id_flags.size(); }
bool Tokenizer::has_byte_level_decoder() const { return impl_->byte_level_decoder; }

std::string_view Tokenizer::token_bytes(int32_t id, bool skip_special) const {
  if (!is_valid_id(id))
    fail_input("token id {} is outside the vocabulary (ids below {} that the tokenizer defines)", id, vocab_size());
  if (skip_special && (impl_->id_flags[size_t(id)] & Impl::kSpecial)) return {};
  return impl_->id_text[size_t(id)];
}

std::string Tokenizer::decode(std::span<const int32_t> ids, bool skip_special) const {
  std::string joined, out;
  bool first = true;
  for (const int32_t id : ids) {
    const std::string_view t = token_bytes(id, skip_special);
    if (skip_special && (impl_->id_flags[size_t(id)] & Impl::kSpecial)) continue;
    if (!impl_->byte_level_decoder && !first) joined += ' ';  // no decoder: tokens joined by spaces
    joined += t;
    first = false;
  }
  if (!impl_->byte_level_decoder) return joined;
  out.reserve(joined.size());
  tok::append_utf8_lossy(joined, out);
  return out;
}

std::optional<int32_t> Tokenizer::token_to_id(std::string_view token) const {
  if (const tok::AddedToken* t = impl_->added->find_content(token)) return t->id;
  auto it = impl_->model->vocab().find(std::string(token));
  if (it == impl_->model->vocab().end()) return std::nullopt;
  return it->second;
}

std::optional<std::string> Tokenizer::id_to_token(int32_t id) const {
  if (const tok::AddedToken* t = impl_->added->find_id(id)) return t->content;
  if (const std::string* s = impl_->model->id_to_token(id)) return *s;
  return std::nullopt;
}

// ---- StreamDecoder ---------------------------------------------------------------------------

StreamDecoder::StreamDecoder(const Tokenizer& tokenizer, bool skip_special)
    : tok_(tokenizer), skip_special_(skip_special) {}

std::string StreamDecoder::push(int32_t id) {
  const std::string_view t = tok_.token_bytes(id, skip_special_);
  std::string out;
  if (!tok_.has_byte_level_decoder()) {
    if (skip_special_ && tok_.is_special(id)) return out;
    if (started_) out += ' ';
    out += t;
    started_ = true;
    return out;
  }
  if (t.empty()) return out;  // a skipped special token: held-back bytes stay held back
  pending_ += t;
  const size_t used = tok::append_utf8_decided(pending_, out);
  pending_.erase(0, used);
  return out;
}

std::string StreamDecoder::flush() {
  std::string out;
  tok::append_utf8_lossy(pending_, out);
  pending_.clear();
  started_ = false;
  return out;
}

}  // namespace gdn
