// Checked CUDA, cuBLAS and cuDNN calls (style.md habit 3): every failing call throws uv::Error
// naming the expression and file:line. Host-side header; include from .cu and .cpp files alike.
#pragma once

#include <cublas_v2.h>
#include <cuda_runtime_api.h>
#include <cudnn.h>

#include "engine/core/error.h"

namespace uv::cuda_detail {

[[noreturn]] inline void throw_cuda(cudaError_t status, const char* expr, const char* file, int line) {
  std::ostringstream msg;
  msg << "CUDA error " << cudaGetErrorName(status) << " (" << cudaGetErrorString(status) << ") in `"
      << expr << "` at " << file << ":" << line;
  throw Error(msg.str());
}

[[noreturn]] inline void throw_cublas(cublasStatus_t status, const char* expr, const char* file, int line) {
  std::ostringstream msg;
  msg << "cuBLAS error " << cublasGetStatusName(status) << " (" << cublasGetStatusString(status)
      << ") in `" << expr << "` at " << file << ":" << line;
  throw Error(msg.str());
}

[[noreturn]] inline void throw_cudnn(cudnnStatus_t status, const char* expr, const char* file, int line) {
  std::ostringstream msg;
  msg << "cuDNN error " << cudnnGetErrorString(status) << " in `" << expr << "` at " << file << ":" << line;
  throw Error(msg.str());
}

}  // namespace uv::cuda_detail

#define CUDA_CHECK(expr)                                                              \
  do {                                                                                \
    const cudaError_t uv_cuda_status_ = (expr);                                       \
    if (uv_cuda_status_ != cudaSuccess)                                               \
      ::uv::cuda_detail::throw_cuda(uv_cuda_status_, #expr, __FILE__, __LINE__);      \
  } while (0)

#define CUBLAS_CHECK(expr)                                                            \
  do {                                                                                \
    const cublasStatus_t uv_cublas_status_ = (expr);                                  \
    if (uv_cublas_status_ != CUBLAS_STATUS_SUCCESS)                                   \
      ::uv::cuda_detail::throw_cublas(uv_cublas_status_, #expr, __FILE__, __LINE__);  \
  } while (0)

#define CUDNN_CHECK(expr)                                                             \
  do {                                                                                \
    const cudnnStatus_t uv_cudnn_status_ = (expr);                                    \
    if (uv_cudnn_status_ != CUDNN_STATUS_SUCCESS)                                     \
      ::uv::cuda_detail::throw_cudnn(uv_cudnn_status_, #expr, __FILE__, __LINE__);    \
  } while (0)

// After every kernel launch: launch-configuration errors surface here, at the launcher's line.
#define CUDA_CHECK_LAUNCH() CUDA_CHECK(cudaGetLastError())
