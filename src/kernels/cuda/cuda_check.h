// Checked CUDA / cuBLASLt calls. Every runtime call in kernels/cuda goes through GDN_CUDA_CHECK so
// that a failure names the call site and the driver's error string instead of surfacing later as
// garbage output. Failures throw gdn::cuda::CudaError (the caller decides whether that is fatal:
// tests report it, the server would abort the request and reset the device context).
#pragma once

#include <cublasLt.h>
#include <cuda_runtime.h>

#include <stdexcept>
#include <string>

namespace gdn::cuda {

class CudaError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

[[noreturn]] void throw_cuda_error(cudaError_t err, const char* expr, const char* file, int line);
[[noreturn]] void throw_cublas_error(cublasStatus_t st, const char* expr, const char* file, int line);

}  // namespace gdn::cuda

#define GDN_CUDA_CHECK(expr)                                                             \
  do {                                                                                   \
    const cudaError_t gdn_err_ = (expr);                                                 \
    if (gdn_err_ != cudaSuccess) ::gdn::cuda::throw_cuda_error(gdn_err_, #expr, __FILE__, __LINE__); \
  } while (0)

// After a kernel launch: launch-configuration errors show up here, not at the <<<>>>.
#define GDN_CUDA_CHECK_LAUNCH() GDN_CUDA_CHECK(cudaGetLastError())

#define GDN_CUBLAS_CHECK(expr)                                                              \
  do {                                                                                      \
    const cublasStatus_t gdn_st_ = (expr);                                                  \
    if (gdn_st_ != CUBLAS_STATUS_SUCCESS) ::gdn::cuda::throw_cublas_error(gdn_st_, #expr, __FILE__, __LINE__); \
  } while (0)
