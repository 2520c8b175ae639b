#include "tokenizer/bpe.h"

#include <algorithm>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "tokenizer/utf8.h"

namespace gdn::tok {

// ---- byte-level table ------------------------------------------------------------------------

const std::array<char32_t, 256>& byte_to_char_table() {
  // Printable bytes ('!'..'~', '¡'..'¬', '®'..'ÿ') stand for themselves; the other 68 bytes get
  // U+0100, U+0101, … in byte order (GPT-2's bytes_to_unicode).
  static const std::array<char32_t, 256> table = [] {
    std::array<char32_t, 256> t{};
    char32_t next = 256;
    for (int b = 0; b < 256; ++b) {
      const bool printable = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
      t[size_t(b)] = printable ? char32_t(b) : next++;
    }
    return t;
  }();
  return table;
}

int char_to_byte(char32_t c) {
  static const std::array<int16_t, 324> inverse = [] {
    std::array<int16_t, 324> inv;
    inv.fill(-1);
    const auto& t = byte_to_char_table();
    for (int b = 0; b < 256; ++b) inv[t[size_t(b)]] = int16_t(b);
    return inv;
  }();
  return c < inverse.size() ? inverse[c] : -1;
}

bool byte_level_token_bytes(std::string_view token, std::string& bytes) {
  bytes.clear();
  bytes.reserve(token.size());
  for (size_t i = 0; i < token.size();) {
    const int b = char_to_byte(next_code_point(token, i));
    if (b < 0) return false;
    bytes += char(b);
  }
  return true;
}

std::string byte_level_decode_token(std::string_view token) {
  std::string bytes;
  if (!byte_level_token_bytes(token, bytes)) return std::string(token);  // its own UTF-8
  return bytes;
}

// ---- merge table -----------------------------------------------------------------------------

void MergeTable::reserve(size_t n) {
  size_t cap = 16;
  while (cap < n * 2) cap *= 2;  // load factor ≤ 0.5 keeps probe chains short
  slots_.assign(cap, Slot{});
  mask_ = cap - 1;
  size_ = 0;
}

void MergeTable::insert_or_assign(int32_t a, int32_t b, Value v) {
  if ((size_ + 1) * 2 > slots_.size()) {  // grow
    std::vector<Slot> old = std::move(slots_);
    reserve(std::max<size_t>(16, old.size()));
    for (const Slot& s : old)
      if (s.key != kEmpty) insert_or_assign(int32_t(s.key >> 32), int32_t(uint32_t(s.key)), s.value);
  }
  const uint64_t key = pack(a, b);
  for (size_t i = hash(key) & mask_;; i = (i + 1) & mask_) {
    Slot& s = slots_[i];
    if (s.key == key) {  // tokenizers collects merges into a map: a repeated pair keeps the last rank
      s.value = v;
      return;
    }
    if (s.key == kEmpty) {
      s = {key, v};
      ++size_;
      return;
    }
  }
}

// ---- cache -----------------------------------------------------------------------------------

namespace {
struct StringHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};
}  // namespace

struct BpeModel::Shard {
  std::mutex mu;
  std::unordered_map<std::string, std::vector<int32_t>, StringHash, std::equal_to<>> map;
};

// ---- loading ---------------------------------------------------------------------------------

namespace {

const nlohmann::json* field(const nlohmann::json& obj, const char* name) {
  auto it = obj.find(name);
  return it == obj.end() || it->is_null() ? nullptr : &*it;
}

std::string optional_string(const nlohmann::json& model, const char* name, const std::string& file) {
  const nlohmann::json* v = field(model, name);
  if (!v) return "";
  if (!v->is_string()) fail_input("{}: model.{} must be a string or null", file, name);
  return v->get<std::string>();
}

bool optional_bool(const nlohmann::json& model, const char* name, const std::string& file) {
  const nlohmann::json* v = field(model, name);
  if (!v) return false;
  if (!v->is_boolean()) fail_input("{}: model.{} must be true or false", file, name);
  return v->get<bool>();
}

}  // namespace

BpeModel::BpeModel(const nlohmann::json& model, const std::string& file) : cache_(new Shard[kShards]) {
  // Options the Qwen family does not use and that would change results if ignored.
  if (const nlohmann::json* d = field(model, "dropout")) {
    if (!d->is_number()) fail_input("{}: model.dropout must be a number or null", file);
    if (d->get<double>() != 0.0) fail_input("{}: model.dropout {} is not supported (BPE dropout is random)", file, d->dump());
  }
  for (const char* name : {"continuing_subword_prefix", "end_of_word_suffix"})
    if (!optional_string(model, name, file).empty())
      fail_input("{}: model.{} is not supported by this byte-level BPE implementation", file, name);
  if (optional_bool(model, "byte_fallback", file))
    fail_input("{}: model.byte_fallback is not supported by this byte-level BPE implementation", file);
  fuse_unk_ = optional_bool(model, "fuse_unk", file);
  ignore_merges_ = optional_bool(model, "ignore_merges", file);

  const nlohmann::json* vocab = field(model, "vocab");
  if (!vocab) fail_input("{}: model.vocab is missing", file);
  if (!vocab->is_object()) fail_input("{}: model.vocab must be an object of token → id", file);
  vocab_.reserve(vocab->size());
  int32_t max_id = -1;
  for (auto it = vocab->begin(); it != vocab->end(); ++it) {
    if (!it.value().is_number_integer() || it.value().get<int64_t>() < 0 || it.value().get<int64_t>() > INT32_MAX)
      fail_input("{}: model.vocab[\"{}\"] must be an id between 0 and {}", file, it.key(), INT32_MAX);
    const auto id = int32_t(it.value().get<int64_t>());
    vocab_.emplace(it.key(), id);
    max_id = std::max(max_id, id);
  }
  // Id → token tables here and in the decoder are dense, so ids must be too (tokenizers writes
  // 0..N-1). A few gaps are fine; a file whose largest id is far past its size (fuzzing found
  // id 2,000,000,000 in a 300-token vocabulary: 16 GB of tables) is rejected.
  if (int64_t(max_id) >= 2 * int64_t(vocab->size()) + 1024)
    fail_input("{}: model.vocab ids are too sparse: the largest is {} for {} tokens (expected ids 0 to {})", file,
               max_id, vocab->size(), vocab->size() - 1);
  id_to_token_.assign(size_t(max_id + 1), nullptr);
  for (const auto& [tok, id] : vocab_) id_to_token_[size_t(id)] = &tok;

  const auto& table = byte_to_char_table();
  for (int b = 0; b < 256; ++b) {
    std::string ch;
    const char32_t c = table[size_t(b)];  // < 0x144: one or two UTF-8 bytes
    if (c < 0x80) {
      ch += char(c);
    } else {
      ch += char(0xC0 | (c >> 6));
      ch += char(0x80 | (c & 0x3F));
    }
    auto it = vocab_.find(ch);
    byte_id_[size_t(b)] = it == vocab_.end() ? -1 : it->second;
  }
  if (ignore_merges_)
    for (const auto& [tok, id] : vocab_) {
      std::string bytes;
      if (byte_level_token_bytes(tok, bytes)) byte_vocab_.emplace(std::move(bytes), id);
    }

  if (std::string unk = optional_string(model, "unk_token", file); !unk.empty()) {
    auto it = vocab_.find(unk);
    if (it == vocab_.end()) fail_input("{}: model.unk_token '{}' is not in model.vocab", file, unk);
    unk_id_ = it->second;
  }

  const nlohmann::json* merges = field(model, "merges");
  if (!merges) fail_input("{}: model.merges is missing", file);
  if (!merges->is_array()) fail_input("{}: model.merges must be an array", file);
  merges_.reserve(merges->size());
  auto lookup = [&](const std::string& tok, size_t i) {
    auto it = vocab_.find(tok);
    if (it == vocab_.end()) fail_input("{}: model.merges[{}]: token '{}' is not in model.vocab", file, i, tok);
    return it->second;
  };
  // Two spellings: "a b" (one space; tokenizers' legacy format and merges.txt) or ["a", "b"].
  // As in tokenizers, all entries must use the same one.
  const bool pairs = !merges->empty() && merges->front().is_array();
  for (size_t i = 0; i < merges->size(); ++i) {
    const nlohmann::json& m = (*merges)[i];
    std::string a, b;
    if (pairs) {
      if (!m.is_array() || m.size() != 2 || !m[0].is_string() || !m[1].is_string())
        fail_input("{}: model.merges[{}] must be a pair of two token strings like [\"a\", \"b\"]", file, i);
      a = m[0].get<std::string>();
      b = m[1].get<std::string>();
    } else {
      if (!m.is_string()) fail_input("{}: model.merges[{}] must be a string \"a b\" (or every entry a pair)", file, i);
      const std::string& s = m.get_ref<const std::string&>();
      const size_t sp = s.find(' ');
      if (sp == std::string::npos || s.find(' ', sp + 1) != std::string::npos)
        fail_input("{}: model.merges[{}]: '{}' is not two tokens separated by one space", file, i, s);
      a = s.substr(0, sp);
      b = s.substr(sp + 1);
    }
    const int32_t ia = lookup(a, i), ib = lookup(b, i), merged = lookup(a + b, i);
    merges_.insert_or_assign(ia, ib, {uint32_t(i), merged});
  }
}

BpeModel::~BpeModel() = default;

// ---- encoding --------------------------------------------------------------------------------

namespace {

struct Symbol {
  int32_t id;
  int32_t prev, next;  // -1 at the ends
  int32_t len;         // bytes covered; 0 once merged into its left neighbour
};

struct Candidate {
  uint32_t rank;
  int32_t pos;
  int32_t new_id;
};

// Heap order: lowest rank first, then leftmost position (tokenizers' Merge ordering).
struct Later {
  bool operator()(const Candidate& x, const Candidate& y) const {
    return x.rank != y.rank ? x.rank > y.rank : x.pos > y.pos;
  }
};

}  // namespace

void BpeModel::merge(std::string_view word, std::vector<int32_t>& out) const {
  thread_local std::vector<Symbol> sym;
  thread_local std::vector<Candidate> heap;
  sym.clear();
  heap.clear();
  auto add = [&](int32_t id, int32_t len) {
    const auto n = int32_t(sym.size());
    if (n > 0) sym.back().next = n;
    sym.push_back({id, n - 1, -1, len});
  };
  // Initial symbols: one per byte. A byte without a token becomes the unknown token (fused into
  // one run when fuse_unk) or is dropped when there is none, as in tokenizers' merge_word.
  int32_t unk_len = 0;
  for (const char ch : word) {
    const int32_t id = byte_id_[uint8_t(ch)];
    if (id >= 0) {
      if (unk_len) add(unk_id_, unk_len), unk_len = 0;
      add(id, 1);
    } else if (unk_id_ >= 0) {
      if (unk_len && !fuse_unk_) add(unk_id_, unk_len), unk_len = 0;
      ++unk_len;
    }
  }
  if (unk_len) add(unk_id_, unk_len);

  for (size_t i = 0; i + 1 < sym.size(); ++i)
    if (const MergeTable::Value* m = merges_.find(sym[i].id, sym[i + 1].id)) heap.push_back({m->rank, int32_t(i), m->id});
  std::make_heap(heap.begin(), heap.end(), Later{});

  while (!heap.empty()) {
    std::pop_heap(heap.begin(), heap.end(), Later{});
    const Candidate top = heap.back();
    heap.pop_back();
    Symbol& cur = sym[size_t(top.pos)];
    if (cur.len == 0 || cur.next == -1) continue;  // merged away, or now the last symbol
    Symbol& right = sym[size_t(cur.next)];
    // Stale entry: the pair at this position changed since it was queued.
    const MergeTable::Value* m = merges_.find(cur.id, right.id);
    if (!m || m->id != top.new_id) continue;

    cur.id = top.new_id;
    cur.len += right.len;
    cur.next = right.next;
    right.len = 0;
    if (cur.next != -1) sym[size_t(cur.next)].prev = top.pos;

    if (cur.prev != -1) {
      const Symbol& p = sym[size_t(cur.prev)];
      if (const MergeTable::Value* pm = merges_.find(p.id, cur.id)) {
        heap.push_back({pm->rank, cur.prev, pm->id});
        std::push_heap(heap.begin(), heap.end(), Later{});
      }
    }
    if (cur.next != -1) {
      const Symbol& nx = sym[size_t(cur.next)];
      if (const MergeTable::Value* nm = merges_.find(cur.id, nx.id)) {
        heap.push_back({nm->rank, top.pos, nm->id});
        std::push_heap(heap.begin(), heap.end(), Later{});
      }
    }
  }
  for (const Symbol& s : sym)
    if (s.len != 0) out.push_back(s.id);
}

void BpeModel::encode_word(std::string_view word, std::vector<int32_t>& out) const {
  if (word.empty()) return;
  if (ignore_merges_) {
    auto it = byte_vocab_.find(std::string(word));
    if (it != byte_vocab_.end()) {
      out.push_back(it->second);
      return;
    }
  }
  if (word.size() >= kMaxCachedWord) {
    merge(word, out);
    return;
  }
  Shard& shard = cache_[std::hash<std::string_view>{}(word) % kShards];
  {
    std::lock_guard<std::mutex> lock(shard.mu);
    auto it = shard.map.find(word);
    if (it != shard.map.end()) {
      out.insert(out.end(), it->second.begin(), it->second.end());
      return;
    }
  }
  const size_t first = out.size();
  merge(word, out);
  std::vector<int32_t> ids(out.begin() + std::ptrdiff_t(first), out.end());
  std::lock_guard<std::mutex> lock(shard.mu);
  if (shard.map.size() >= kShardCapacity) shard.map.clear();
  shard.map.emplace(std::string(word), std::move(ids));
}

}  // namespace gdn::tok
