// Byte-level BPE model of tokenizer.json ("model": {"type": "BPE", ...}).
//
// The model works on raw bytes: at load time every vocabulary entry spelled in GPT-2 byte-level
// characters ("Ġthe") is mapped back to its bytes (" the"), so pre-tokens never have to be
// converted into byte-level characters and back. This is exact because the byte-level table is a
// bijection between bytes and characters; entries with other characters can never be produced
// by merging byte symbols and are only reachable through token_to_id / decode.
//
// Merging follows tokenizers' Word::merge_all: a min-heap of (rank, position) over a doubly linked
// list of symbols, stale entries skipped on pop — O(n log n) per word, no rescans. Words shorter
// than kMaxCachedWord bytes are memoised in a sharded, bounded cache.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <mutex>
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace gdn::tok {

// Open-addressing map (id_a, id_b) → (rank, merged id): the hot lookup of the merge loop.
class MergeTable {
 public:
  struct Value {
    uint32_t rank;
    int32_t id;
  };
  void reserve(size_t n);
  void insert_or_assign(int32_t a, int32_t b, Value v);
  const Value* find(int32_t a, int32_t b) const {
    const uint64_t key = pack(a, b);
    for (size_t i = hash(key) & mask_;; i = (i + 1) & mask_) {
      const Slot& s = slots_[i];
      if (s.key == key) return &s.value;
      if (s.key == kEmpty) return nullptr;
    }
  }
  size_t size() const { return size_; }

 private:
  static constexpr uint64_t kEmpty = ~uint64_t(0);
  struct Slot {
    uint64_t key = kEmpty;
    Value value{};
  };
  static uint64_t pack(int32_t a, int32_t b) { return (uint64_t(uint32_t(a)) << 32) | uint32_t(b); }
  static size_t hash(uint64_t k) {
    k ^= k >> 33;
    k *= 0xff51afd7ed558ccdull;
    k ^= k >> 33;
    return size_t(k);
  }
  std::vector<Slot> slots_;
  size_t mask_ = 0, size_ = 0;
};

class BpeModel {
 public:
  // Builds the model from the "model" object of tokenizer.json; `file` names the file in errors.
  BpeModel(const nlohmann::json& model, const std::string& file);
  ~BpeModel();

  // Appends the ids of one pre-token (raw bytes) to `out`. Thread-safe.
  void encode_word(std::string_view word, std::vector<int32_t>& out) const;

  // The vocabulary as spelled in the file (byte-level characters).
  const std::unordered_map<std::string, int32_t>& vocab() const { return vocab_; }
  // Token string (as in the file) of `id`, or nullptr.
  const std::string* id_to_token(int32_t id) const {
    return id >= 0 && size_t(id) < id_to_token_.size() && id_to_token_[size_t(id)] ? id_to_token_[size_t(id)] : nullptr;
  }
  size_t size() const { return vocab_.size(); }  // what tokenizers calls get_vocab_size()

 private:
  void merge(std::string_view word, std::vector<int32_t>& out) const;

  std::unordered_map<std::string, int32_t> vocab_;
  std::vector<const std::string*> id_to_token_;  // points into vocab_'s keys
  std::array<int32_t, 256> byte_id_{};           // id of each single-byte token, -1 if none
  MergeTable merges_;
  int32_t unk_id_ = -1;
  bool fuse_unk_ = false;
  bool ignore_merges_ = false;
  std::unordered_map<std::string, int32_t> byte_vocab_;  // raw-byte spelling → id, for ignore_merges

  // Word cache: key = pre-token bytes. Sharded to keep lock contention low when several threads
  // encode; a shard is cleared when it fills up, which bounds memory on endless varied input.
  static constexpr size_t kMaxCachedWord = 256;  // what tokenizers caches, too
  static constexpr size_t kShards = 16;
  static constexpr size_t kShardCapacity = 8192;
  struct Shard;
  std::unique_ptr<Shard[]> cache_;
};

// GPT-2's byte ↔ unicode table: the code point standing for each byte.
const std::array<char32_t, 256>& byte_to_char_table();
// Inverse, for a code point: the byte it stands for, or -1.
int char_to_byte(char32_t c);
// The bytes a token spelled in byte-level characters stands for; false when a character is
// outside the table.
bool byte_level_token_bytes(std::string_view token, std::string& bytes);
// The bytes a token string stands for under the ByteLevel decoder: each character mapped back to
// its byte, or — when any character is outside the table — the token's own UTF-8 (what
// tokenizers' ByteLevel::decode_chain does).
std::string byte_level_decode_token(std::string_view token);

}  // namespace gdn::tok
