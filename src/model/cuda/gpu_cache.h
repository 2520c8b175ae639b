// Per-sequence memory of the GPU model: the paged KV cache of every attention layer (main stack +
// MTP head) and the DeltaNet state slots, in one arena, plus the host-side bookkeeping of which
// blocks and slots are free. The runtime owns a GpuCache next to the model and hands blocks and
// slots to sequences; the model only reads the views.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "kernels/cuda/attention_cuda.h"
#include "kernels/cuda/deltanet_cuda.h"
#include "kernels/cuda/device.h"
#include "model/config.h"

namespace gdn::cuda {

AttnDims attn_dims(const Qwen35Config& c);
GdnDims gdn_dims(const Qwen35Config& c);

struct GpuCacheShape {
  KvDtype kv_dtype = KvDtype::Bf16;
  int num_blocks = 0;   // KV blocks of kKvBlockTokens tokens (block 0 is reserved: padding rows point at it)
  int state_slots = 0;  // DeltaNet state slots
};

// Bytes of one KV block over all attention layers (+ mtp_layers MTP layers), and of one state slot
// over all DeltaNet layers. The MTP layer count comes from the loaded weights: configs often omit
// mtp_num_hidden_layers while the checkpoint carries the head.
int64_t kv_block_bytes_all_layers(const Qwen35Config& c, int mtp_layers, KvDtype dt);
int64_t state_slot_bytes_all_layers(const Qwen35Config& c);

class GpuCache {
 public:
  GpuCache(const Qwen35Config& c, int mtp_layers, const GpuCacheShape& shape, cudaStream_t stream);
  const GpuCacheShape& shape() const { return shape_; }
  // Unique per cache object (never reused, unlike addresses): CUDA graphs captured against one
  // cache's memory are only replayed with that cache.
  uint64_t id() const { return id_; }
  int64_t bytes() const { return int64_t(arena_->capacity()); }

  // attention layer index among the main stack's attention layers; MTP layer i is attn_layers + i.
  KvLayerView kv(int attn_layer) const;       // CudaError when out of range
  GdnStateView state(int gdn_layer) const;

  // Zeroes a slot's conv and recurrent state in every DeltaNet layer (a fresh sequence).
  void reset_slot(int slot, cudaStream_t stream);
  // Copies every layer's state of slot `from` to `to` (snapshots for speculation / prefix reuse).
  void copy_slot(int from, int to, cudaStream_t stream);

  // Host bookkeeping. allocate_* throw CudaError when nothing is left.
  std::vector<int32_t> allocate_blocks(int n);
  void release_blocks(const std::vector<int32_t>& blocks);
  int32_t allocate_slot();
  void release_slot(int32_t slot);
  int free_blocks() const { return int(free_blocks_.size()); }
  int free_slots() const { return int(free_slots_.size()); }

 private:
  GpuCacheShape shape_;
  uint64_t id_ = 0;
  std::unique_ptr<DeviceArena> arena_;
  std::vector<KvLayerView> kv_;
  std::vector<GdnStateView> state_;
  int64_t conv_slot_elems_ = 0, rec_slot_elems_ = 0;
  std::vector<int32_t> free_blocks_, free_slots_;
};

}  // namespace gdn::cuda
