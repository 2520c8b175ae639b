// Device groundwork for the CUDA backend: one-allocation arena, RAII stream/event, device facts.
//
// Why an arena: the engine knows its whole footprint at load (weights, KV, states, workspaces), and
// cudaMalloc/cudaFree per call synchronise the device and fragment memory. One cudaMalloc at start,
// bump allocation after that; nothing is freed individually (reset() drops everything at once).
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>
#include <string>

namespace gdn::cuda {

class DeviceArena {
 public:
  // One cudaMalloc of `capacity` bytes on the current device. Throws CudaError on failure.
  explicit DeviceArena(size_t capacity);
  ~DeviceArena();
  DeviceArena(const DeviceArena&) = delete;
  DeviceArena& operator=(const DeviceArena&) = delete;

  // Bump allocation; `align` must be a power of two (256 keeps every tensor 16-byte vector- and
  // TMA-friendly). Throws CudaError naming the request when the arena is exhausted. Not thread-safe.
  void* allocate(size_t bytes, size_t align = 256);
  template <typename T>
  T* allocate_n(size_t n, size_t align = 256) {
    return static_cast<T*>(allocate(n * sizeof(T), align));
  }
  void reset() { used_ = 0; }  // every pointer handed out becomes invalid
  size_t used() const { return used_; }
  size_t capacity() const { return capacity_; }
  char* base() const { return base_; }

 private:
  char* base_ = nullptr;
  size_t capacity_ = 0, used_ = 0;
};

class Stream {
 public:
  Stream();  // non-blocking with respect to the legacy default stream
  ~Stream();
  Stream(const Stream&) = delete;
  Stream& operator=(const Stream&) = delete;
  cudaStream_t get() const { return s_; }
  operator cudaStream_t() const { return s_; }
  void sync() const;

 private:
  cudaStream_t s_ = nullptr;
};

class Event {
 public:
  Event();
  ~Event();
  Event(const Event&) = delete;
  Event& operator=(const Event&) = delete;
  cudaEvent_t get() const { return e_; }
  void record(cudaStream_t s) const;
  float ms_since(const Event& start) const;  // synchronises on this event

 private:
  cudaEvent_t e_ = nullptr;
};

// Facts about the current device, read once (cudaGetDeviceProperties is slow: ~ms).
struct DeviceInfo {
  int device = 0;
  int sm_count = 0;
  int cc_major = 0, cc_minor = 0;
  size_t l2_bytes = 0;
  size_t smem_per_block_optin = 0;
  size_t global_bytes = 0;
  std::string name;
};
const DeviceInfo& device_info();

}  // namespace gdn::cuda
