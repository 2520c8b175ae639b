#include "kernels/cuda/device.h"

#include <fmt/format.h>

#include <mutex>

#include "kernels/cuda/cuda_check.h"

namespace gdn::cuda {

void throw_cuda_error(cudaError_t err, const char* expr, const char* file, int line) {
  throw CudaError(fmt::format("{}:{}: {} failed: {} ({})", file, line, expr, cudaGetErrorName(err),
                              cudaGetErrorString(err)));
}

void throw_cublas_error(cublasStatus_t st, const char* expr, const char* file, int line) {
  throw CudaError(fmt::format("{}:{}: {} failed: cuBLAS status {} ({})", file, line, expr, int(st),
                              cublasLtGetStatusString(st)));
}

DeviceArena::DeviceArena(size_t capacity) : capacity_(capacity) {
  void* p = nullptr;
  GDN_CUDA_CHECK(cudaMalloc(&p, capacity));
  base_ = static_cast<char*>(p);
}

DeviceArena::~DeviceArena() {
  if (base_) cudaFree(base_);  // no throw from a destructor; errors here are sticky and show up elsewhere
}

void* DeviceArena::allocate(size_t bytes, size_t align) {
  if (align == 0 || (align & (align - 1)) != 0) throw CudaError(fmt::format("DeviceArena: alignment {} is not a power of two", align));
  const size_t start = (used_ + align - 1) & ~(align - 1);
  if (start > capacity_ || bytes > capacity_ - start)
    throw CudaError(fmt::format("DeviceArena: out of memory: {} bytes requested, {} of {} used", bytes, used_,
                                capacity_));
  used_ = start + bytes;
  return base_ + start;
}

Stream::Stream() { GDN_CUDA_CHECK(cudaStreamCreateWithFlags(&s_, cudaStreamNonBlocking)); }
Stream::~Stream() {
  if (s_) cudaStreamDestroy(s_);
}
void Stream::sync() const { GDN_CUDA_CHECK(cudaStreamSynchronize(s_)); }

Event::Event() { GDN_CUDA_CHECK(cudaEventCreate(&e_)); }
Event::~Event() {
  if (e_) cudaEventDestroy(e_);
}
void Event::record(cudaStream_t s) const { GDN_CUDA_CHECK(cudaEventRecord(e_, s)); }
float Event::ms_since(const Event& start) const {
  GDN_CUDA_CHECK(cudaEventSynchronize(e_));
  float ms = 0.f;
  GDN_CUDA_CHECK(cudaEventElapsedTime(&ms, start.e_, e_));
  return ms;
}

const DeviceInfo& device_info() {
  static std::once_flag once;
  static DeviceInfo info;
  std::call_once(once, [] {
    GDN_CUDA_CHECK(cudaGetDevice(&info.device));
    cudaDeviceProp p{};
    GDN_CUDA_CHECK(cudaGetDeviceProperties(&p, info.device));
    info.sm_count = p.multiProcessorCount;
    info.cc_major = p.major;
    info.cc_minor = p.minor;
    info.l2_bytes = size_t(p.l2CacheSize);
    info.smem_per_block_optin = p.sharedMemPerBlockOptin;
    info.global_bytes = p.totalGlobalMem;
    info.name = p.name;
  });
  return info;
}

}  // namespace gdn::cuda
