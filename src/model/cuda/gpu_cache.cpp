#include "model/cuda/gpu_cache.h"

#include <algorithm>
#include <atomic>
#include <string>

#include "kernels/cuda/cuda_check.h"

namespace gdn::cuda {

AttnDims attn_dims(const Qwen35Config& c) {
  AttnDims d;
  d.heads = int(c.num_heads);
  d.kv_heads = int(c.num_kv_heads);
  d.head_dim = int(c.head_dim);
  d.rotary_dim = int(c.rotary_dim);
  d.rope_theta = float(c.rope_theta);
  d.norm_eps = float(c.rms_norm_eps);
  return d;
}

GdnDims gdn_dims(const Qwen35Config& c) {
  GdnDims d;
  d.key_heads = int(c.linear_key_heads);
  d.value_heads = int(c.linear_value_heads);
  d.key_dim = int(c.linear_key_dim);
  d.value_dim = int(c.linear_value_dim);
  d.conv_kernel = int(c.conv_kernel);
  d.norm_eps = float(c.rms_norm_eps);
  return d;
}

namespace {
size_t align256(size_t b) { return (b + 255) / 256 * 256; }
std::atomic<uint64_t> next_cache_id{1};
}  // namespace

int64_t kv_block_bytes_all_layers(const Qwen35Config& c, int mtp_layers, KvDtype dt) {
  return (c.num_attention_layers() + mtp_layers) * int64_t(kv_block_bytes(attn_dims(c), dt));
}

int64_t state_slot_bytes_all_layers(const Qwen35Config& c) {
  return c.num_linear_layers() * int64_t(gdn_slot_bytes(gdn_dims(c)));
}

GpuCache::GpuCache(const Qwen35Config& c, int mtp_layers, const GpuCacheShape& shape, cudaStream_t stream)
    : shape_(shape), id_(next_cache_id++) {
  if (shape.num_blocks < 2 || shape.state_slots < 1)
    throw CudaError("GpuCache: need at least 2 KV blocks and 1 state slot, got " + std::to_string(shape.num_blocks) +
                    " and " + std::to_string(shape.state_slots));
  const AttnDims ad = attn_dims(c);
  const GdnDims gd = gdn_dims(c);
  const size_t half_block = kv_block_bytes(ad, shape.kv_dtype) / 2;  // K (or V) of one block of one layer
  const int64_t L_attn = c.num_attention_layers() + mtp_layers, L_gdn = c.num_linear_layers();
  conv_slot_elems_ = int64_t(gd.conv_kernel - 1) * gd.conv_dim();
  rec_slot_elems_ = int64_t(gd.value_heads) * gd.key_dim * gd.value_dim;
  const size_t kv_bytes = align256(half_block * size_t(shape.num_blocks));
  const size_t conv_bytes = align256(size_t(conv_slot_elems_ * shape.state_slots) * 4);
  const size_t rec_bytes = align256(size_t(rec_slot_elems_ * shape.state_slots) * 4);
  arena_ = std::make_unique<DeviceArena>(size_t(L_attn) * 2 * kv_bytes + size_t(L_gdn) * (conv_bytes + rec_bytes) + 4096);
  for (int64_t l = 0; l < L_attn; ++l) {
    KvLayerView v;
    v.k = arena_->allocate(kv_bytes);
    v.v = arena_->allocate(kv_bytes);
    v.dtype = shape.kv_dtype;
    v.num_blocks = shape.num_blocks;
    kv_.push_back(v);
  }
  for (int64_t l = 0; l < L_gdn; ++l) {
    GdnStateView s;
    s.conv = arena_->allocate_n<float>(size_t(conv_slot_elems_ * shape.state_slots));
    s.recurrent = arena_->allocate_n<float>(size_t(rec_slot_elems_ * shape.state_slots));
    s.slots = shape.state_slots;
    state_.push_back(s);
  }
  // Zero everything once: padding rows read block 0, and fresh slots start from zeros.
  GDN_CUDA_CHECK(cudaMemsetAsync(arena_->base(), 0, arena_->used(), stream));
  GDN_CUDA_CHECK(cudaStreamSynchronize(stream));
  for (int b = shape.num_blocks - 1; b >= 1; --b) free_blocks_.push_back(b);
  for (int s = shape.state_slots - 1; s >= 0; --s) free_slots_.push_back(s);
}

KvLayerView GpuCache::kv(int attn_layer) const {
  if (attn_layer < 0 || attn_layer >= int(kv_.size()))
    throw CudaError("GpuCache: attention layer " + std::to_string(attn_layer) + " of " + std::to_string(kv_.size()));
  return kv_[size_t(attn_layer)];
}

GdnStateView GpuCache::state(int gdn_layer) const {
  if (gdn_layer < 0 || gdn_layer >= int(state_.size()))
    throw CudaError("GpuCache: DeltaNet layer " + std::to_string(gdn_layer) + " of " + std::to_string(state_.size()));
  return state_[size_t(gdn_layer)];
}

void GpuCache::reset_slot(int slot, cudaStream_t stream) {
  for (const GdnStateView& s : state_) {
    GDN_CUDA_CHECK(cudaMemsetAsync(s.conv + slot * conv_slot_elems_, 0, size_t(conv_slot_elems_) * 4, stream));
    GDN_CUDA_CHECK(cudaMemsetAsync(s.recurrent + slot * rec_slot_elems_, 0, size_t(rec_slot_elems_) * 4, stream));
  }
}

void GpuCache::copy_slot(int from, int to, cudaStream_t stream) {
  for (const GdnStateView& s : state_) {
    GDN_CUDA_CHECK(cudaMemcpyAsync(s.conv + to * conv_slot_elems_, s.conv + from * conv_slot_elems_,
                                   size_t(conv_slot_elems_) * 4, cudaMemcpyDeviceToDevice, stream));
    GDN_CUDA_CHECK(cudaMemcpyAsync(s.recurrent + to * rec_slot_elems_, s.recurrent + from * rec_slot_elems_,
                                   size_t(rec_slot_elems_) * 4, cudaMemcpyDeviceToDevice, stream));
  }
}

std::vector<int32_t> GpuCache::allocate_blocks(int n) {
  if (n > int(free_blocks_.size()))
    throw CudaError("KV cache: " + std::to_string(n) + " blocks requested, " + std::to_string(free_blocks_.size()) +
                    " free");
  std::vector<int32_t> out(free_blocks_.end() - n, free_blocks_.end());
  free_blocks_.resize(free_blocks_.size() - size_t(n));
  std::reverse(out.begin(), out.end());
  return out;
}

void GpuCache::release_blocks(const std::vector<int32_t>& blocks) {
  for (auto it = blocks.rbegin(); it != blocks.rend(); ++it) free_blocks_.push_back(*it);
}

int32_t GpuCache::allocate_slot() {
  if (free_slots_.empty()) throw CudaError("DeltaNet state: no free slot");
  const int32_t s = free_slots_.back();
  free_slots_.pop_back();
  return s;
}

void GpuCache::release_slot(int32_t slot) { free_slots_.push_back(slot); }

}  // namespace gdn::cuda
